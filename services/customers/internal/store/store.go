// Package store keeps customers in PostgreSQL through the sqlc queries, and
// writes each change's events to the outbox in the same transaction.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/db/groupcommit"
	"github.com/customerbus/customerbus/db/outbox"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Store implements customer.Store.
type Store struct {
	db DB
	q  *gen.Queries
	// writes is where the request writes begin their transactions (see
	// write): db, or a group commit on it.
	writes DB
	groups *groupcommit.DB // nil: no group commit
	// defs is shared by the copies WithGroupCommit makes.
	defs *definitionsCache
}

// New returns a Store on db.
func New(db DB) *Store { return &Store{db: db, q: gen.New(db), writes: db, defs: &definitionsCache{}} }

// On returns a store on db (a transaction, say) that shares s's copy of
// the attribute definitions.
func (s *Store) On(db DB) *Store {
	on := New(db)
	on.defs = s.defs
	return on
}

// WithGroupCommit returns the store with its request writes committed in
// groups by g (nil: the store itself).
func (s *Store) WithGroupCommit(g *groupcommit.DB) *Store {
	if g == nil {
		return s
	}
	grouped := *s
	grouped.writes, grouped.groups = g, g
	return &grouped
}

// write runs fn in a transaction of its own (a savepoint when the store is
// on a caller's transaction). These are the short writes of one request;
// with group commit, concurrent ones commit together, and key (uuid.Nil
// when none) names the customer a write changes, so that one customer's
// writes share a lane. Group transactions of different lanes can deadlock
// where two requests lock the same rows in opposite orders; PostgreSQL then
// refuses one statement, and the write runs again.
func (s *Store) write(ctx context.Context, key uuid.UUID, fn func(q *gen.Queries) error) error {
	if key != uuid.Nil {
		ctx = groupcommit.WithKey(ctx, key[:])
	}
	return s.againAfterDeadlock(func() error {
		return pgx.BeginFunc(ctx, s.writes, func(tx pgx.Tx) error { return fn(s.q.WithTx(tx)) })
	})
}

// againAfterDeadlock runs a grouped write again (twice at most) when
// PostgreSQL refused it to break a deadlock between groups of two lanes.
func (s *Store) againAfterDeadlock(write func() error) error {
	for attempt := 1; ; attempt++ {
		err := write()
		var pgErr *pgconn.PgError
		if s.groups != nil && attempt < 3 && errors.As(err, &pgErr) && pgErr.Code == "40P01" { // deadlock_detected
			continue
		}
		return err
	}
}

// DB is what a store runs on: the pool, or a transaction that the store's
// own transactions join as savepoints (a bus command records its id in the
// same transaction as its change).
type DB interface {
	gen.DBTX
	Begin(ctx context.Context) (pgx.Tx, error)
}

var _ customer.Store = (*Store)(nil)

// Create inserts the customer and its events in one statement, so in one
// implicit transaction and one round trip; addresses and groups, when given,
// make it a transaction of a few statements.
func (s *Store) Create(ctx context.Context, n customer.NewCustomer) (err error) {
	c, addresses, tokens, evs := n.Customer, n.Addresses, n.Tokens, n.Events
	ctx, span := outbox.Start(ctx, evs)
	defer func() { tracing.End(span, err) }()
	ob, err := outbox.Rows(evs)
	if err != nil {
		return err
	}
	r := toRow(c)
	insert := func(q *gen.Queries) error {
		written, err := q.InsertCustomerWithEvents(ctx, gen.InsertCustomerWithEventsParams{
			ID: r.ID, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName,
			CompanyName: r.CompanyName, Phone: r.Phone, Note: r.Note, IsActive: r.IsActive,
			LanguageCode: r.LanguageCode, ExternalReference: r.ExternalReference,
			Metadata: r.Metadata, PrivateMetadata: r.PrivateMetadata, HasAccount: r.HasAccount,
			IsVerified: r.IsVerified, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
			DefaultShippingAddressID: r.DefaultShippingAddressID, DefaultBillingAddressID: r.DefaultBillingAddressID,
			GroupIds: r.GroupIds, PasswordHash: r.PasswordHash, Attributes: r.Attributes, EventIds: ob.EventIds, NatsSubjects: ob.NatsSubjects, PartitionKeys: ob.PartitionKeys, Events: ob.Events,
			DefinitionsVersion: n.DefinitionsVersion,
		})
		if err == nil && written == 0 {
			s.defs.forget(n.DefinitionsVersion)
			return customer.ErrDefinitionsChanged
		}
		return err
	}
	if len(addresses) == 0 && len(c.Groups) == 0 && len(tokens) == 0 && len(n.Identities) == 0 && len(c.Attributes) == 0 {
		if s.groups == nil {
			return mapError(insert(s.q))
		}
		// No key: any lane will do, since no other write can be about a
		// customer before its create commits.
		q := gen.New(s.groups.Writes())
		return mapError(s.againAfterDeadlock(func() error { return insert(q) }))
	}
	return s.write(ctx, c.ID, func(q *gen.Queries) error {
		if len(c.Groups) > 0 {
			// Locked first, so that none can be deleted before we commit.
			found, err := q.LockGroupIDs(ctx, c.Groups)
			if err != nil {
				return fmt.Errorf("store: lock groups: %w", err)
			}
			if missing := missingIDs(c.Groups, found); len(missing) > 0 {
				return &customer.ValidationError{Errors: []customer.FieldError{{Field: "groups", Code: customer.CodeNotFound,
					Message: fmt.Sprintf("no customer group has these ids: %v", missing)}}}
			}
		}
		if err := insert(q); err != nil {
			return mapError(err)
		}
		if err := insertTokens(ctx, q, tokens); err != nil {
			return err
		}
		if err := insertIdentities(ctx, q, n.Identities); err != nil {
			return err
		}
		if err := indexAttributes(ctx, q, c); err != nil {
			return err
		}
		return insertAddresses(ctx, q, addresses)
	})
}

// UpdateMany locks the customers in id order, runs fn on each and writes what
// it decides, all in one transaction.
func (s *Store) UpdateMany(ctx context.Context, ids []uuid.UUID, fn func(customer.Customer) (*customer.Mutation, error)) ([]customer.Customer, error) {
	var result []customer.Customer
	err := s.write(ctx, oneOf(ids), func(q *gen.Queries) error {
		current, err := lockCustomers(ctx, q, ids)
		if err != nil {
			return err
		}
		var evs []cloudevents.Event
		result = make([]customer.Customer, len(ids))
		for i, id := range ids {
			cur := current[id]
			m, err := fn(cur)
			if err != nil {
				return err
			}
			if result[i], err = apply(ctx, q, cur, m); err != nil {
				return err
			}
			if m != nil {
				evs = append(evs, m.Events...)
			}
		}
		return writeOutbox(ctx, q, evs)
	})
	if err != nil {
		return nil, err
	}
	return result, nil
}

// UpdateAddress locks the customer, reads one of its addresses, runs fn and
// writes what it decides.
func (s *Store) UpdateAddress(ctx context.Context, id, addressID uuid.UUID, fn func(customer.Customer, customer.Address) (*customer.Mutation, error)) (customer.Customer, error) {
	var result customer.Customer
	err := s.write(ctx, id, func(q *gen.Queries) error {
		current, err := lockCustomers(ctx, q, []uuid.UUID{id})
		if err != nil {
			return err
		}
		cur := current[id]
		row, err := q.GetCustomerAddress(ctx, gen.GetCustomerAddressParams{ID: addressID, CustomerID: id})
		if errors.Is(err, pgx.ErrNoRows) {
			return customer.ErrAddressNotFound
		}
		if err != nil {
			return fmt.Errorf("store: read address: %w", err)
		}
		m, err := fn(cur, fromAddressRow(row))
		if err != nil {
			return err
		}
		if result, err = apply(ctx, q, cur, m); err != nil {
			return err
		}
		if m == nil {
			return nil
		}
		return writeOutbox(ctx, q, m.Events)
	})
	return result, err
}

// DeleteMany locks the customers, builds their deletions with fn and
// applies them.
func (s *Store) DeleteMany(ctx context.Context, ids []uuid.UUID, fn func(customer.Customer) (*customer.Mutation, error)) error {
	return s.write(ctx, oneOf(ids), func(q *gen.Queries) error {
		current, err := lockCustomers(ctx, q, ids)
		if err != nil {
			return err
		}
		var evs []cloudevents.Event
		for _, id := range ids {
			m, err := fn(current[id])
			if err != nil {
				return err
			}
			if !m.Delete {
				return fmt.Errorf("store: the deletion of %s does not delete", id)
			}
			if _, err := apply(ctx, q, current[id], m); err != nil {
				return err
			}
			evs = append(evs, m.Events...)
		}
		return writeOutbox(ctx, q, evs)
	})
}

// oneOf is the key of a write of ids: the one customer's id, else none.
func oneOf(ids []uuid.UUID) uuid.UUID {
	if len(ids) == 1 {
		return ids[0]
	}
	return uuid.Nil
}

// rowColumns is what UpdateCustomer writes for c: the columns of the row
// that no statement of their own keeps (the password, groups and order
// counts have theirs).
func rowColumns(c customer.Customer) gen.UpdateCustomerParams {
	p := toRow(c)
	return gen.UpdateCustomerParams{
		ID: p.ID, Email: p.Email, FirstName: p.FirstName, LastName: p.LastName,
		CompanyName: p.CompanyName, Phone: p.Phone, Note: p.Note, IsActive: p.IsActive,
		LanguageCode: p.LanguageCode, ExternalReference: p.ExternalReference,
		Metadata: p.Metadata, PrivateMetadata: p.PrivateMetadata, HasAccount: p.HasAccount,
		IsVerified: p.IsVerified, Version: p.Version, UpdatedAt: p.UpdatedAt,
		DefaultShippingAddressID: p.DefaultShippingAddressID, DefaultBillingAddressID: p.DefaultBillingAddressID,
		Attributes: p.Attributes,
	}
}

// updateRow writes next's columns over cur, provided nobody moved cur's version.
func updateRow(ctx context.Context, q *gen.Queries, cur customer.Customer, next gen.UpdateCustomerParams) error {
	next.ExpectedVersion = cur.Version
	n, err := q.UpdateCustomer(ctx, next)
	if err != nil {
		return mapError(err)
	}
	if n != 1 {
		return fmt.Errorf("store: update customer %s: version moved", cur.ID)
	}
	return nil
}

// lockCustomers reads and locks the customers; a NotFoundError names any
// that do not exist, and where those merged went.
func lockCustomers(ctx context.Context, q *gen.Queries, ids []uuid.UUID) (map[uuid.UUID]customer.Customer, error) {
	rows, err := q.GetCustomersForUpdate(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("store: lock customers: %w", err)
	}
	out := make(map[uuid.UUID]customer.Customer, len(rows))
	found := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		c, err := fromRow(r)
		if err != nil {
			return nil, err
		}
		out[c.ID] = c
		found[i] = c.ID
	}
	if missing := missingIDs(ids, found); len(missing) > 0 {
		nf := &customer.NotFoundError{IDs: missing}
		for _, id := range missing {
			var merged *customer.MergedError
			if err := notFound(ctx, q, id); errors.As(err, &merged) {
				if nf.MergedInto == nil {
					nf.MergedInto = map[uuid.UUID]uuid.UUID{}
				}
				nf.MergedInto[id] = merged.Into
			} else if !errors.Is(err, customer.ErrNotFound) {
				return nil, err
			}
		}
		return nil, nf
	}
	return out, nil
}

// apply writes one customer's mutation (but not its events); a nil mutation
// leaves cur as it is.
func apply(ctx context.Context, q *gen.Queries, cur customer.Customer, m *customer.Mutation) (customer.Customer, error) {
	if m == nil {
		return cur, nil
	}
	if m.Erase != nil {
		if err := erase(ctx, q, cur, m.Erase); err != nil {
			return cur, err
		}
	}
	if m.Delete {
		if _, err := q.DeleteCustomers(ctx, []uuid.UUID{cur.ID}); err != nil {
			return cur, mapError(err)
		}
		return cur, nil
	}
	if err := insertAddresses(ctx, q, m.NewAddresses); err != nil {
		return cur, err
	}
	for _, a := range m.ChangedAddresses {
		if _, err := q.UpdateCustomerAddress(ctx, gen.UpdateCustomerAddressParams{
			ID: a.ID, CustomerID: a.CustomerID, FirstName: a.FirstName, LastName: a.LastName,
			CompanyName: a.CompanyName, StreetAddress1: a.StreetAddress1, StreetAddress2: a.StreetAddress2,
			City: a.City, CityArea: a.CityArea, PostalCode: a.PostalCode, Country: a.Country,
			CountryArea: a.CountryArea, Phone: a.Phone, UpdatedAt: a.UpdatedAt,
		}); err != nil {
			return cur, fmt.Errorf("store: update address: %w", err)
		}
	}
	for _, id := range m.DeletedAddresses {
		if _, err := q.DeleteCustomerAddress(ctx, gen.DeleteCustomerAddressParams{ID: id, CustomerID: cur.ID}); err != nil {
			return cur, fmt.Errorf("store: delete address: %w", err)
		}
	}
	if err := insertTokens(ctx, q, m.NewTokens); err != nil {
		return cur, err
	}
	if err := insertIdentities(ctx, q, m.NewIdentities); err != nil {
		return cur, err
	}
	if m.Customer.PasswordHash != cur.PasswordHash {
		if err := q.SetCustomerPassword(ctx, gen.SetCustomerPasswordParams{ID: cur.ID, PasswordHash: nullable(m.Customer.PasswordHash)}); err != nil {
			return cur, fmt.Errorf("store: set password: %w", err)
		}
	}
	if !m.Customer.EmailConsent.Equal(cur.EmailConsent) || !m.Customer.SMSConsent.Equal(cur.SMSConsent) {
		if err := setConsent(ctx, q, m.Customer); err != nil {
			return cur, err
		}
	}
	if c := m.Consent; c != nil {
		if err := q.InsertConsentChange(ctx, gen.InsertConsentChangeParams{
			CustomerID: cur.ID, Channel: c.Channel, State: c.Consent.State, OptInLevel: c.Consent.OptInLevel,
			CollectedFrom: c.Consent.CollectedFrom, ActorType: c.Actor.Type, ActorID: c.Actor.ID, ChangedAt: *c.Consent.UpdatedAt,
		}); err != nil {
			return cur, fmt.Errorf("store: consent history: %w", err)
		}
	}
	// A new password or a deactivation ends every login of the customer, in
	// the same transaction; a deletion ends them by cascade. A rehash is not
	// a new password: the logins stay.
	newPassword := m.Customer.PasswordHash != cur.PasswordHash && !m.Rehash
	if newPassword || (cur.IsActive && !m.Customer.IsActive) {
		if err := q.DeleteCustomerSessions(ctx, cur.ID); err != nil {
			return cur, fmt.Errorf("store: end sessions: %w", err)
		}
	}
	// The row is written whenever one of its columns differs from what was
	// locked, not only when the version moved: a change of private metadata
	// alone moves updated_at but not the version, since no public event may
	// reveal it and a version without its event would leave a gap in
	// sequence. A change that only issues a token (a password-reset email)
	// differs in no column and writes nothing.
	if next := rowColumns(m.Customer); !reflect.DeepEqual(next, rowColumns(cur)) {
		if err := updateRow(ctx, q, cur, next); err != nil {
			return cur, err
		}
	}
	if !m.Customer.Attributes.Equal(cur.Attributes) {
		if err := reindexAttributes(ctx, q, m.Customer); err != nil {
			return cur, err
		}
	}
	for _, n := range m.Notes {
		if err := q.InsertCustomerNote(ctx, gen.InsertCustomerNoteParams{
			ID: n.ID, CustomerID: n.CustomerID, AuthorType: n.Author.Type, AuthorID: n.Author.ID,
			AuthorName: n.Author.Name, Body: n.Text, CreatedAt: n.CreatedAt,
		}); err != nil {
			return cur, fmt.Errorf("store: add note: %w", err)
		}
	}
	return m.Customer, nil
}

// setConsent writes both of the customer's consents.
func setConsent(ctx context.Context, q *gen.Queries, c customer.Customer) error {
	e, m := c.EmailConsent, c.SMSConsent
	if err := q.SetCustomerConsent(ctx, gen.SetCustomerConsentParams{
		ID: c.ID, EmailConsentState: e.State, EmailConsentOptInLevel: e.OptInLevel, EmailConsentUpdatedAt: e.UpdatedAt, EmailConsentCollectedFrom: e.CollectedFrom,
		SmsConsentState: m.State, SmsConsentOptInLevel: m.OptInLevel, SmsConsentUpdatedAt: m.UpdatedAt, SmsConsentCollectedFrom: m.CollectedFrom,
	}); err != nil {
		return fmt.Errorf("store: set consent: %w", err)
	}
	return nil
}

// insertAddresses inserts the addresses in one round trip.
func insertAddresses(ctx context.Context, q *gen.Queries, addresses []customer.Address) error {
	if len(addresses) == 0 {
		return nil
	}
	params := make([]gen.InsertCustomerAddressParams, len(addresses))
	for i, a := range addresses {
		params[i] = addressParams(a)
	}
	var err error
	q.InsertCustomerAddress(ctx, params).Exec(func(_ int, e error) {
		if e != nil && err == nil {
			err = fmt.Errorf("store: insert address: %w", e)
		}
	})
	return err
}

// addressParams is an address as the queries that insert one take it (the
// import's COPY takes the same fields: a conversion of this).
func addressParams(a customer.Address) gen.InsertCustomerAddressParams {
	return gen.InsertCustomerAddressParams{
		ID: a.ID, CustomerID: a.CustomerID, FirstName: a.FirstName, LastName: a.LastName,
		CompanyName: a.CompanyName, StreetAddress1: a.StreetAddress1, StreetAddress2: a.StreetAddress2,
		City: a.City, CityArea: a.CityArea, PostalCode: a.PostalCode, Country: a.Country,
		CountryArea: a.CountryArea, Phone: a.Phone, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
}

// missingIDs lists the wanted ids that are not among found.
func missingIDs(wanted, found []uuid.UUID) []uuid.UUID {
	have := make(map[uuid.UUID]bool, len(found))
	for _, id := range found {
		have[id] = true
	}
	var out []uuid.UUID
	for _, id := range wanted {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}

// Get reads one customer.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (customer.Customer, error) {
	row, err := s.q.GetCustomer(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return customer.Customer{}, notFound(ctx, s.q, id)
	}
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
		Metadata: f.Metadata, GroupID: f.GroupID, OrdersMin: f.OrdersMin, OrdersMax: f.OrdersMax,
		PlacedAfter: f.PlacedAfter, PlacedBefore: f.PlacedBefore, OrderedBeforeCreated: f.OrderedBeforeCreated,
		EmailConsent: f.EmailConsent, SmsConsent: f.SmsConsent,
		Sort: lq.Order, RowLimit: int32(lq.Limit),
	}
	if c := lq.After; c != nil {
		p.AfterID = &c.ID
		p.AfterTime = &c.Time
		p.AfterText = &c.Text
		p.AfterInt = int32Ptr(&c.Int)
	}
	var rows []gen.Customer
	var err error
	if len(lq.Attributes) > 0 {
		rows, err = s.q.ListCustomersByAttribute(ctx, listByAttribute(p, lq.Attributes))
	} else {
		rows, err = s.q.ListCustomers(ctx, p)
	}
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
			return nil, notFound(ctx, s.q, customerID)
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

// Count counts the customers matching the filter, up to limit.
func (s *Store) Count(ctx context.Context, f customer.Filter, limit int) (int64, error) {
	p := filterParams(f)
	p.CountLimit = int32(limit)
	var n int64
	var err error
	switch {
	case len(f.Attributes) == 1 && onlyAttributes(f):
		n, err = s.q.CountCustomersByOneAttribute(ctx, countByOneAttribute(f.Attributes[0], p.CountLimit))
	case len(f.Attributes) > 0:
		n, err = s.q.CountCustomersByAttribute(ctx, countByAttribute(p, f.Attributes))
	default:
		n, err = s.q.CountCustomers(ctx, p)
	}
	if err != nil {
		return 0, fmt.Errorf("store: count customers: %w", err)
	}
	return n, nil
}

// filterParams maps the domain filter to the list and count queries'
// filters, but for the attribute filters (attributeParams).
func filterParams(f customer.Filter) gen.CountCustomersParams {
	p := gen.CountCustomersParams{
		Email: f.Email, IsActive: f.IsActive, Q: f.Search, HasAccount: f.HasAccount, IsVerified: f.IsVerified,
		CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore, UpdatedAfter: f.UpdatedAfter,
		GroupID: f.GroupID, OrdersMin: int32Ptr(f.NumberOfOrdersMin), OrdersMax: int32Ptr(f.NumberOfOrdersMax),
		PlacedAfter: f.PlacedOrdersAfter, PlacedBefore: f.PlacedOrdersBefore, OrderedBeforeCreated: f.OrderedBeforeCreated,
		EmailConsent: f.EmailConsent, SmsConsent: f.SMSConsent,
	}
	if len(f.Metadata) > 0 {
		p.Metadata, _ = json.Marshal(f.Metadata) // a map of strings always marshals
	}
	return p
}

// writeOutbox appends the events to the outbox in the caller's transaction.
func writeOutbox(ctx context.Context, q *gen.Queries, evs []cloudevents.Event) error {
	return outbox.Write(ctx, q, evs)
}

// mapError turns driver errors into the domain's sentinels.
func mapError(err error) error {
	if err == nil {
		return nil
	}
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
		case "customer_groups_name_key":
			return customer.ErrGroupNameTaken
		case "customer_identities_issuer_subject_key":
			return customer.ErrIdentityTaken
		}
	}
	return fmt.Errorf("store: %w", err)
}

func toRow(c customer.Customer) gen.Customer {
	md, _ := json.Marshal(nonNil(c.Metadata))
	attrs, _ := json.Marshal(nonNilAttributes(c.Attributes)) // canonical JSON values always marshal
	pmd, _ := json.Marshal(nonNil(c.PrivateMetadata))
	return gen.Customer{
		ID: c.ID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName,
		CompanyName: c.CompanyName, Phone: c.Phone, Note: c.Note, IsActive: c.IsActive,
		LanguageCode: c.LanguageCode, ExternalReference: c.ExternalReference,
		Metadata: md, PrivateMetadata: pmd, HasAccount: c.HasAccount, IsVerified: c.IsVerified,
		Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		DefaultShippingAddressID: c.DefaultShippingAddressID, DefaultBillingAddressID: c.DefaultBillingAddressID,
		GroupIds:     append([]uuid.UUID{}, c.Groups...), // never nil: the column is NOT NULL
		PasswordHash: nullable(c.PasswordHash),
		Attributes:   attrs,
	}
}

func fromRow(r gen.Customer) (customer.Customer, error) {
	c := customer.Customer{
		DefaultShippingAddressID: r.DefaultShippingAddressID, DefaultBillingAddressID: r.DefaultBillingAddressID,
		Groups: customer.SortIDs(r.GroupIds), PasswordHash: deref(r.PasswordHash),
		NumberOfOrders: int(r.NumberOfOrders), LastOrderAt: utcPtr(r.LastOrderAt),
		ID: r.ID, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName,
		CompanyName: r.CompanyName, Phone: r.Phone, Note: r.Note, IsActive: r.IsActive,
		LanguageCode: r.LanguageCode, ExternalReference: r.ExternalReference,
		HasAccount: r.HasAccount, IsVerified: r.IsVerified, IsAnonymized: r.IsAnonymized, Version: r.Version,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	c.EmailConsent = customer.Consent{State: r.EmailConsentState, OptInLevel: r.EmailConsentOptInLevel,
		UpdatedAt: utcPtr(r.EmailConsentUpdatedAt), CollectedFrom: r.EmailConsentCollectedFrom}
	c.SMSConsent = customer.Consent{State: r.SmsConsentState, OptInLevel: r.SmsConsentOptInLevel,
		UpdatedAt: utcPtr(r.SmsConsentUpdatedAt), CollectedFrom: r.SmsConsentCollectedFrom}
	var err error
	if c.Metadata, err = metadataOf(r.Metadata); err != nil {
		return c, fmt.Errorf("store: customer %s metadata: %w", r.ID, err)
	}
	if c.PrivateMetadata, err = metadataOf(r.PrivateMetadata); err != nil {
		return c, fmt.Errorf("store: customer %s private metadata: %w", r.ID, err)
	}
	if c.Attributes, err = attributesOf(r.Attributes); err != nil {
		return c, fmt.Errorf("store: customer %s attributes: %w", r.ID, err)
	}
	return c, nil
}

// metadataOf decodes a metadata column. Most customers have none: '{}' is
// an empty map, as json.Unmarshal makes it, without its reflection (a list
// or an export reads thousands of rows).
func metadataOf(raw []byte) (map[string]string, error) {
	if string(raw) == "{}" {
		return map[string]string{}, nil
	}
	var m map[string]string
	err := json.Unmarshal(raw, &m)
	return m, err
}

func int32Ptr(n *int) *int32 {
	if n == nil {
		return nil
	}
	v := int32(min(*n, math.MaxInt32))
	return &v
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// CreateMany inserts new customers with their addresses and events, one
// COPY per table: an import's rows, many at a time. A taken email or id
// fails the whole statement; the caller then goes row by row.
func (s *Store) CreateMany(ctx context.Context, cs []customer.NewCustomer) error {
	var customers []gen.CopyCustomersParams
	var addresses []gen.CopyCustomerAddressesParams
	var outboxRows []gen.CopyBulkOutboxParams
	var withAttributes []uuid.UUID
	for _, n := range cs {
		r := toRow(n.Customer)
		customers = append(customers, gen.CopyCustomersParams{
			ID: r.ID, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName,
			CompanyName: r.CompanyName, Phone: r.Phone, Note: r.Note, IsActive: r.IsActive,
			LanguageCode: r.LanguageCode, ExternalReference: r.ExternalReference,
			Metadata: r.Metadata, PrivateMetadata: r.PrivateMetadata, HasAccount: r.HasAccount,
			IsVerified: r.IsVerified, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
			DefaultShippingAddressID: r.DefaultShippingAddressID, DefaultBillingAddressID: r.DefaultBillingAddressID,
			GroupIds: r.GroupIds, PasswordHash: r.PasswordHash, Attributes: r.Attributes,
		})
		if len(n.Customer.Attributes) > 0 {
			withAttributes = append(withAttributes, n.Customer.ID)
		}
		for _, a := range n.Addresses {
			addresses = append(addresses, gen.CopyCustomerAddressesParams(addressParams(a)))
		}
		ob, err := outbox.Rows(n.Events)
		if err != nil {
			return err
		}
		for i := range ob.EventIds {
			outboxRows = append(outboxRows, gen.CopyBulkOutboxParams{
				EventID: ob.EventIds[i], NatsSubject: ob.NatsSubjects[i], PartitionKey: ob.PartitionKeys[i], Event: ob.Events[i],
				Bulk: true,
			})
		}
	}
	if _, err := s.q.CopyCustomers(ctx, customers); err != nil {
		return mapError(err)
	}
	if len(addresses) > 0 {
		if _, err := s.q.CopyCustomerAddresses(ctx, addresses); err != nil {
			return fmt.Errorf("store: copy addresses: %w", err)
		}
	}
	if len(withAttributes) > 0 {
		if err := s.q.IndexAttributeValues(ctx, gen.IndexAttributeValuesParams{Ids: withAttributes}); err != nil {
			return fmt.Errorf("store: index attributes: %w", err)
		}
	}
	if _, err := s.q.CopyBulkOutbox(ctx, outboxRows); err != nil {
		return fmt.Errorf("store: copy outbox: %w", err)
	}
	if err := s.q.NotifyBulkOutbox(ctx); err != nil {
		return fmt.Errorf("store: notify the relay: %w", err)
	}
	return nil
}

// TakenEmailsAndReferences says which of the emails and external
// references belong to customers already.
func (s *Store) TakenEmailsAndReferences(ctx context.Context, emails, refs []string) (map[string]bool, map[string]bool, error) {
	rows, err := s.q.TakenEmailsAndReferences(ctx, gen.TakenEmailsAndReferencesParams{Emails: emails, Refs: refs})
	if err != nil {
		return nil, nil, fmt.Errorf("store: taken emails: %w", err)
	}
	takenEmails, takenRefs := map[string]bool{}, map[string]bool{}
	for _, r := range rows {
		takenEmails[r.Email] = true
		if r.ExternalReference != nil {
			takenRefs[*r.ExternalReference] = true
		}
	}
	return takenEmails, takenRefs, nil
}
