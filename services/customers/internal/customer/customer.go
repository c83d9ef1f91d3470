// Package customer owns the customer use cases of the command service: it
// validates input, applies the rules and decides which events a change emits.
// Persistence (rows and outbox in one transaction) sits behind Store.
package customer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// Sentinel errors; the HTTP edge maps them to problem details.
var (
	ErrNotFound        = errors.New("customer not found")
	ErrEmailTaken      = errors.New("email already in use")
	ErrExternalRefUsed = errors.New("external reference already in use")
	ErrAddressNotFound = errors.New("address not found")
	ErrGroupNotFound   = errors.New("customer group not found")
	ErrGroupNameTaken  = errors.New("customer group name already in use")
)

// ConflictError is a field whose value another record already holds (409).
type ConflictError struct{ FieldError }

func (e *ConflictError) Error() string { return e.Field + ": " + e.Message }

// Customer is the full customer record, private metadata included.
type Customer struct {
	ID                uuid.UUID
	Email             string
	FirstName         string
	LastName          string
	CompanyName       string
	Phone             *string
	Note              string
	IsActive          bool
	LanguageCode      string
	ExternalReference *string
	Metadata          map[string]string
	PrivateMetadata   map[string]string
	// Attributes are the values of typed custom attributes (see
	// AttributeDefinition), by key.
	Attributes Attributes
	HasAccount bool
	IsVerified bool
	// IsAnonymized: the customer was erased (Anonymize); it cannot be
	// changed any more.
	IsAnonymized bool
	// Marketing consent by channel (see SetConsent).
	EmailConsent Consent
	SMSConsent   Consent
	// PasswordHash is the argon2id PHC string, empty while the customer has
	// no password. Public() leaves it out, so no answer or event carries it.
	PasswordHash string
	// Default addresses: ids of the customer's own addresses, or nil.
	DefaultShippingAddressID *uuid.UUID
	DefaultBillingAddressID  *uuid.UUID
	Groups                   []uuid.UUID // ids of the groups it belongs to
	// Derived from its orders; kept by the store with every change of an
	// order's owner.
	NumberOfOrders int
	LastOrderAt    *time.Time
	Version        int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Public is the customer as apps and public events see it: without private metadata.
func (c Customer) Public() events.Customer {
	return events.Customer{
		ID: c.ID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName,
		CompanyName: c.CompanyName, Phone: c.Phone, Note: c.Note, IsActive: c.IsActive,
		LanguageCode: c.LanguageCode, ExternalReference: c.ExternalReference,
		Metadata: nonNil(c.Metadata), Attributes: nonNilAttributes(c.Attributes), HasAccount: c.HasAccount, IsVerified: c.IsVerified, IsAnonymized: c.IsAnonymized,
		EmailMarketingConsent: c.EmailConsent.Public(), SMSMarketingConsent: c.SMSConsent.Public(),
		DefaultShippingAddressID: c.DefaultShippingAddressID, DefaultBillingAddressID: c.DefaultBillingAddressID,
		Groups: nonNilIDs(c.Groups), NumberOfOrders: c.NumberOfOrders, LastOrderAt: c.LastOrderAt, Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

// StaffView is the customer as staff and integrators see it, over HTTP and
// the bus alike: the public shape plus private metadata, which only
// MANAGE_USERS callers (and integrators' commands) ever get.
type StaffView struct {
	events.Customer
	PrivateMetadata map[string]string `json:"private_metadata"`
}

// Staff is the customer's StaffView.
func (c Customer) Staff() StaffView {
	return StaffView{Customer: c.Public(), PrivateMetadata: nonNil(c.PrivateMetadata)}
}

// Origin says who asked for a change and in which trace; every event of the
// change carries it.
type Origin struct {
	Actor       events.Actor
	ActorName   string // shown as a note's author
	TraceParent string
	// CausationID is the id of the bus command being applied, if any.
	CausationID string
}

// Mutation is what an update decides inside the store's transaction: the
// customer to write and the events to put in the outbox with it.
type Mutation struct {
	Customer Customer
	Events   []cloudevents.Event
	Notes    []Note // notes to add with the change
	// Address changes written with the customer.
	NewAddresses     []Address
	ChangedAddresses []Address
	DeletedAddresses []uuid.UUID
	NewTokens        []Token // one-time tokens issued with the change
	// NewIdentities links the customer to accounts at identity providers.
	NewIdentities []Identity
	// Delete removes the customer instead of writing it (a deletion
	// confirmed by email); Events say so.
	Delete bool
	// Consent is the change of a consent for its history, when the
	// mutation changes one.
	Consent *ConsentChange
	// Erase, when set, erases the customer (Anonymize): the store scrubs
	// what the row does not hold and leaves the streams to the relay.
	Erase *Erasure
	// Rehash says the new PasswordHash is the same password hashed anew
	// (a hash from another system replaced at login): the customer's
	// sessions stay, where a new password ends them.
	Rehash bool
}

// Store keeps customers and their outbox events; each write is one transaction.
type Store interface {
	// Create inserts the customer with its addresses, its group memberships
	// (Customer.Groups; unknown groups are a ValidationError), its tokens,
	// identities and events.
	Create(ctx context.Context, n NewCustomer) error
	// UseToken locks the one-time token with this hash and its customer, lets
	// fn decide the change, and marks the token used with it; ErrTokenInvalid
	// when no token has the hash.
	UseToken(ctx context.Context, hash []byte, fn func(current Customer, t Token) (*Mutation, error)) (Customer, error)
	// GetByEmail reads the customer with this (normalised) email.
	GetByEmail(ctx context.Context, email string) (Customer, error)
	// GetByMergedEmail reads the customer that a merged customer's email
	// (one its target did not take) lives on in.
	GetByMergedEmail(ctx context.Context, email string) (Customer, error)
	// GetByExternalReference reads the customer with this external reference.
	GetByExternalReference(ctx context.Context, ref string) (Customer, error)
	// CreateMany inserts new customers with their addresses and events, all
	// or none (an import's rows); a taken email fails them all.
	CreateMany(ctx context.Context, cs []NewCustomer) error
	// TakenEmailsAndReferences says which of the emails and external
	// references customers have already.
	TakenEmailsAndReferences(ctx context.Context, emails, refs []string) (takenEmails, takenRefs map[string]bool, err error)
	// LatestToken is when the customer was last sent a token of this
	// purpose; the zero time when never.
	LatestToken(ctx context.Context, customerID uuid.UUID, purpose string) (time.Time, error)
	// UpdateMany locks the customers, lets fn decide each one's change, and
	// writes them all or none. A nil Mutation from fn means that customer is
	// unchanged. Unknown ids are a ValidationError on field "ids"; with one id,
	// ErrNotFound. It returns the customers after the change, in ids' order.
	UpdateMany(ctx context.Context, ids []uuid.UUID, fn func(current Customer) (*Mutation, error)) ([]Customer, error)
	// UpdateAddress is UpdateMany for one customer, giving fn one of its
	// addresses as well; ErrAddressNotFound when it has no such address.
	UpdateAddress(ctx context.Context, id, addressID uuid.UUID, fn func(current Customer, a Address) (*Mutation, error)) (Customer, error)
	// DeleteMany locks the customers, lets fn build each one's deletion (a
	// Mutation with Delete set), and deletes them all or none; unknown ids
	// as in UpdateMany.
	DeleteMany(ctx context.Context, ids []uuid.UUID, fn func(current Customer) (*Mutation, error)) error
	Get(ctx context.Context, id uuid.UUID) (Customer, error)
	// ListAddresses reads a customer's addresses, oldest first; ErrNotFound
	// when the customer does not exist.
	ListAddresses(ctx context.Context, customerID uuid.UUID, limit int, after *Cursor) ([]Address, error)
	// AddressForm reads the address form settings; the defaults when never saved.
	AddressForm(ctx context.Context) (AddressForm, error)
	SaveAddressForm(ctx context.Context, f AddressForm) error
	GroupStore
	AttributeStore
	List(ctx context.Context, q ListQuery) ([]Customer, error)
	// ListNotes reads a customer's notes, newest first; ErrNotFound when the
	// customer does not exist.
	ListNotes(ctx context.Context, customerID uuid.UUID, limit int, after *Cursor) ([]Note, error)
	// History reads up to limit entries of the customer's history before
	// the position, newest first; ErrNotFound when the customer does not
	// exist.
	History(ctx context.Context, customerID uuid.UUID, before int64, limit int) ([]HistoryEntry, error)
	// Count counts the customers matching f, but stops at limit.
	Count(ctx context.Context, f Filter, limit int) (int64, error)
	// Snapshot runs fn on one consistent snapshot of the database, a
	// read-only transaction that sees nothing committed after it began.
	Snapshot(ctx context.Context, fn func(Snapshot) error) error
	// DataSnapshot is Snapshot for a customer's data export.
	DataSnapshot(ctx context.Context, fn func(DataSnapshot) error) error
	SessionStore
	IdentityStore
}

// update is Store.UpdateMany for one customer, which must not be
// anonymized.
func update(ctx context.Context, st Store, id uuid.UUID, fn func(Customer) (*Mutation, error)) (Customer, error) {
	cs, err := st.UpdateMany(ctx, []uuid.UUID{id}, func(cur Customer) (*Mutation, error) {
		if err := changeable(cur); err != nil {
			return nil, err
		}
		return fn(cur)
	})
	if err != nil {
		return Customer{}, err
	}
	return cs[0], nil
}

// SortIDs orders ids as PostgreSQL orders uuids, so a customer's groups are
// listed the same way by every answer, read and event, whatever order they
// were given or joined in.
func SortIDs(ids []uuid.UUID) []uuid.UUID {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

func nonNilIDs(ids []uuid.UUID) []uuid.UUID {
	if ids == nil {
		return []uuid.UUID{}
	}
	return ids
}

func nonNilAttributes(a Attributes) map[string]json.RawMessage {
	if a == nil {
		return map[string]json.RawMessage{}
	}
	return a
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
