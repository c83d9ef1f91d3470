package customer

import (
	"context"
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// Identity is a customer's account at an identity provider (OpenID
// Connect), which signs the customer in. It is private: no public event
// carries it, and linking or removing one changes no version of the
// customer (the customer resource does not hold its identities), so it
// has no public event of its own; linking one to an existing account
// sends the customer a notice (customer.identity_linked, a notification).
type Identity struct {
	ID         uuid.UUID
	CustomerID uuid.UUID
	ProviderID string
	// Issuer and Subject name the person for good (OpenID Connect Core
	// 5.7): a sign-in finds its customer by them, never by email.
	Issuer  string
	Subject string
	// Email is the provider's email for the person when it was linked.
	Email     string
	CreatedAt time.Time
}

// IdentityClaims is what a verified ID token says about its person.
type IdentityClaims struct {
	ProviderID string
	// ProviderName is the provider's display name, for the notice a link
	// sends.
	ProviderName  string
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
	GivenName     string
	FamilyName    string
	Locale        string
}

// Identity refusals; the HTTP edge maps them.
var (
	ErrIdentityNotFound = errors.New("identity not found")
	// ErrEmailNotVerified refuses a first sign-in whose provider does not
	// vouch for the email: linking on an unproven email would hand its
	// owner's account, or its guest orders, to whoever typed the address
	// in at the provider.
	ErrEmailNotVerified = errors.New("the identity provider has not verified the email")
	// ErrLastSignInMethod refuses to remove the only identity of a
	// customer without a password: the customer could not sign in again.
	ErrLastSignInMethod = errors.New("the identity is the account's only way to sign in")
	// ErrIdentityTaken: the store's answer when another sign-in of the
	// same person has linked (issuer, subject) first.
	ErrIdentityTaken = errors.New("identity linked meanwhile")
)

// IdentityStore keeps the customers' identities.
type IdentityStore interface {
	// IdentityBySubject reads the identity of the issuer's subject;
	// ErrIdentityNotFound when none.
	IdentityBySubject(ctx context.Context, issuer, subject string) (Identity, error)
	// ListIdentities reads a customer's identities, oldest first.
	ListIdentities(ctx context.Context, customerID uuid.UUID) ([]Identity, error)
	// DeleteIdentity locks the customer, deletes its identity and lets
	// check refuse (undoing the deletion), given the customer and how many
	// identities it has left; ErrIdentityNotFound when it has no such one.
	DeleteIdentity(ctx context.Context, customerID, id uuid.UUID, check func(cur Customer, remaining int) error) error
}

// SignInWithIdentity signs in the person an identity provider has just
// vouched for (the ID token is verified by the caller) and opens a
// session, as a login does. The customer is the one linked to the
// issuer's subject; on a first sign-in, the one with the email, which is
// linked, or else a new registered, verified customer (customer.created
// and customer.verified). A first sign-in needs email_verified.
func (s *Service) SignInWithIdentity(ctx context.Context, o Origin, id IdentityClaims) (Session, error) {
	c, err := s.identityCustomer(ctx, o, id)
	if errors.Is(err, ErrIdentityTaken) || errors.Is(err, ErrEmailTaken) {
		// A sign-in of the same person (or a registration with the same
		// email) won the race: this one finds what it wrote.
		c, err = s.identityCustomer(ctx, o, id)
	}
	if err != nil {
		return Session{}, err
	}
	return s.openSession(ctx, c)
}

// identityCustomer finds, links or creates the customer of the identity.
func (s *Service) identityCustomer(ctx context.Context, o Origin, id IdentityClaims) (Customer, error) {
	linked, err := s.store.IdentityBySubject(ctx, id.Issuer, id.Subject)
	if err == nil {
		return s.store.Get(ctx, linked.CustomerID)
	}
	if !errors.Is(err, ErrIdentityNotFound) {
		return Customer{}, fmt.Errorf("sign in: %w", err)
	}
	var r rules
	email := r.email("email", id.Email)
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	if !id.EmailVerified {
		return Customer{}, ErrEmailNotVerified
	}
	now := s.now()
	ident := Identity{ProviderID: id.ProviderID, Issuer: id.Issuer, Subject: id.Subject, Email: email, CreatedAt: now}
	if ident.ID, err = uuid.NewV7(); err != nil {
		return Customer{}, fmt.Errorf("sign in: %w", err)
	}
	existing, err := s.accountByEmail(ctx, email)
	switch {
	case errors.Is(err, ErrNotFound):
		return s.createWithIdentity(ctx, o, id, ident, now)
	case err != nil:
		return Customer{}, fmt.Errorf("sign in: %w", err)
	}
	ident.CustomerID = existing.ID
	return update(ctx, s.store, existing.ID, func(cur Customer) (*Mutation, error) {
		return s.link(o.OrCustomer(cur.ID), cur, ident, id.ProviderName, now)
	})
}

// link attaches the identity to an existing customer with its email. The
// provider has proven the email, so the customer becomes verified and has
// an account (one event, customer.verified; or customer.updated when it
// was verified already but had no account). A password set before the
// email was proven is dropped (and with it the customer's sessions): it
// may be someone else's who registered the address first, waiting for its
// owner to verify it for them.
//
// The customer is told by email (customer.identity_linked, a notification
// at the customer's version after the link): a sign-in method added to an
// existing account is what an account takeover would look like, and the
// email lets its owner react.
func (s *Service) link(o Origin, cur Customer, ident Identity, providerName string, now time.Time) (*Mutation, error) {
	if !cur.IsActive {
		return nil, ErrInactive
	}
	next := cur
	m := &Mutation{Customer: cur}
	var err error
	switch {
	case !cur.IsVerified:
		next.IsVerified, next.HasAccount, next.PasswordHash = true, true, ""
		m, err = changed(o, events.CustomerVerified, next, now, publicData)
	case !cur.HasAccount:
		next.HasAccount = true
		m, err = changed(o, events.CustomerUpdated, next, now, func(c Customer) any {
			return events.CustomerUpdatedData{Customer: c.Public(), Changed: []string{"has_account"}}
		})
	}
	if err != nil {
		return nil, err
	}
	c := m.Customer
	notice, err := newEvent(o, events.CustomerIdentityLinked, c, now, events.NotificationData{
		CustomerID: &c.ID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName, LanguageCode: c.LanguageCode,
		ExpiresAt: now, Identity: &events.NotificationIdentity{Provider: ident.ProviderID, DisplayName: providerName},
	})
	if err != nil {
		return nil, err
	}
	m.Events = append(m.Events, notice)
	m.NewIdentities = []Identity{ident}
	return m, nil
}

// createWithIdentity creates the customer of a first sign-in whose email
// no customer has: registered (version 1, customer.created) and verified
// by the provider (version 2, customer.verified), in one transaction with
// its identity. Names and language the provider gives are taken when they
// pass our rules and dropped otherwise: they are no reason to refuse.
func (s *Service) createWithIdentity(ctx context.Context, o Origin, id IdentityClaims, ident Identity, now time.Time) (Customer, error) {
	optional := func(check func(r *rules) string) string {
		var r rules
		if v := check(&r); r.err() == nil {
			return v
		}
		return ""
	}
	var r rules
	c, err := newAccount(&r, ident.Email,
		optional(func(r *rules) string { return r.text("first_name", id.GivenName, MaxNameLength) }),
		optional(func(r *rules) string { return r.text("last_name", id.FamilyName, MaxNameLength) }),
		optional(func(r *rules) string { return r.languageCode("language_code", id.Locale) }), now)
	if err != nil {
		return Customer{}, fmt.Errorf("sign in: %w", err)
	}
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	o = o.OrCustomer(c.ID)
	created, err := newEvent(o, events.CustomerCreated, c, now, events.CustomerCreatedData{Customer: c.Public(), Addresses: []events.Address{}})
	if err != nil {
		return Customer{}, err
	}
	verified := c
	verified.IsVerified = true
	m, err := changed(o, events.CustomerVerified, verified, now, publicData)
	if err != nil {
		return Customer{}, err
	}
	ident.CustomerID = c.ID
	n := NewCustomer{Customer: m.Customer, Events: []cloudevents.Event{created, m.Events[0]}, Identities: []Identity{ident}}
	if err := s.store.Create(ctx, n); err != nil {
		return Customer{}, fmt.Errorf("sign in: %w", err)
	}
	return m.Customer, nil
}

// Identities reads the customer's identities, oldest first.
func (s *Service) Identities(ctx context.Context, customerID uuid.UUID) ([]Identity, error) {
	if _, err := s.store.Get(ctx, customerID); err != nil {
		return nil, err
	}
	return s.store.ListIdentities(ctx, customerID)
}

// RemoveIdentity unlinks one of the customer's identities: the provider's
// account no longer signs in to it (a new sign-in with it links again
// only by a verified email, as a first one). The last identity of a
// customer without a password is kept (ErrLastSignInMethod): it is the
// customer's only way in; a password reset gives it another first.
func (s *Service) RemoveIdentity(ctx context.Context, customerID, id uuid.UUID) error {
	return s.store.DeleteIdentity(ctx, customerID, id, func(cur Customer, remaining int) error {
		if remaining == 0 && cur.PasswordHash == "" {
			return ErrLastSignInMethod
		}
		return nil
	})
}
