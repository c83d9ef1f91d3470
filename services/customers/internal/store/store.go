// Package store keeps customers in PostgreSQL through the sqlc queries, and
// writes each change's events to the outbox in the same transaction.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Store implements customer.Store.
type Store struct {
	pool *pgxpool.Pool
	q    *gen.Queries
}

// New returns a Store on the pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool, q: gen.New(pool)} }

var _ customer.Store = (*Store)(nil)

// Create inserts the customer and its events in one statement, so in one
// implicit transaction and one round trip.
func (s *Store) Create(ctx context.Context, c customer.Customer, evs []cloudevents.Event) error {
	ob, err := outboxRows(evs)
	if err != nil {
		return err
	}
	r := toRow(c)
	if err := s.q.InsertCustomerWithEvents(ctx, gen.InsertCustomerWithEventsParams{
		ID: r.ID, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName,
		CompanyName: r.CompanyName, Phone: r.Phone, Note: r.Note, IsActive: r.IsActive,
		LanguageCode: r.LanguageCode, ExternalReference: r.ExternalReference,
		Metadata: r.Metadata, PrivateMetadata: r.PrivateMetadata, HasAccount: r.HasAccount,
		IsVerified: r.IsVerified, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		EventIds: ob.EventIds, NatsSubjects: ob.NatsSubjects, PartitionKeys: ob.PartitionKeys, Events: ob.Events,
	}); err != nil {
		return mapError(err)
	}
	return nil
}

// Update runs fn on the locked row and writes what it decides.
func (s *Store) Update(ctx context.Context, id uuid.UUID, fn func(customer.Customer) (*customer.Mutation, error)) (customer.Customer, error) {
	var result customer.Customer
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.GetCustomerForUpdate(ctx, id)
		if err != nil {
			return mapError(err)
		}
		cur, err := fromRow(row)
		if err != nil {
			return err
		}
		m, err := fn(cur)
		if err != nil {
			return err
		}
		if m == nil {
			result = cur
			return nil
		}
		p := toRow(m.Customer)
		n, err := q.UpdateCustomer(ctx, gen.UpdateCustomerParams{
			ID: p.ID, Email: p.Email, FirstName: p.FirstName, LastName: p.LastName,
			CompanyName: p.CompanyName, Phone: p.Phone, Note: p.Note, IsActive: p.IsActive,
			LanguageCode: p.LanguageCode, ExternalReference: p.ExternalReference,
			Metadata: p.Metadata, PrivateMetadata: p.PrivateMetadata, HasAccount: p.HasAccount,
			IsVerified: p.IsVerified, Version: p.Version, UpdatedAt: p.UpdatedAt,
			ExpectedVersion: cur.Version,
		})
		if err != nil {
			return mapError(err)
		}
		if n != 1 {
			return fmt.Errorf("store: update customer %s: version moved", id)
		}
		for _, n := range m.Notes {
			if err := q.InsertCustomerNote(ctx, gen.InsertCustomerNoteParams{
				ID: n.ID, CustomerID: n.CustomerID, AuthorType: n.Author.Type, AuthorID: n.Author.ID,
				AuthorName: n.Author.Name, Body: n.Text, CreatedAt: n.CreatedAt,
			}); err != nil {
				return fmt.Errorf("store: add note: %w", err)
			}
		}
		result = m.Customer
		return writeOutbox(ctx, q, m.Events)
	})
	if err != nil {
		return customer.Customer{}, err
	}
	return result, nil
}

// Delete locks the row, builds the events with fn and deletes the row.
func (s *Store) Delete(ctx context.Context, id uuid.UUID, fn func(customer.Customer) ([]cloudevents.Event, error)) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.GetCustomerForUpdate(ctx, id)
		if err != nil {
			return mapError(err)
		}
		cur, err := fromRow(row)
		if err != nil {
			return err
		}
		evs, err := fn(cur)
		if err != nil {
			return err
		}
		if _, err := q.DeleteCustomer(ctx, id); err != nil {
			return mapError(err)
		}
		return writeOutbox(ctx, q, evs)
	})
}

// Get reads one customer.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (customer.Customer, error) {
	row, err := s.q.GetCustomer(ctx, id)
	if err != nil {
		return customer.Customer{}, mapError(err)
	}
	return fromRow(row)
}

// List reads one page in the query's order.
func (s *Store) List(ctx context.Context, lq customer.ListQuery) ([]customer.Customer, error) {
	f := filterParams(lq.Filter)
	p := gen.ListCustomersParams{
		Email: f.Email, IsActive: f.IsActive, Q: f.Q, HasAccount: f.HasAccount, IsVerified: f.IsVerified,
		CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore, UpdatedAfter: f.UpdatedAfter,
		Metadata: f.Metadata, Sort: lq.Order, RowLimit: int32(lq.Limit),
	}
	if c := lq.After; c != nil {
		p.AfterID = &c.ID
		p.AfterTime = &c.Time
		p.AfterText = &c.Text
	}
	rows, err := s.q.ListCustomers(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("store: list customers: %w", err)
	}
	out := make([]customer.Customer, len(rows))
	for i, row := range rows {
		if out[i], err = fromRow(row); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ListNotes reads a customer's notes, newest first.
func (s *Store) ListNotes(ctx context.Context, customerID uuid.UUID, limit int, after *customer.Cursor) ([]customer.Note, error) {
	p := gen.ListCustomerNotesParams{CustomerID: customerID, RowLimit: int32(limit)}
	if after != nil {
		p.AfterID, p.AfterTime = &after.ID, &after.Time
	}
	rows, err := s.q.ListCustomerNotes(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("store: list notes: %w", err)
	}
	if len(rows) == 0 {
		// No notes, or no customer: only the latter is an error.
		exists, err := s.q.CustomerExists(ctx, customerID)
		if err != nil {
			return nil, fmt.Errorf("store: list notes: %w", err)
		}
		if !exists {
			return nil, customer.ErrNotFound
		}
	}
	out := make([]customer.Note, len(rows))
	for i, r := range rows {
		out[i] = customer.Note{
			ID: r.ID, CustomerID: r.CustomerID, Text: r.Body, CreatedAt: r.CreatedAt.UTC(),
			Author: events.NoteAuthor{Type: r.AuthorType, ID: r.AuthorID, Name: r.AuthorName},
		}
	}
	return out, nil
}

// Count counts the customers matching the filter.
func (s *Store) Count(ctx context.Context, f customer.Filter) (int64, error) {
	n, err := s.q.CountCustomers(ctx, filterParams(f))
	if err != nil {
		return 0, fmt.Errorf("store: count customers: %w", err)
	}
	return n, nil
}

// filterParams maps the domain filter to the list and count queries' filters.
func filterParams(f customer.Filter) gen.CountCustomersParams {
	p := gen.CountCustomersParams{
		Email: f.Email, IsActive: f.IsActive, Q: f.Search, HasAccount: f.HasAccount, IsVerified: f.IsVerified,
		CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore, UpdatedAfter: f.UpdatedAfter,
	}
	if len(f.Metadata) > 0 {
		p.Metadata, _ = json.Marshal(f.Metadata) // a map of strings always marshals
	}
	return p
}

// writeOutbox appends the events to the outbox; the caller's transaction makes
// them exist exactly when the change does.
func writeOutbox(ctx context.Context, q *gen.Queries, evs []cloudevents.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ob, err := outboxRows(evs)
	if err != nil {
		return err
	}
	if err := q.InsertOutboxEvents(ctx, ob); err != nil {
		return fmt.Errorf("store: write outbox: %w", err)
	}
	return nil
}

// outboxRows turns events into the column arrays the outbox inserts take.
func outboxRows(evs []cloudevents.Event) (gen.InsertOutboxEventsParams, error) {
	var p gen.InsertOutboxEventsParams
	for _, e := range evs {
		b, err := events.Marshal(e)
		if err != nil {
			return p, fmt.Errorf("store: encode event: %w", err)
		}
		id, err := uuid.Parse(e.ID())
		if err != nil {
			return p, fmt.Errorf("store: event id: %w", err)
		}
		key, _ := e.Extensions()[events.ExtPartitionKey].(string)
		p.EventIds = append(p.EventIds, id)
		p.NatsSubjects = append(p.NatsSubjects, events.Subject(e.Type()))
		p.PartitionKeys = append(p.PartitionKeys, key)
		p.Events = append(p.Events, b)
	}
	return p, nil
}

// mapError turns driver errors into the domain's sentinels.
func mapError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return customer.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		switch pgErr.ConstraintName {
		case "customers_email_key":
			return customer.ErrEmailTaken
		case "customers_external_reference_key":
			return customer.ErrExternalRefUsed
		}
	}
	return fmt.Errorf("store: %w", err)
}

func toRow(c customer.Customer) gen.Customer {
	md, _ := json.Marshal(nonNil(c.Metadata))
	pmd, _ := json.Marshal(nonNil(c.PrivateMetadata))
	return gen.Customer{
		ID: c.ID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName,
		CompanyName: c.CompanyName, Phone: c.Phone, Note: c.Note, IsActive: c.IsActive,
		LanguageCode: c.LanguageCode, ExternalReference: c.ExternalReference,
		Metadata: md, PrivateMetadata: pmd, HasAccount: c.HasAccount, IsVerified: c.IsVerified,
		Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

func fromRow(r gen.Customer) (customer.Customer, error) {
	c := customer.Customer{
		ID: r.ID, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName,
		CompanyName: r.CompanyName, Phone: r.Phone, Note: r.Note, IsActive: r.IsActive,
		LanguageCode: r.LanguageCode, ExternalReference: r.ExternalReference,
		HasAccount: r.HasAccount, IsVerified: r.IsVerified, Version: r.Version,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if err := json.Unmarshal(r.Metadata, &c.Metadata); err != nil {
		return c, fmt.Errorf("store: customer %s metadata: %w", r.ID, err)
	}
	if err := json.Unmarshal(r.PrivateMetadata, &c.PrivateMetadata); err != nil {
		return c, fmt.Errorf("store: customer %s private metadata: %w", r.ID, err)
	}
	return c, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
