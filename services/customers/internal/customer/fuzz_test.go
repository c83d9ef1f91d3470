package customer

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Fuzz targets of the input rules. Each checks what the rules promise for
// any input: no panic, a refusal that is a ValidationError (a 400, never a
// 500), and what they accept is normalised for good: checking it again
// gives it back unchanged. `make fuzz` runs them; `go test` runs their seeds
// and testdata/fuzz.

// expectRefusal fails unless err is a ValidationError naming a field error
// with a code, which the HTTP edge answers as a 400.
func expectRefusal(t *testing.T, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) == 0 {
		t.Fatalf("refused with %T %v, not a ValidationError: a 500", err, err)
	}
	for _, e := range ve.Errors {
		if e.Code == "" || e.Message == "" {
			t.Fatalf("field error %+v has no code or message", e)
		}
	}
}

func FuzzEmail(f *testing.F) {
	for _, seed := range []string{
		"ann@example.com", "  Ann.Lee+shop@Example.COM ", "ann@localhost", "Ann <ann@example.com>",
		"\"quoted local\"@example.com", "a@b@example.com", "jörg@münchen.example", "ann@example.com.",
		"ann@[192.168.0.1]", "İSTANBUL@EXAMPLE.COM", "", "\x00@example.com",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var r rules
		got := r.email("email", raw)
		if err := r.err(); err != nil {
			expectRefusal(t, err)
			return
		}
		if !Storable(got) || utf8.RuneCountInString(got) > MaxEmailLength {
			t.Fatalf("email(%q) accepted %q, which is not storable or too long", raw, got)
		}
		var again rules
		if twice := again.email("email", got); twice != got || again.err() != nil {
			t.Fatalf("email(%q) = %q, but email(%q) = %q, %v", raw, got, got, twice, again.err())
		}
	})
}

// phoneRegions are regions numbers are read in: the DEFAULT_PHONE_REGION
// choices, and what an address's country may be before it is checked.
var phoneRegions = []string{"", "DE", "US", "GB", "BR", "IN", "JP", "XX", "de", "001"}

func FuzzPhone(f *testing.F) {
	for i, seed := range []string{
		"+49 30 1234567", "+1 (415) 555-0100", "030 1234567", "(415) 555-0100", "+44 20 7946 0958",
		"+1 555", "call me", "+49 30 1234567 ext. 89", "tel:+49-30-1234567", "+800 1234 5678", "",
	} {
		f.Add(seed, uint8(i))
	}
	f.Add("0049301234567", uint8(1))
	f.Fuzz(func(t *testing.T, raw string, region uint8) {
		r := rules{phoneRegion: phoneRegions[int(region)%len(phoneRegions)]}
		got := r.phone("phone", &raw)
		if err := r.err(); err != nil {
			expectRefusal(t, err)
			return
		}
		if got == nil {
			if strings.TrimSpace(raw) != "" {
				t.Fatalf("phone(%q) accepted nothing without an error", raw)
			}
			return
		}
		if !strings.HasPrefix(*got, "+") || strings.Trim((*got)[1:], "0123456789") != "" {
			t.Fatalf("phone(%q) = %q, not E.164", raw, *got)
		}
		// E.164 needs no region: it reads the same everywhere.
		for _, region := range []string{"", r.phoneRegion} {
			again := rules{phoneRegion: region}
			if twice := again.phone("phone", got); again.err() != nil || twice == nil || *twice != *got {
				t.Fatalf("phone(%q) = %q, but read again in %q it is %v, %v", raw, *got, region, deref(twice), again.err())
			}
		}
	})
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func FuzzCursor(f *testing.F) {
	id := uuid.MustParse("0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b")
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	for _, c := range []Cursor{
		{Order: Orders[0], ID: id, Time: at},
		{Order: "email", ID: id, Text: "ann@example.com"},
		{Order: "-number_of_orders", ID: id, Int: 42},
		{Order: addressesOrder, ID: id, Time: at},
	} {
		f.Add(c.Encode(), c.Order, c.ID[:], c.Time.UnixNano(), c.Text, int64(c.Int))
	}
	f.Add("", "", []byte{}, int64(0), "", int64(0))
	f.Add("eyJvIjoiZW1haWwiLCJpZCI6IjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJ9", "email", make([]byte, 16), int64(-1), "\xff", int64(-7))
	f.Fuzz(func(t *testing.T, s, order string, rawID []byte, nanos int64, text string, n int64) {
		// Any string a client sends as a cursor: read, or refused.
		if c, ok := decodeCursor(s); ok {
			if c.ID == uuid.Nil {
				t.Fatalf("decodeCursor(%q) took a cursor without an id", s)
			}
			if again, ok := decodeCursor(c.Encode()); !ok || !sameCursor(again, c) {
				t.Fatalf("decodeCursor(%q) = %+v, which encodes to %q, read back as %+v, %v", s, c, c.Encode(), again, ok)
			}
		}
		// A cursor the service makes, of a row it wrote: its text was
		// checked as UTF-8.
		id, err := uuid.FromBytes(rawID)
		if err != nil || id == uuid.Nil || !utf8.ValidString(order) || !utf8.ValidString(text) {
			return
		}
		c := Cursor{Order: order, ID: id, Time: time.Unix(0, nanos).UTC(), Text: text, Int: int(n)}
		if got, ok := decodeCursor(c.Encode()); !ok || !sameCursor(got, c) {
			t.Fatalf("%+v encodes to %q, read back as %+v, %v", c, c.Encode(), got, ok)
		}
	})
}

func sameCursor(a, b Cursor) bool {
	return a.Order == b.Order && a.ID == b.ID && a.Time.Equal(b.Time) && a.Text == b.Text && a.Int == b.Int
}

// fuzzService is a Service for the pure rules: no store, which checks
// that run before any write do not need.
// fuzzDefinitions are one attribute of each type, none required.
func fuzzDefinitions() Definitions {
	lo, hi, max := json.Number("0"), json.Number("999.99"), 8
	pattern := "[A-Z]{2}[0-9]+"
	defs := Definitions{}
	for _, d := range []AttributeDefinition{
		{Key: "tier", Type: AttrEnum, Values: []string{"silver", "gold"}},
		{Key: "points", Type: AttrInteger, Min: &lo},
		{Key: "credit", Type: AttrDecimal, Min: &lo, Max: &hi},
		{Key: "b2b", Type: AttrBoolean},
		{Key: "dob", Type: AttrDate},
		{Key: "since", Type: AttrDatetime},
		{Key: "vat", Type: AttrString, MaxLength: &max, Pattern: &pattern},
		{Key: "mail", Type: AttrEmail},
		{Key: "site", Type: AttrURL},
	} {
		defs[d.Key] = d
	}
	return defs
}

func fuzzService() *Service { return NewService(nil, "DE", AccountConfig{}, PrivacyConfig{}) }

// FuzzNewCustomer: an import row (a create's body, plus what an import
// also takes) checked as a create or an import would check it.
func FuzzNewCustomer(f *testing.F) {
	for _, seed := range []string{
		`{"email":"ann@example.com","first_name":"Ann","phone":"030 1234567","metadata":{"tier":"gold"}}`,
		`{"email":" Ann@Example.com ","language_code":"pt-br","external_reference":" ERP-1 ","private_metadata":{"k":"v"},"groups":["0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b"]}`,
		`{"email":"bo@example.com","addresses":[{"first_name":"Bo","last_name":"Lee","street_address_1":"Main St 1","city":"Berlin","postal_code":"10115","country":"de","phone":"030 1234567","is_default_shipping":true}]}`,
		`{"email":"bo@example.com","addresses":[{"country":"DE","is_default_billing":true},{"country":"US","is_default_billing":true}]}`,
		`{"email":"cy@example.com","redirect_url":"https://shop.example.com/set-password","channel":"web"}`,
		`{"email":"cy@example.com","redirect_url":"ftp://shop.example.com","channel":""}`,
		`{"id":"0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b","email":"dee@example.com","created_at":"2019-05-01T10:00:00+02:00","is_verified":true}`,
		`{"email":"dee@example.com","created_at":"0000-01-01T00:00:00+01:00"}`,
		`{"email":"eve@example.com","password_hash":"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"}`,
		`{"email":"","first_name":"\u0000","metadata":{" ":"x"},"language_code":"english please","groups":["x"]}`,
		`{"email":"fay@example.com","attributes":{"tier":"gold","points":12,"credit":1.50,"dob":"1990-02-28","since":"2020-01-01T12:00:00+02:00","vat":" DE1 ","mail":"A@B.CO","site":"https://x.example"}}`,
		`{"email":"fay@example.com","attributes":{"tier":"tin","points":1e3,"credit":"1","dob":"1990-02-30","since":"0000-01-01T00:00:00+01:00","vat":"","b2b":null,"nope":1}}`,
	} {
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, defaultForm bool) {
		var row ImportRow
		if json.Unmarshal(data, &row) != nil {
			return
		}
		imp, err := importExtras(row)
		if err != nil {
			expectRefusal(t, err)
			return
		}
		form := AddressForm{}
		if defaultForm {
			form = DefaultAddressForm
		}
		imp.form, imp.defs = &form, fuzzDefinitions()
		s := fuzzService()
		n, err := s.newCustomer(context.Background(), Origin{}, row.createInput(imp.defs), imp, false)
		if err != nil {
			expectRefusal(t, err)
			return
		}
		expectStorable(t, n.Customer)
		// What was accepted, given again, is accepted as it is.
		again, err := s.newCustomer(context.Background(), Origin{}, createInputOf(n), imp, false)
		if err != nil {
			t.Fatalf("%s was accepted as %+v, which is refused: %v", data, n.Customer, err)
		}
		if !sameNewCustomer(again, n) {
			t.Fatalf("%s was accepted as\n%+v\n%+v\nbut given again becomes\n%+v\n%+v", data, n.Customer, n.Addresses, again.Customer, again.Addresses)
		}
	})
}

// FuzzUpdateInput: a PATCH of a customer's fields, checked.
func FuzzUpdateInput(f *testing.F) {
	for _, seed := range []string{
		`{"email":"Ann.New@Example.com","phone":null,"external_reference":null}`,
		`{"first_name":" Ann ","phone":"+1 (415) 555-0100","language_code":"zh-hant-tw","metadata":{"tier":"silver"}}`,
		`{"private_metadata":{"erp":"42"}}`,
		`{"note":"","is_active":false,"external_reference":""}`,
		`{"email":"nope","phone":"123","language_code":"x-123456789","metadata":{"":""}}`,
	} {
		f.Add([]byte(seed))
	}
	cur := Customer{
		ID: uuid.MustParse("0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b"), Email: "ann@example.com", FirstName: "Ann",
		IsActive: true, LanguageCode: "en", Metadata: map[string]string{"tier": "gold"}, PrivateMetadata: map[string]string{},
		EmailConsent: DefaultConsent, SMSConsent: DefaultConsent, Version: 3,
		CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), UpdatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in UpdateInput
		if json.Unmarshal(data, &in) != nil {
			return
		}
		s := fuzzService()
		m, err := s.applyUpdate(Origin{}, cur, in, nil)
		if err != nil {
			expectRefusal(t, err)
			return
		}
		if m == nil {
			return
		}
		expectStorable(t, m.Customer)
		if len(m.Events) > 0 && m.Customer.Version != cur.Version+1 {
			t.Fatalf("an update with an event has version %d after %d", m.Customer.Version, cur.Version)
		}
		// The same update applied to its own result changes nothing more.
		if again, err := s.applyUpdate(Origin{}, m.Customer, in, nil); err != nil || again != nil {
			t.Fatalf("%s applied twice changes again: %+v, %v", data, again, err)
		}
	})
}

// expectStorable fails unless every text of c is what the database and
// the contract take: valid UTF-8 without NUL, within its limit.
func expectStorable(t *testing.T, c Customer) {
	t.Helper()
	texts := map[string]struct {
		v   string
		max int
	}{
		"email": {c.Email, MaxEmailLength}, "first_name": {c.FirstName, MaxNameLength}, "last_name": {c.LastName, MaxNameLength},
		"company_name": {c.CompanyName, MaxNameLength}, "note": {c.Note, MaxNoteLength}, "language_code": {c.LanguageCode, 35},
	}
	if c.ExternalReference != nil {
		texts["external_reference"] = struct {
			v   string
			max int
		}{*c.ExternalReference, MaxRefLength}
	}
	for field, s := range texts {
		if !Storable(s.v) || utf8.RuneCountInString(s.v) > s.max {
			t.Fatalf("%s %q accepted: not storable, or over %d characters", field, s.v, s.max)
		}
	}
	for _, m := range []map[string]string{c.Metadata, c.PrivateMetadata} {
		for k, v := range m {
			if !Storable(k) || !Storable(v) {
				t.Fatalf("metadata %q: %q accepted: not storable", k, v)
			}
		}
	}
}

// createInputOf is the create input that gives n's customer again.
func createInputOf(n NewCustomer) CreateInput {
	c := n.Customer
	in := CreateInput{
		Email: c.Email, FirstName: c.FirstName, LastName: c.LastName, CompanyName: c.CompanyName, Phone: c.Phone,
		Note: c.Note, IsActive: &c.IsActive, LanguageCode: c.LanguageCode, ExternalReference: c.ExternalReference,
		Metadata: c.Metadata, PrivateMetadata: c.PrivateMetadata, Attributes: c.Attributes,
	}
	for _, g := range c.Groups {
		in.Groups = append(in.Groups, g.String())
	}
	for _, a := range n.Addresses {
		shipping, billing := equalID(c.DefaultShippingAddressID, a.ID), equalID(c.DefaultBillingAddressID, a.ID)
		in.Addresses = append(in.Addresses, AddressInput{
			FirstName: &a.FirstName, LastName: &a.LastName, CompanyName: &a.CompanyName,
			StreetAddress1: &a.StreetAddress1, StreetAddress2: &a.StreetAddress2, City: &a.City, CityArea: &a.CityArea,
			PostalCode: &a.PostalCode, Country: &a.Country, CountryArea: &a.CountryArea,
			Phone: Nullable[string]{Set: true, Value: a.Phone}, IsDefaultShipping: &shipping, IsDefaultBilling: &billing,
		})
	}
	return in
}

// sameNewCustomer compares what the input decides, not the ids and times
// made anew.
func sameNewCustomer(a, b NewCustomer) bool {
	ca, cb := a.Customer, b.Customer
	if ca.Email != cb.Email || ca.FirstName != cb.FirstName || ca.LastName != cb.LastName || ca.CompanyName != cb.CompanyName ||
		!equalPtr(ca.Phone, cb.Phone) || ca.Note != cb.Note || ca.IsActive != cb.IsActive || ca.LanguageCode != cb.LanguageCode ||
		!equalPtr(ca.ExternalReference, cb.ExternalReference) || !maps.Equal(ca.Metadata, cb.Metadata) ||
		!maps.Equal(ca.PrivateMetadata, cb.PrivateMetadata) || !slices.Equal(ca.Groups, cb.Groups) || !ca.Attributes.Equal(cb.Attributes) ||
		len(a.Addresses) != len(b.Addresses) ||
		defaultAt(ca.DefaultShippingAddressID, a.Addresses) != defaultAt(cb.DefaultShippingAddressID, b.Addresses) ||
		defaultAt(ca.DefaultBillingAddressID, a.Addresses) != defaultAt(cb.DefaultBillingAddressID, b.Addresses) {
		return false
	}
	for i := range a.Addresses {
		x, y := a.Addresses[i], b.Addresses[i]
		x.ID, x.CustomerID, x.CreatedAt, x.UpdatedAt = y.ID, y.CustomerID, y.CreatedAt, y.UpdatedAt
		if !sameAddress(x, y) {
			return false
		}
	}
	return true
}

// defaultAt is the index of the default address among addrs, -1 for none.
func defaultAt(def *uuid.UUID, addrs []Address) int {
	return slices.IndexFunc(addrs, func(a Address) bool { return equalID(def, a.ID) })
}
