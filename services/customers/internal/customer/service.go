package customer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/customerbus/customerbus/events"
)

// Service runs the customer commands and queries.
type Service struct {
	store       Store
	phoneRegion string
	now         func() time.Time
	accounts    AccountConfig
	privacy     PrivacyConfig
	transfers   TransferEnder // nil: see EndTransfersWith
}

// NewService returns a Service. phoneRegion (ISO 3166 alpha-2, may be empty) is
// the region assumed for phone numbers given without a country code.
func NewService(store Store, phoneRegion string, accounts AccountConfig, privacy PrivacyConfig) *Service {
	return &Service{store: store, phoneRegion: phoneRegion, accounts: accounts.withDefaults(), privacy: privacy, now: func() time.Time {
		// Microseconds: what PostgreSQL keeps, so events and reads agree.
		return time.Now().UTC().Truncate(time.Microsecond)
	}}
}

// Create validates the input and creates the customer, with its addresses and
// group memberships, and its customer.created event.
func (s *Service) Create(ctx context.Context, o Origin, in CreateInput) (Customer, error) {
	return s.create(ctx, o, in, nil)
}

// create is Create, with what only an import may set (nil otherwise).
func (s *Service) create(ctx context.Context, o Origin, in CreateInput, imp *imported) (Customer, error) {
	// First against the definitions as this instance last read them, which
	// costs no read; the store refuses the write if they changed since, and a
	// refused attribute may be one defined since: then again against the
	// current ones.
	current := false
	for attempt := 1; ; attempt++ {
		n, err := s.newCustomer(ctx, o, in, imp, current)
		if !current && refusesAttributes(err) {
			current = true
			continue
		}
		if err != nil {
			return Customer{}, err
		}
		err = s.store.Create(ctx, n)
		if errors.Is(err, ErrDefinitionsChanged) && attempt < maxDefinitionsAttempts {
			current = true
			continue
		}
		if err != nil {
			return Customer{}, fmt.Errorf("create customer: %w", err)
		}
		return n.Customer, nil
	}
}

// refusesAttributes tells whether err refuses any attribute.
func refusesAttributes(err error) bool {
	var v *ValidationError
	return errors.As(err, &v) && slices.ContainsFunc(v.Errors, func(e FieldError) bool {
		return strings.HasPrefix(e.Field, "attributes")
	})
}

// maxDefinitionsAttempts bounds how often a create is checked again
// because the attribute definitions changed under it: each try reads the
// definitions afresh, so only a definition change per try defeats it.
const maxDefinitionsAttempts = 3

// NewCustomer is a customer checked and built for its creation, with its
// addresses, one-time tokens and events; nothing of it is written yet.
type NewCustomer struct {
	Customer  Customer
	Addresses []Address
	Tokens    []Token
	Events    []cloudevents.Event
	// Identities links the customer to its accounts at identity
	// providers (a first sign-in with one); an import links none.
	Identities []Identity
	// DefinitionsVersion is the version of the attribute definitions the
	// customer was checked against (HeldAttributeDefinitions), or 0 when it
	// need not be current (an import reads them once for many rows).
	DefinitionsVersion int64
}

// newCustomer checks the input and builds the new customer: everything of
// Create but the write.
// With current false it may check against the definitions as this instance
// last read them (see HeldAttributeDefinitions).
func (s *Service) newCustomer(ctx context.Context, o Origin, in CreateInput, imp *imported, current bool) (NewCustomer, error) {
	r := rules{phoneRegion: s.phoneRegion}
	now := s.now()
	defs, version, err := s.definitions(ctx, imp, current)
	if err != nil {
		return NewCustomer{}, fmt.Errorf("create customer: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return NewCustomer{}, fmt.Errorf("create customer: %w", err)
	}
	createdAt := now
	if imp != nil {
		id, createdAt = imp.apply(&r, id, now)
	}
	c := Customer{
		ID:                id,
		Email:             r.email("email", in.Email),
		FirstName:         r.text("first_name", in.FirstName, MaxNameLength),
		LastName:          r.text("last_name", in.LastName, MaxNameLength),
		CompanyName:       r.text("company_name", in.CompanyName, MaxNameLength),
		Phone:             r.phone("phone", in.Phone),
		Note:              r.text("note", in.Note, MaxNoteLength),
		IsActive:          in.IsActive == nil || *in.IsActive,
		LanguageCode:      r.languageCode("language_code", in.LanguageCode),
		ExternalReference: r.externalReference("external_reference", in.ExternalReference),
		Metadata:          r.metadata("metadata", in.Metadata),
		PrivateMetadata:   r.metadata("private_metadata", in.PrivateMetadata),
		Attributes:        r.attributes("attributes", defs, in.Attributes),
		Groups:            SortIDs(r.ids("groups", in.Groups, MaxGroupsAtCreate)),
		EmailConsent:      DefaultConsent,
		SMSConsent:        DefaultConsent,
		Version:           1,
		CreatedAt:         createdAt,
		UpdatedAt:         now,
	}
	if imp != nil {
		c.IsVerified, c.PasswordHash, c.HasAccount = imp.isVerified, imp.passwordHash, imp.passwordHash != ""
	}
	var form *AddressForm
	if imp != nil {
		form = imp.form
	}
	addresses, err := s.newAddresses(ctx, &r, &c, in.Addresses, form)
	if err != nil {
		return NewCustomer{}, err
	}
	r.link(in.EmailLink, false)
	if err := r.err(); err != nil {
		return NewCustomer{}, err
	}
	data := events.CustomerCreatedData{Customer: c.Public(), Addresses: make([]events.Address, len(addresses))}
	for i, a := range addresses {
		data.Addresses[i] = a.Public(c)
	}
	ev, err := newEvent(o, events.CustomerCreated, c, now, data)
	if err != nil {
		return NewCustomer{}, fmt.Errorf("create customer: %w", err)
	}
	evs, tokens := []cloudevents.Event{ev}, []Token(nil)
	// With both redirect_url and channel, a set-password email goes out (as in
	// Saleor); without them, none does.
	if in.EmailLink.Given() {
		tok, note, err := s.passwordSetup(o, c, in.EmailLink)
		if err != nil {
			return NewCustomer{}, fmt.Errorf("create customer: %w", err)
		}
		evs, tokens = append(evs, note), []Token{tok}
	}
	return NewCustomer{Customer: c, Addresses: addresses, Tokens: tokens, Events: evs, DefinitionsVersion: version}, nil
}

// definitions are the attribute definitions for a new customer: an
// import's, read once for many rows, or read now.
func (s *Service) definitions(ctx context.Context, imp *imported, current bool) (Definitions, int64, error) {
	if imp != nil && imp.defs != nil {
		return imp.defs, 0, nil
	}
	return s.store.HeldAttributeDefinitions(ctx, current)
}

// newAddresses validates the addresses given with a new customer and applies
// their default flags to it; at most one address may claim each default.
// form is the address form settings when the caller has read them (an
// import, once per batch), else nil: they are read here.
func (s *Service) newAddresses(ctx context.Context, r *rules, c *Customer, in []AddressInput, form *AddressForm) ([]Address, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > MaxAddressesAtCreate {
		r.fail("addresses", CodeTooMany, "at most %d addresses can be given at creation; add more afterwards", MaxAddressesAtCreate)
		return nil, nil
	}
	if form == nil {
		f, err := s.store.AddressForm(ctx)
		if err != nil {
			return nil, err
		}
		form = &f
	}
	out := make([]Address, len(in))
	var shipping, billing int
	for i, ai := range in {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("create customer: %w", err)
		}
		prefix := fmt.Sprintf("addresses[%d].", i)
		out[i] = r.address(prefix, Address{ID: id, CustomerID: c.ID, CreatedAt: c.CreatedAt, UpdatedAt: c.CreatedAt}, ai, *form)
		setDefaults(c, id, ai)
		if ai.IsDefaultShipping != nil && *ai.IsDefaultShipping {
			shipping++
		}
		if ai.IsDefaultBilling != nil && *ai.IsDefaultBilling {
			billing++
		}
	}
	if shipping > 1 {
		r.fail("addresses", CodeInvalid, "only one address can be the default shipping address")
	}
	if billing > 1 {
		r.fail("addresses", CodeInvalid, "only one address can be the default billing address")
	}
	return out, nil
}

// Get returns one customer.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Customer, error) {
	return s.store.Get(ctx, id)
}

// Update applies the fields present in the input. A change to public fields
// bumps the version and emits customer.updated listing the changed fields; a
// change to private metadata alone is saved silently, because no public event
// may reveal it and a version without its event would leave a gap in sequence.
func (s *Service) Update(ctx context.Context, o Origin, id uuid.UUID, in UpdateInput) (Customer, error) {
	defs, err := s.updateDefinitions(ctx, in)
	if err != nil {
		return Customer{}, err
	}
	return update(ctx, s.store, id, func(cur Customer) (*Mutation, error) {
		return s.applyUpdate(o, cur, in, defs)
	})
}

// updateDefinitions reads the attribute definitions when the update
// changes attributes: other updates do without them.
func (s *Service) updateDefinitions(ctx context.Context, in UpdateInput) (Definitions, error) {
	if in.Attributes == nil {
		return nil, nil
	}
	defs, err := s.store.AttributeDefinitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("update customer: %w", err)
	}
	return defs, nil
}

// applyUpdate decides an update of cur; defs are the attribute
// definitions when the input changes attributes.
func (s *Service) applyUpdate(o Origin, cur Customer, in UpdateInput, defs Definitions) (*Mutation, error) {
	r := rules{phoneRegion: s.phoneRegion}
	next := cur
	if in.Email != nil {
		next.Email = r.email("email", *in.Email)
	}
	if in.FirstName != nil {
		next.FirstName = r.text("first_name", *in.FirstName, MaxNameLength)
	}
	if in.LastName != nil {
		next.LastName = r.text("last_name", *in.LastName, MaxNameLength)
	}
	if in.CompanyName != nil {
		next.CompanyName = r.text("company_name", *in.CompanyName, MaxNameLength)
	}
	if in.Phone.Set {
		next.Phone = r.phone("phone", in.Phone.Value)
	}
	if in.Note != nil {
		next.Note = r.text("note", *in.Note, MaxNoteLength)
	}
	if in.IsActive != nil {
		next.IsActive = *in.IsActive
	}
	if in.LanguageCode != nil {
		next.LanguageCode = r.languageCode("language_code", *in.LanguageCode)
	}
	if in.ExternalReference.Set {
		next.ExternalReference = r.externalReference("external_reference", in.ExternalReference.Value)
	}
	if in.Metadata != nil {
		next.Metadata = r.metadata("metadata", *in.Metadata)
	}
	if in.PrivateMetadata != nil {
		next.PrivateMetadata = r.metadata("private_metadata", *in.PrivateMetadata)
	}
	if in.Attributes != nil {
		next.Attributes = r.patchAttributes("attributes", defs, cur.Attributes, in.Attributes)
	}
	if err := r.err(); err != nil {
		return nil, err
	}

	changed := changedFields(cur, next)
	privateChanged := !maps.Equal(cur.PrivateMetadata, next.PrivateMetadata)
	if len(changed) == 0 && !privateChanged {
		return nil, nil
	}
	next.UpdatedAt = s.now()
	if len(changed) == 0 {
		return &Mutation{Customer: next}, nil
	}
	next.Version = cur.Version + 1
	ev, err := newEvent(o, events.CustomerUpdated, next, next.UpdatedAt,
		events.CustomerUpdatedData{Customer: next.Public(), Changed: changed})
	if err != nil {
		return nil, err
	}
	return &Mutation{Customer: next, Events: []cloudevents.Event{ev}}, nil
}

// Delete removes the customer and emits customer.deleted; unless
// deletions retain data, it erases the customer first (see deletion).
func (s *Service) Delete(ctx context.Context, o Origin, id uuid.UUID) error {
	if err := s.endTransfers(ctx, o, id); err != nil {
		return err
	}
	return s.store.DeleteMany(ctx, []uuid.UUID{id}, func(cur Customer) (*Mutation, error) {
		return s.deletion(o, cur)
	})
}

func (s *Service) deletedEvents(o Origin, cur Customer) ([]cloudevents.Event, error) {
	now := s.now()
	// The deletion is the customer's last change: it takes the next version.
	cur.Version++
	ev, err := newEvent(o, events.CustomerDeleted, cur, now,
		events.CustomerDeletedData{ID: cur.ID, Email: cur.Email, DeletedAt: now})
	if err != nil {
		return nil, err
	}
	return []cloudevents.Event{ev}, nil
}

// List returns one page of customers.
func (s *Service) List(ctx context.Context, in ListInput) (Page, error) {
	q, err := s.listQuery(ctx, in)
	if err != nil {
		return Page{}, err
	}
	pageSize := q.Limit
	q.Limit = pageSize + 1
	// The page and the count are independent reads: run side by side, the
	// caller waits for the slower of them instead of for both. A search's
	// count costs about what its page does.
	var rows []Customer
	var n int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if rows, err = s.listRows(gctx, q); err != nil {
			return fmt.Errorf("list customers: %w", err)
		}
		return nil
	})
	if in.WithCount {
		g.Go(func() (err error) {
			// One past the limit, to know whether more match.
			if n, err = s.store.Count(gctx, q.Filter, q.CountLimit+1); err != nil {
				return fmt.Errorf("count customers: %w", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Page{}, err
	}
	page := Page{Customers: rows}
	if len(rows) > pageSize {
		page.Customers = rows[:pageSize]
		page.NextCursor = cursorAfter(q.Order, page.Customers[pageSize-1]).Encode()
	}
	if in.WithCount {
		page.CountExact = n <= int64(q.CountLimit)
		n = min(n, int64(q.CountLimit))
		page.Count = &n
	}
	return page, nil
}

// listQuery checks a list's input, its attribute filters against the
// definitions.
func (s *Service) listQuery(ctx context.Context, in ListInput) (ListQuery, error) {
	q, err := in.validate()
	if err != nil {
		return q, err
	}
	q.Attributes, err = s.attributeFilters(ctx, in.Attributes)
	return q, err
}

// listRows reads a page. Newest first with placed_orders_before Y, it reads
// in two parts. Walking everyone from the newest would skip most customers:
// those created after Y, who can have ordered before Y only when their first
// order predates them (linked guest orders, transfers). So it reads those few
// first, through their own index, then walks the rest from Y backwards,
// where matches are dense. Together they are the same rows in the same order.
func (s *Service) listRows(ctx context.Context, q ListQuery) ([]Customer, error) {
	y := q.PlacedOrdersBefore
	if q.Order != "-created_at" || y == nil {
		return s.store.List(ctx, q)
	}
	var rows []Customer
	if q.After == nil || !q.After.Time.Before(*y) { // the page may start after Y
		newer := q
		newer.OrderedBeforeCreated = true
		newer.CreatedAfter = latest(q.CreatedAfter, y.Add(-time.Microsecond)) // created_at >= Y
		var err error
		if rows, err = s.store.List(ctx, newer); err != nil || len(rows) >= q.Limit {
			return rows, err
		}
	}
	older := q
	older.CreatedBefore = earliest(q.CreatedBefore, *y)
	older.Limit = q.Limit - len(rows)
	more, err := s.store.List(ctx, older)
	return append(rows, more...), err
}

func latest(t *time.Time, u time.Time) *time.Time {
	if t != nil && t.After(u) {
		return t
	}
	return &u
}

func earliest(t *time.Time, u time.Time) *time.Time {
	if t != nil && t.Before(u) {
		return t
	}
	return &u
}

// newEvent builds an event about customer c at its current version.
func newEvent(o Origin, typ string, c Customer, at time.Time, data any) (cloudevents.Event, error) {
	return resourceEvent(o, typ, c.ID, c.Version, at, data)
}

// resourceEvent builds an event about the resource with this id (also the
// partition key) at its version after the change.
func resourceEvent(o Origin, typ string, id uuid.UUID, version int64, at time.Time, data any) (cloudevents.Event, error) {
	return events.New(events.Meta{
		Type:         typ,
		Source:       events.SourceCustomers,
		Subject:      id.String(),
		PartitionKey: id.String(),
		Sequence:     version,
		Time:         at,
		TraceParent:  o.TraceParent,
		Actor:        o.Actor,
		CausationID:  o.CausationID,
	}, data)
}

// changedFields names the public fields that differ, in the API's field names.
func changedFields(a, b Customer) []string {
	var out []string
	add := func(name string, differ bool) {
		if differ {
			out = append(out, name)
		}
	}
	add("email", a.Email != b.Email)
	add("first_name", a.FirstName != b.FirstName)
	add("last_name", a.LastName != b.LastName)
	add("company_name", a.CompanyName != b.CompanyName)
	add("phone", !equalPtr(a.Phone, b.Phone))
	add("note", a.Note != b.Note)
	add("is_active", a.IsActive != b.IsActive)
	add("language_code", a.LanguageCode != b.LanguageCode)
	add("external_reference", !equalPtr(a.ExternalReference, b.ExternalReference))
	add("metadata", !maps.Equal(a.Metadata, b.Metadata))
	return append(out, changedAttributes(a.Attributes, b.Attributes)...)
}

func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
