// Package customer owns the customer use cases of the command service: it
// validates input, applies the rules and decides which events a change emits.
// Persistence (rows and outbox in one transaction) sits behind Store.
package customer

import (
	"context"
	"errors"
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
)

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
	HasAccount        bool
	IsVerified        bool
	Version           int64
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Public is the customer as apps and public events see it: without private metadata.
func (c Customer) Public() events.Customer {
	return events.Customer{
		ID: c.ID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName,
		CompanyName: c.CompanyName, Phone: c.Phone, Note: c.Note, IsActive: c.IsActive,
		LanguageCode: c.LanguageCode, ExternalReference: c.ExternalReference,
		Metadata: nonNil(c.Metadata), HasAccount: c.HasAccount, IsVerified: c.IsVerified,
		Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

// Origin says who asked for a change and in which trace; every event of the
// change carries it.
type Origin struct {
	Actor       events.Actor
	ActorName   string // shown as a note's author
	TraceParent string
}

// Mutation is what an update decides inside the store's transaction: the
// customer to write and the events to put in the outbox with it.
type Mutation struct {
	Customer Customer
	Events   []cloudevents.Event
	Notes    []Note // notes to add with the change
}

// Store keeps customers and their outbox events; each write is one transaction.
type Store interface {
	// Create inserts the customer and its events.
	Create(ctx context.Context, c Customer, evs []cloudevents.Event) error
	// Update locks the customer, lets fn decide the change, and writes it. A nil
	// Mutation from fn means nothing changed and nothing is written.
	Update(ctx context.Context, id uuid.UUID, fn func(current Customer) (*Mutation, error)) (Customer, error)
	// Delete locks the customer, lets fn build the events, and deletes it.
	Delete(ctx context.Context, id uuid.UUID, fn func(current Customer) ([]cloudevents.Event, error)) error
	Get(ctx context.Context, id uuid.UUID) (Customer, error)
	List(ctx context.Context, q ListQuery) ([]Customer, error)
	// ListNotes reads a customer's notes, newest first; ErrNotFound when the
	// customer does not exist.
	ListNotes(ctx context.Context, customerID uuid.UUID, limit int, after *Cursor) ([]Note, error)
	Count(ctx context.Context, f Filter) (int64, error)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
