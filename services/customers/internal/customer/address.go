package customer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"golang.org/x/text/language"

	"github.com/customerbus/customerbus/events"
)

// Address limits.
const (
	MaxAddressesAtCreate = 100
	MaxPostalCodeLength  = 20
)

// Address is one of a customer's addresses.
type Address struct {
	ID             uuid.UUID
	CustomerID     uuid.UUID
	FirstName      string
	LastName       string
	CompanyName    string
	StreetAddress1 string
	StreetAddress2 string
	City           string
	CityArea       string
	PostalCode     string
	Country        string // ISO 3166-1 alpha-2, upper case
	CountryArea    string
	Phone          *string // E.164
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Public is the address as the API and events show it; the default flags come
// from the customer, where the defaults are kept.
func (a Address) Public(c Customer) events.Address {
	return events.Address{
		ID: a.ID, CustomerID: a.CustomerID, FirstName: a.FirstName, LastName: a.LastName,
		CompanyName: a.CompanyName, StreetAddress1: a.StreetAddress1, StreetAddress2: a.StreetAddress2,
		City: a.City, CityArea: a.CityArea, PostalCode: a.PostalCode, Country: a.Country,
		CountryArea: a.CountryArea, Phone: a.Phone,
		IsDefaultShipping: equalID(c.DefaultShippingAddressID, a.ID),
		IsDefaultBilling:  equalID(c.DefaultBillingAddressID, a.ID),
		CreatedAt:         a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
}

// AddressInput creates an address (absent fields are empty) or changes one
// (absent fields stay). A default flag set to true makes the address that
// default; false on the current default leaves the customer without one.
type AddressInput struct {
	FirstName         *string          `json:"first_name"`
	LastName          *string          `json:"last_name"`
	CompanyName       *string          `json:"company_name"`
	StreetAddress1    *string          `json:"street_address_1"`
	StreetAddress2    *string          `json:"street_address_2"`
	City              *string          `json:"city"`
	CityArea          *string          `json:"city_area"`
	PostalCode        *string          `json:"postal_code"`
	Country           *string          `json:"country"`
	CountryArea       *string          `json:"country_area"`
	Phone             Nullable[string] `json:"phone"`
	IsDefaultShipping *bool            `json:"is_default_shipping"`
	IsDefaultBilling  *bool            `json:"is_default_billing"`
}

// AddressesPage is one page of a customer's addresses, oldest first.
type AddressesPage struct {
	Customer   Customer // for the default flags
	Addresses  []Address
	NextCursor string
}

// addressesOrder names the addresses cursor's order.
const addressesOrder = "addresses"

// CreateAddress adds an address to a customer: customer.address_created.
func (s *Service) CreateAddress(ctx context.Context, o Origin, customerID uuid.UUID, in AddressInput) (Customer, Address, error) {
	form, err := s.store.AddressForm(ctx)
	if err != nil {
		return Customer{}, Address{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Customer{}, Address{}, fmt.Errorf("create address: %w", err)
	}
	var a Address
	c, err := update(ctx, s.store, customerID, func(cur Customer) (*Mutation, error) {
		var r rules
		now := s.now()
		a = r.address("", Address{ID: id, CustomerID: cur.ID, CreatedAt: now, UpdatedAt: now}, in, form)
		if err := r.err(); err != nil {
			return nil, err
		}
		next := cur
		setDefaults(&next, a.ID, in)
		return s.addressMutation(o, cur, next, now, events.CustomerAddressCreated, a, &Mutation{NewAddresses: []Address{a}})
	})
	return c, a, err
}

// UpdateAddress changes an address: customer.address_updated, unless nothing changed.
func (s *Service) UpdateAddress(ctx context.Context, o Origin, customerID, addressID uuid.UUID, in AddressInput) (Customer, Address, error) {
	form, err := s.store.AddressForm(ctx)
	if err != nil {
		return Customer{}, Address{}, err
	}
	var a Address
	c, err := s.store.UpdateAddress(ctx, customerID, addressID, func(cur Customer, old Address) (*Mutation, error) {
		var r rules
		now := s.now()
		a = r.address("", old, in, form)
		if err := r.err(); err != nil {
			return nil, err
		}
		next := cur
		setDefaults(&next, a.ID, in)
		if sameAddress(a, old) && equalPtrID(cur.DefaultShippingAddressID, next.DefaultShippingAddressID) &&
			equalPtrID(cur.DefaultBillingAddressID, next.DefaultBillingAddressID) {
			return nil, nil
		}
		m := &Mutation{}
		if !sameAddress(a, old) {
			a.UpdatedAt = now
			m.ChangedAddresses = []Address{a}
		}
		return s.addressMutation(o, cur, next, now, events.CustomerAddressUpdated, a, m)
	})
	return c, a, err
}

// DeleteAddress removes an address, and the customer's defaults that named it.
func (s *Service) DeleteAddress(ctx context.Context, o Origin, customerID, addressID uuid.UUID) error {
	_, err := s.store.UpdateAddress(ctx, customerID, addressID, func(cur Customer, a Address) (*Mutation, error) {
		next := cur
		if equalID(next.DefaultShippingAddressID, a.ID) {
			next.DefaultShippingAddressID = nil
		}
		if equalID(next.DefaultBillingAddressID, a.ID) {
			next.DefaultBillingAddressID = nil
		}
		next.Version = cur.Version + 1
		next.UpdatedAt = s.now()
		ev, err := newEvent(o, events.CustomerAddressDeleted, next, next.UpdatedAt, events.CustomerAddressDeletedData{
			ID: a.ID, CustomerID: cur.ID, DeletedAt: next.UpdatedAt, Version: next.Version,
		})
		if err != nil {
			return nil, err
		}
		return &Mutation{Customer: next, Events: []cloudevents.Event{ev}, DeletedAddresses: []uuid.UUID{a.ID}}, nil
	})
	return err
}

// ListAddresses returns one page of a customer's addresses, oldest first.
func (s *Service) ListAddresses(ctx context.Context, customerID uuid.UUID, limit int, cursor string) (AddressesPage, error) {
	var r rules
	limit = r.limit(limit)
	after := r.cursor(cursor, addressesOrder)
	if err := r.err(); err != nil {
		return AddressesPage{}, err
	}
	c, err := s.store.Get(ctx, customerID)
	if err != nil {
		return AddressesPage{}, err
	}
	rows, err := s.store.ListAddresses(ctx, customerID, limit+1, after)
	if err != nil {
		return AddressesPage{}, err
	}
	page := AddressesPage{Customer: c, Addresses: rows}
	if len(rows) > limit {
		last := rows[limit-1]
		page.Addresses = rows[:limit]
		page.NextCursor = Cursor{Order: addressesOrder, ID: last.ID, Time: last.CreatedAt}.Encode()
	}
	return page, nil
}

// addressMutation bumps the customer's version and adds the address event.
func (s *Service) addressMutation(o Origin, cur, next Customer, now time.Time, typ string, a Address, m *Mutation) (*Mutation, error) {
	next.Version = cur.Version + 1
	next.UpdatedAt = now
	ev, err := newEvent(o, typ, next, now, events.CustomerAddressData{Address: a.Public(next), Version: next.Version})
	if err != nil {
		return nil, err
	}
	m.Customer = next
	m.Events = []cloudevents.Event{ev}
	return m, nil
}

// setDefaults applies an input's default flags for address id to c.
func setDefaults(c *Customer, id uuid.UUID, in AddressInput) {
	set := func(def **uuid.UUID, flag *bool) {
		switch {
		case flag == nil:
		case *flag:
			*def = &id
		case equalID(*def, id):
			*def = nil
		}
	}
	set(&c.DefaultShippingAddressID, in.IsDefaultShipping)
	set(&c.DefaultBillingAddressID, in.IsDefaultBilling)
}

// address applies the input to a and validates the result against the form;
// field names are prefixed (e.g. "addresses[0].") when the address is nested.
func (r *rules) address(prefix string, a Address, in AddressInput, form AddressForm) Address {
	texts := []struct {
		field string
		dst   *string
		src   *string
		max   int
	}{
		{"first_name", &a.FirstName, in.FirstName, MaxNameLength},
		{"last_name", &a.LastName, in.LastName, MaxNameLength},
		{"company_name", &a.CompanyName, in.CompanyName, MaxNameLength},
		{"street_address_1", &a.StreetAddress1, in.StreetAddress1, MaxNameLength},
		{"street_address_2", &a.StreetAddress2, in.StreetAddress2, MaxNameLength},
		{"city", &a.City, in.City, MaxNameLength},
		{"city_area", &a.CityArea, in.CityArea, MaxNameLength},
		{"postal_code", &a.PostalCode, in.PostalCode, MaxPostalCodeLength},
		{"country_area", &a.CountryArea, in.CountryArea, MaxNameLength},
	}
	for _, t := range texts {
		if t.src != nil {
			*t.dst = r.text(prefix+t.field, *t.src, t.max)
		}
	}
	a.PostalCode = strings.ToUpper(a.PostalCode)
	if in.Country != nil {
		a.Country = r.country(prefix+"country", *in.Country)
	} else if a.Country == "" {
		r.fail(prefix+"country", CodeRequired, "country is required")
	}
	if in.Phone.Set {
		// A national number is read in the address's own country.
		a.Phone = r.phoneIn(prefix+"phone", in.Phone.Value, a.Country)
	}
	values := map[string]bool{"phone": a.Phone != nil}
	for _, t := range texts {
		values[t.field] = *t.dst != ""
	}
	for _, f := range form.RequiredFields {
		if present, known := values[f]; known && !present && !r.failed(prefix+f) {
			r.fail(prefix+f, CodeRequired, "%s is required by the address form settings", f)
		}
	}
	return a
}

// country returns the upper-cased ISO 3166-1 alpha-2 code.
func (r *rules) country(field, raw string) string {
	s := strings.ToUpper(strings.TrimSpace(raw))
	if s == "" {
		r.fail(field, CodeRequired, "country is required")
		return s
	}
	region, err := language.ParseRegion(s)
	if err != nil || len(s) != 2 || region.String() != s || !region.IsCountry() {
		r.fail(field, CodeInvalid, "%q is not an ISO 3166-1 alpha-2 country code (e.g. DE, US)", raw)
	}
	return s
}

func (r *rules) failed(field string) bool {
	return slices.ContainsFunc(r.errs, func(e FieldError) bool { return e.Field == field })
}

// limit checks a page size; 0 means the default.
func (r *rules) limit(n int) int {
	if n == 0 {
		return DefaultLimit
	}
	if n < 1 || n > MaxLimit {
		r.fail("limit", CodeInvalid, "limit must be between 1 and %d", MaxLimit)
	}
	return n
}

// cursor decodes a page cursor of the given order; "" is the first page.
func (r *rules) cursor(s, order string) *Cursor {
	if s == "" {
		return nil
	}
	c, ok := decodeCursor(s)
	if !ok || c.Order != order {
		r.fail("cursor", CodeInvalid, "cursor is not valid here; start again without it")
		return nil
	}
	return &c
}

func equalID(p *uuid.UUID, id uuid.UUID) bool { return p != nil && *p == id }

func equalPtrID(a, b *uuid.UUID) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// sameAddress reports whether two versions of an address hold the same values.
func sameAddress(a, b Address) bool {
	pa, pb := a.Phone, b.Phone
	a.Phone, b.Phone = nil, nil
	return a == b && equalPtr(pa, pb)
}
