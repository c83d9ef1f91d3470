package customer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/password"
)

// Purposes of one-time tokens: a token serves only its own.
const (
	PurposePasswordSetup = "password_setup"
	PurposeVerification  = "verification"
	PurposePasswordReset = "password_reset"
	PurposeEmailChange   = "email_change"
	PurposeDeletion      = "deletion"
)

// Token problems, as field errors on "token".
const (
	CodeExpired = "expired"
	CodeUsed    = "already_used"
)

// ErrTokenInvalid means no token matches: unknown, mistyped, of another
// purpose or of another customer.
var ErrTokenInvalid = errors.New("token is not valid")

// Token is a one-time token as stored: only its hash is kept.
type Token struct {
	Hash       []byte
	CustomerID uuid.UUID
	Purpose    string
	NewEmail   string // email_change: the address being confirmed
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     *time.Time
}

// newToken returns a token to send and its stored form.
func newToken(purpose string, customerID uuid.UUID, now time.Time, ttl time.Duration) (string, Token, error) {
	plain, err := auth.NewEmailToken()
	if err != nil {
		return "", Token{}, err
	}
	return plain, Token{Hash: auth.Hash(plain), CustomerID: customerID, Purpose: purpose, CreatedAt: now, ExpiresAt: now.Add(ttl)}, nil
}

// EmailLink is where an email's link goes: the storefront's redirect_url
// and its sales channel, both required for an email to go out.
type EmailLink struct {
	RedirectURL string `json:"redirect_url"`
	Channel     string `json:"channel"`
}

// given reports whether both parts are there, as Saleor requires to send.
func (l EmailLink) Given() bool { return l.RedirectURL != "" && l.Channel != "" }

func (r *rules) link(l EmailLink, required bool) {
	if l.RedirectURL == "" && l.Channel == "" && !required {
		return
	}
	if l.RedirectURL == "" {
		r.fail("redirect_url", CodeRequired, "redirect_url is required with channel")
	} else if u, err := url.Parse(l.RedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(l.RedirectURL) > 2000 {
		r.fail("redirect_url", CodeInvalid, "redirect_url must be an absolute http(s) URL of at most 2000 characters")
	}
	if l.Channel == "" {
		r.fail("channel", CodeRequired, "channel is required with redirect_url")
	} else if !Storable(l.Channel) || utf8.RuneCountInString(l.Channel) > MaxNameLength {
		r.fail("channel", CodeInvalid, "channel must be text of at most %d characters", MaxNameLength)
	}
}

func (r *rules) password(field, pw string) string {
	switch n := utf8.RuneCountInString(pw); {
	case pw == "":
		r.fail(field, CodeRequired, "%s is required", field)
	case !utf8.ValidString(pw):
		r.fail(field, CodeInvalid, "%s must be valid UTF-8", field)
	case n < password.MinLength:
		r.fail(field, CodeTooShort, "%s must be at least %d characters", field, password.MinLength)
	case n > password.MaxLength:
		r.fail(field, CodeTooLong, "%s must be at most %d characters", field, password.MaxLength)
	}
	return pw
}

// notification builds a notification event carrying a token for c.
func notification(o Origin, typ string, c Customer, plain string, t Token, l EmailLink, at time.Time) (cloudevents.Event, error) {
	return newEvent(o, typ, c, at, events.NotificationData{
		CustomerID: &c.ID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName,
		LanguageCode: c.LanguageCode, Channel: l.Channel, RedirectURL: l.RedirectURL,
		Token: plain, ExpiresAt: t.ExpiresAt,
	})
}

// RegisterInput is a storefront sign-up.
type RegisterInput struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	FirstName    string `json:"first_name"`
	LastName     string `json:"last_name"`
	LanguageCode string `json:"language_code"`
	// Attributes are values of the attributes customers may set
	// (storefront); those of them that are required must be given.
	Attributes map[string]json.RawMessage `json:"attributes"`
	EmailLink
}

// Register creates a registered, unverified customer and asks for the
// verification email. An email already in use is ErrEmailTaken: a guest
// with that email claims the account through a password reset instead.
func (s *Service) Register(ctx context.Context, o Origin, in RegisterInput) (Customer, error) {
	r := rules{}
	now := s.now()
	defs, err := s.store.AttributeDefinitions(ctx)
	if err != nil {
		return Customer{}, fmt.Errorf("register: %w", err)
	}
	// Customers set only their own attributes, and so are held only to
	// those being required: staff fill in the rest.
	maps.DeleteFunc(defs, func(_ string, d AttributeDefinition) bool { return !d.Storefront })
	c, err := newAccount(&r, in.Email, in.FirstName, in.LastName, in.LanguageCode, now)
	if err != nil {
		return Customer{}, fmt.Errorf("register: %w", err)
	}
	c.Attributes = r.attributes("attributes", defs, in.Attributes)
	pw := r.password("password", in.Password)
	r.link(in.EmailLink, true)
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	if c.PasswordHash, err = password.Hash(pw); err != nil {
		return Customer{}, err
	}
	o = o.OrCustomer(c.ID)
	plain, tok, err := newToken(PurposeVerification, c.ID, now, s.accounts.EmailTokenTTL)
	if err != nil {
		return Customer{}, err
	}
	created, err := newEvent(o, events.CustomerCreated, c, now, events.CustomerCreatedData{Customer: c.Public(), Addresses: []events.Address{}})
	if err != nil {
		return Customer{}, err
	}
	note, err := notification(o, events.CustomerVerificationRequested, c, plain, tok, in.EmailLink, now)
	if err != nil {
		return Customer{}, err
	}
	if err := s.store.Create(ctx, NewCustomer{Customer: c, Tokens: []Token{tok}, Events: []cloudevents.Event{created, note}}); err != nil {
		return Customer{}, fmt.Errorf("register: %w", err)
	}
	return c, nil
}

// newAccount is a customer who signs up on the storefront (a registration,
// a first sign-in with an identity provider), not yet verified, its fields
// checked by r.
func newAccount(r *rules, email, firstName, lastName, languageCode string, now time.Time) (Customer, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Customer{}, err
	}
	return Customer{
		ID: id, Email: r.email("email", email),
		FirstName:    r.text("first_name", firstName, MaxNameLength),
		LastName:     r.text("last_name", lastName, MaxNameLength),
		LanguageCode: r.languageCode("language_code", languageCode),
		IsActive:     true, HasAccount: true, Version: 1, CreatedAt: now, UpdatedAt: now,
		EmailConsent: DefaultConsent, SMSConsent: DefaultConsent,
	}, nil
}

// passwordSetup is the set-password email of a customer that staff created
// with a redirect_url and channel.
func (s *Service) passwordSetup(o Origin, c Customer, l EmailLink) (Token, cloudevents.Event, error) {
	plain, tok, err := newToken(PurposePasswordSetup, c.ID, c.CreatedAt, s.accounts.EmailTokenTTL)
	if err != nil {
		return Token{}, cloudevents.Event{}, err
	}
	ev, err := notification(o, events.CustomerPasswordSetupRequested, c, plain, tok, l, c.CreatedAt)
	return tok, ev, err
}

// TokenInput is a one-time token from an email's link, with the email the
// link also carries (optional; when given it must be the address the email
// went to).
type TokenInput struct {
	Email string `json:"email"`
	Token string `json:"token"`
}

// tokenUse says which tokens an action accepts.
type tokenUse struct {
	purposes []string
	owner    uuid.UUID // when set, only this customer's tokens
}

// useToken checks the token and lets change decide what using it does.
func (s *Service) useToken(ctx context.Context, in TokenInput, use tokenUse, change func(cur Customer, t Token, now time.Time) (*Mutation, error)) (Customer, error) {
	var r rules
	if in.Token == "" {
		r.fail("token", CodeRequired, "token is required")
	}
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	now := s.now()
	return s.store.UseToken(ctx, auth.Hash(in.Token), func(cur Customer, t Token) (*Mutation, error) {
		sentTo := cur.Email
		if t.NewEmail != "" {
			sentTo = t.NewEmail
		}
		var r rules
		switch {
		case !slices.Contains(use.purposes, t.Purpose),
			use.owner != uuid.Nil && use.owner != cur.ID,
			in.Email != "" && strings.ToLower(strings.TrimSpace(in.Email)) != sentTo:
			return nil, ErrTokenInvalid
		case t.UsedAt != nil:
			r.fail("token", CodeUsed, "this link was already used; ask for a new email")
		case !now.Before(t.ExpiresAt):
			r.fail("token", CodeExpired, "this link expired at %s; ask for a new email", t.ExpiresAt.Format(time.RFC3339))
		}
		if err := r.err(); err != nil {
			return nil, err
		}
		return change(cur, t, now)
	})
}

// Confirm verifies a registration with the token of its email.
func (s *Service) Confirm(ctx context.Context, o Origin, in TokenInput) (Customer, error) {
	return s.useToken(ctx, in, tokenUse{purposes: []string{PurposeVerification}}, func(cur Customer, _ Token, now time.Time) (*Mutation, error) {
		next := cur
		next.IsVerified = true
		return changed(o.OrCustomer(cur.ID), events.CustomerVerified, next, now, publicData)
	})
}

// changed bumps the customer's version and writes the one event of the
// change, whose data is built from the customer as written.
func changed(o Origin, typ string, next Customer, now time.Time, data func(Customer) any) (*Mutation, error) {
	next.Version++
	next.UpdatedAt = now
	ev, err := newEvent(o, typ, next, now, data(next))
	if err != nil {
		return nil, err
	}
	return &Mutation{Customer: next, Events: []cloudevents.Event{ev}}, nil
}

// SetPasswordInput sets a password with the token of a set-password or
// password-reset email.
type SetPasswordInput struct {
	TokenInput
	Password string `json:"password"`
}

// SetPassword sets the password. The email that carried the token proves
// the address, so the customer becomes registered and verified. The store
// ends the customer's sessions with a password change.
func (s *Service) SetPassword(ctx context.Context, o Origin, in SetPasswordInput) (Customer, error) {
	var r rules
	pw := r.password("password", in.Password)
	if err := r.err(); err != nil {
		return Customer{}, err
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return Customer{}, err
	}
	use := tokenUse{purposes: []string{PurposePasswordSetup, PurposePasswordReset}}
	return s.useToken(ctx, in.TokenInput, use, func(cur Customer, _ Token, now time.Time) (*Mutation, error) {
		next := cur
		next.PasswordHash, next.HasAccount, next.IsVerified = hash, true, true
		return changed(o.OrCustomer(cur.ID), events.CustomerPasswordChanged, next, now, publicData)
	})
}

// publicData is the data of events that carry the customer after the change.
func publicData(c Customer) any { return c.Public() }

// PasswordResetInput asks for a password-reset email.
type PasswordResetInput struct {
	Email string `json:"email"`
	EmailLink
}

// RequestPasswordReset sends a reset email when an active customer has the
// email. The answer is the same whether one does or not, so nobody can use
// it to learn who has an account.
func (s *Service) RequestPasswordReset(ctx context.Context, o Origin, in PasswordResetInput) error {
	r := rules{}
	email := r.email("email", in.Email)
	r.link(in.EmailLink, true)
	if err := r.err(); err != nil {
		return err
	}
	c, err := s.accountByEmail(ctx, email) // the link goes to the account's own email
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("password reset: %w", err)
	}
	if !c.IsActive {
		return nil
	}
	err = s.sendToken(ctx, o.OrCustomer(c.ID), c.ID, PurposePasswordReset, "", in.EmailLink)
	var limited *RateLimitedError
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInactive) || errors.As(err, &limited) {
		return nil // deleted or deactivated meanwhile, or just sent: the same answer
	}
	return err
}

// EmailCooldown is the least time between two emails of one purpose to one
// customer.
const EmailCooldown = time.Minute

// sendToken issues a one-time token and its notification for the customer,
// to newEmail when given (an email change) or else to the customer's email.
// The customer itself is unchanged: the notification carries its current
// version.
func (s *Service) sendToken(ctx context.Context, o Origin, id uuid.UUID, purpose, newEmail string, l EmailLink) error {
	// One email per purpose and customer per EmailCooldown: otherwise anyone
	// could flood an address with reset emails, or a customer flood any
	// address with email-change links.
	last, err := s.store.LatestToken(ctx, id, purpose)
	if err != nil {
		return err
	}
	if wait := last.Add(EmailCooldown).Sub(s.now()); wait > 0 {
		return &RateLimitedError{RetryAfter: wait}
	}
	ttl, typ := s.accounts.EmailTokenTTL, events.CustomerEmailChangeRequested
	switch purpose {
	case PurposePasswordReset:
		ttl, typ = s.accounts.ResetTokenTTL, events.CustomerPasswordResetRequested
	case PurposeDeletion:
		ttl, typ = s.accounts.ResetTokenTTL, events.CustomerDeletionRequested
	}
	_, err = s.store.UpdateMany(ctx, []uuid.UUID{id}, func(cur Customer) (*Mutation, error) {
		if !cur.IsActive {
			return nil, ErrInactive
		}
		now := s.now()
		plain, tok, err := newToken(purpose, cur.ID, now, ttl)
		if err != nil {
			return nil, err
		}
		recipient := cur
		if newEmail != "" {
			tok.NewEmail, recipient.Email = newEmail, newEmail
		}
		ev, err := notification(o, typ, recipient, plain, tok, l, now)
		if err != nil {
			return nil, err
		}
		return &Mutation{Customer: cur, Events: []cloudevents.Event{ev}, NewTokens: []Token{tok}}, nil
	})
	return err
}

// EmailChangeInput asks to move the account to a new email; the change
// happens when the link sent to the new address is used.
type EmailChangeInput struct {
	NewEmail string `json:"new_email"`
	Password string `json:"password"`
	EmailLink
}

// RequestEmailChange checks the customer's password and sends a
// confirmation link to the new address.
func (s *Service) RequestEmailChange(ctx context.Context, o Origin, id uuid.UUID, in EmailChangeInput, client string) error {
	r := rules{}
	newEmail := r.email("new_email", in.NewEmail)
	if in.Password == "" {
		r.fail("password", CodeRequired, "password is required")
	}
	r.link(in.EmailLink, true)
	if err := r.err(); err != nil {
		return err
	}
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if _, err := s.checkPassword(ctx, c.Email, in.Password, client); err != nil {
		return err
	}
	if newEmail == c.Email {
		return FieldErr("new_email", CodeInvalid, "new_email is already this account's email")
	}
	if _, err := s.store.GetByEmail(ctx, newEmail); err == nil {
		return &ConflictError{FieldError{Field: "new_email", Code: CodeUnique, Message: "another account has this email"}}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return s.sendToken(ctx, o, id, PurposeEmailChange, newEmail, in.EmailLink)
}

// ConfirmEmailChange moves the customer to the email its token was sent
// to; the link proved that address, so the customer stays verified.
func (s *Service) ConfirmEmailChange(ctx context.Context, o Origin, id uuid.UUID, in TokenInput) (Customer, error) {
	use := tokenUse{purposes: []string{PurposeEmailChange}, owner: id}
	return s.useToken(ctx, in, use, func(cur Customer, t Token, now time.Time) (*Mutation, error) {
		next := cur
		next.Email, next.IsVerified = t.NewEmail, true
		return changed(o, events.CustomerEmailChanged, next, now, func(c Customer) any {
			return events.CustomerEmailChangedData{Customer: c.Public(), PreviousEmail: cur.Email}
		})
	})
}

// RequestDeletion sends the customer a link that deletes the account.
func (s *Service) RequestDeletion(ctx context.Context, o Origin, id uuid.UUID, l EmailLink) error {
	r := rules{}
	r.link(l, true)
	if err := r.err(); err != nil {
		return err
	}
	return s.sendToken(ctx, o, id, PurposeDeletion, "", l)
}

// DeleteWithToken deletes the customer's own account with the token of
// its deletion email.
func (s *Service) DeleteWithToken(ctx context.Context, o Origin, id uuid.UUID, in TokenInput) error {
	use := tokenUse{purposes: []string{PurposeDeletion}, owner: id}
	if err := s.endTransfers(ctx, o, id); err != nil {
		return err
	}
	_, err := s.useToken(ctx, in, use, func(cur Customer, _ Token, _ time.Time) (*Mutation, error) {
		return s.deletion(o, cur)
	})
	return err
}

// OrCustomer is the origin of a storefront action: a caller without a
// token acts as the customer it is about.
func (o Origin) OrCustomer(id uuid.UUID) Origin {
	if o.Actor.Type == "" {
		o.Actor = events.Actor{Type: events.AuthUser, ID: id.String()}
	}
	return o
}

// ProfileInput is what customers may change about themselves. Their email
// changes through its own confirmed flow; status, notes and metadata are
// staff's.
type ProfileInput struct {
	FirstName    *string          `json:"first_name"`
	LastName     *string          `json:"last_name"`
	CompanyName  *string          `json:"company_name"`
	Phone        Nullable[string] `json:"phone"`
	LanguageCode *string          `json:"language_code"`
	// Attributes change those attributes that customers may set
	// (storefront); any other key is unknown to them.
	Attributes map[string]json.RawMessage `json:"attributes"`
}

// UpdateProfile is Update limited to the profile fields, and to the
// attributes customers may set.
func (s *Service) UpdateProfile(ctx context.Context, o Origin, id uuid.UUID, in ProfileInput) (Customer, error) {
	up := UpdateInput{
		FirstName: in.FirstName, LastName: in.LastName, CompanyName: in.CompanyName,
		Phone: in.Phone, LanguageCode: in.LanguageCode, Attributes: in.Attributes,
	}
	defs, err := s.updateDefinitions(ctx, up)
	if err != nil {
		return Customer{}, err
	}
	// Customers do not learn that attributes they may not set exist.
	maps.DeleteFunc(defs, func(_ string, d AttributeDefinition) bool { return !d.Storefront })
	return update(ctx, s.store, id, func(cur Customer) (*Mutation, error) {
		return s.applyUpdate(o, cur, up, defs)
	})
}

// VisibleAttributes are those of c's attributes that customers may see.
func (s *Service) VisibleAttributes(ctx context.Context, c Customer) (Attributes, error) {
	if len(c.Attributes) == 0 {
		return Attributes{}, nil
	}
	defs, err := s.store.AttributeDefinitions(ctx)
	if err != nil {
		return nil, err
	}
	return defs.Visible(c.Attributes), nil
}
