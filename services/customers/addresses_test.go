package customers_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/customerbus/customerbus/events"
)

// addressJSON is the API's address resource.
type addressJSON struct {
	ID                string  `json:"id"`
	CustomerID        string  `json:"customer_id"`
	FirstName         string  `json:"first_name"`
	City              string  `json:"city"`
	CityArea          string  `json:"city_area"`
	PostalCode        string  `json:"postal_code"`
	Country           string  `json:"country"`
	CountryArea       string  `json:"country_area"`
	Phone             *string `json:"phone"`
	IsDefaultShipping bool    `json:"is_default_shipping"`
	IsDefaultBilling  bool    `json:"is_default_billing"`
}

type addressPage struct {
	Addresses  []addressJSON `json:"addresses"`
	NextCursor *string       `json:"next_cursor"`
}

func address(fields map[string]any) map[string]any {
	a := validAddress()
	for k, v := range fields {
		if v == nil {
			delete(a, k)
		} else {
			a[k] = v
		}
	}
	return a
}

func TestAddressesWithDefaultsAndTheirEvents(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	// Created with two addresses: the first ships, the second bills.
	c := s.createCustomer(map[string]any{"email": "addr@example.com", "addresses": []any{
		address(map[string]any{"is_default_shipping": true, "phone": "030 1234567"}),
		address(map[string]any{"city": "München", "postal_code": "80331", "is_default_billing": true}),
	}})
	if c.DefaultShipping == nil || c.DefaultBilling == nil || *c.DefaultShipping == *c.DefaultBilling || c.Version != 1 {
		t.Fatalf("created customer defaults %v %v version %d", c.DefaultShipping, c.DefaultBilling, c.Version)
	}
	var page addressPage
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/addresses", nil, &page)
	if len(page.Addresses) != 2 || page.Addresses[0].ID != *c.DefaultShipping || !page.Addresses[0].IsDefaultShipping ||
		page.Addresses[0].IsDefaultBilling || !page.Addresses[1].IsDefaultBilling || page.Addresses[1].City != "München" {
		t.Fatalf("addresses in creation order with their flags: %+v", page.Addresses)
	}
	if p := page.Addresses[0].Phone; p == nil || *p != "+49301234567" {
		t.Errorf("a national phone number is read in the address's country: %v", p)
	}

	// A third address takes over the default shipping address.
	var third addressJSON
	r := s.do(http.MethodPost, "/v1/customers/"+c.ID+"/addresses",
		address(map[string]any{"city": "Hamburg", "country": "de", "is_default_shipping": true}), &third)
	if r.StatusCode != http.StatusCreated || !third.IsDefaultShipping || third.Country != "DE" || third.CustomerID != c.ID {
		t.Fatalf("create address: status %d %+v", r.StatusCode, third)
	}
	var got customerJSON
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if got.DefaultShipping == nil || *got.DefaultShipping != third.ID || got.Version != 2 {
		t.Fatalf("customer after the new default: %v version %d", got.DefaultShipping, got.Version)
	}

	// A change, then the same change again (nothing to do, no event).
	var updated addressJSON
	for range 2 {
		r = s.do(http.MethodPatch, "/v1/customers/"+c.ID+"/addresses/"+third.ID, map[string]any{"city_area": "Altona"}, &updated)
		if r.StatusCode != http.StatusOK || updated.CityArea != "Altona" || updated.City != "Hamburg" {
			t.Fatalf("patch address: status %d %+v", r.StatusCode, updated)
		}
	}
	// The list reads the new address and its change as they were answered.
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/addresses", nil, &page)
	if len(page.Addresses) != 3 || !reflect.DeepEqual(page.Addresses[2], updated) || updated.ID != third.ID {
		t.Fatalf("addresses after the change: %+v, want the third as answered %+v", page.Addresses, updated)
	}
	// Clearing the default flag leaves the customer without a default.
	s.do(http.MethodPatch, "/v1/customers/"+c.ID+"/addresses/"+third.ID, map[string]any{"is_default_shipping": false}, &updated)
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if updated.IsDefaultShipping || got.DefaultShipping != nil || got.Version != 4 {
		t.Fatalf("after clearing the default: %+v, customer default %v version %d", updated, got.DefaultShipping, got.Version)
	}
	// Deleting the billing default clears it too.
	billing := page.Addresses[1].ID
	if r := s.do(http.MethodDelete, "/v1/customers/"+c.ID+"/addresses/"+billing, nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete address: status %d", r.StatusCode)
	}
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if got.DefaultBilling != nil || got.Version != 5 {
		t.Fatalf("after deleting the billing default: %v version %d", got.DefaultBilling, got.Version)
	}
	request(t, s, http.MethodDelete, "/v1/customers/"+c.ID+"/addresses/"+billing, nil, nil).expectProblem(t, 404, "aid", "not_found")

	evs, _ := s.streamEvents(5)
	wantTypes := []string{events.CustomerCreated, events.CustomerAddressCreated, events.CustomerAddressUpdated,
		events.CustomerAddressUpdated, events.CustomerAddressDeleted}
	for i, e := range evs {
		if e.Type() != wantTypes[i] || ext(e, "sequence") != []string{"1", "2", "3", "4", "5"}[i] || e.Subject() != c.ID {
			t.Errorf("event %d: %s seq %s subject %s, want %s seq %d", i, e.Type(), ext(e, "sequence"), e.Subject(), wantTypes[i], i+1)
		}
	}
	var created events.CustomerCreatedData
	if err := json.Unmarshal(evs[0].Data(), &created); err != nil {
		t.Fatal(err)
	}
	if len(created.Addresses) != 2 || !created.Addresses[0].IsDefaultShipping || !created.Addresses[1].IsDefaultBilling {
		t.Errorf("customer.created carries the addresses created with it: %+v", created.Addresses)
	}
	var cleared events.CustomerAddressData
	if err := json.Unmarshal(evs[3].Data(), &cleared); err != nil {
		t.Fatal(err)
	}
	if cleared.ID.String() != third.ID || cleared.IsDefaultShipping || cleared.Version != 4 {
		t.Errorf("address_updated for the cleared default: %+v", cleared)
	}
}

func TestAddressesPaginateAndBelongToTheirCustomer(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{"email": "pages@example.com"})
	other := s.createCustomer(map[string]any{"email": "other@example.com"})
	var ids []string
	for range 3 {
		var a addressJSON
		s.do(http.MethodPost, "/v1/customers/"+c.ID+"/addresses", validAddress(), &a)
		ids = append(ids, a.ID)
	}
	var p1, p2 addressPage
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/addresses?limit=2", nil, &p1)
	if len(p1.Addresses) != 2 || p1.NextCursor == nil {
		t.Fatalf("first page: %+v", p1)
	}
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/addresses?limit=2&cursor="+*p1.NextCursor, nil, &p2)
	if len(p2.Addresses) != 1 || p2.NextCursor != nil || p2.Addresses[0].ID != ids[2] || p1.Addresses[1].ID != ids[1] {
		t.Fatalf("second page: %+v", p2)
	}

	// Another customer's address is not found through this customer.
	request(t, s, http.MethodPatch, "/v1/customers/"+other.ID+"/addresses/"+ids[0], map[string]any{"city": "X"}, nil).
		expectProblem(t, 404, "aid", "not_found")
	request(t, s, http.MethodDelete, "/v1/customers/"+other.ID+"/addresses/"+ids[0], nil, nil).
		expectProblem(t, 404, "aid", "not_found")
	request(t, s, http.MethodPatch, "/v1/customers/"+other.ID+"/addresses/not-a-uuid", map[string]any{"city": "X"}, nil).
		expectProblem(t, 404, "aid", "not_found")
	request(t, s, http.MethodGet, "/v1/customers/01970000-0000-7000-8000-000000000000/addresses", nil, nil).
		expectProblem(t, 404, "id", "not_found")
	var empty addressPage
	s.do(http.MethodGet, "/v1/customers/"+other.ID+"/addresses", nil, &empty)
	if len(empty.Addresses) != 0 || empty.Addresses == nil {
		t.Errorf("a customer without addresses lists []: %+v", empty)
	}
}

func TestAddressValidationFollowsTheAddressForm(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{"email": "form@example.com"})
	path := "/v1/customers/" + c.ID + "/addresses"

	var form struct {
		RequiredFields []string `json:"required_fields"`
		Fields         []string `json:"fields"`
		UpdatedAt      *string  `json:"updated_at"`
	}
	s.do(http.MethodGet, "/v1/settings/address-form", nil, &form)
	if len(form.RequiredFields) != 6 || form.UpdatedAt != nil || len(form.Fields) != 11 {
		t.Fatalf("default address form: %+v", form)
	}

	// In a group of its own: its parallel subtests finish before the form changes below.
	t.Run("bad input", func(t *testing.T) { runBadInputs(t, s, addressBadInputs(path)) })
	if n := s.count("SELECT count(*) FROM customers WHERE email = 'twodefaults@example.com'"); n != 0 {
		t.Errorf("a refused create stored its customer")
	}
	if n := s.count("SELECT count(*) FROM customer_addresses"); n != 0 {
		t.Errorf("refused writes stored %d addresses", n)
	}

	// Make country_area required and city optional.
	r := s.do(http.MethodPut, "/v1/settings/address-form", map[string]any{
		"required_fields": []string{"street_address_1", "country_area", "postal_code"}}, &form)
	if r.StatusCode != 200 || len(form.RequiredFields) != 4 || form.RequiredFields[0] != "street_address_1" || form.UpdatedAt == nil {
		t.Fatalf("put form: status %d %+v", r.StatusCode, form)
	}
	request(t, s, http.MethodPost, path, validAddress(), nil).expectProblem(t, 400, "country_area", "required")
	var a addressJSON
	r = s.do(http.MethodPost, path, address(map[string]any{"city": nil, "first_name": nil, "country_area": "Berlin"}), &a)
	if r.StatusCode != http.StatusCreated || a.City != "" || a.CountryArea != "Berlin" {
		t.Fatalf("address without city under the new form: status %d %+v", r.StatusCode, a)
	}
	// An update is checked against the whole address under the current form.
	request(t, s, http.MethodPatch, path+"/"+a.ID, map[string]any{"country_area": ""}, nil).expectProblem(t, 400, "country_area", "required")
	var read struct {
		RequiredFields []string `json:"required_fields"`
	}
	s.do(http.MethodGet, "/v1/settings/address-form", nil, &read)
	if len(read.RequiredFields) != 4 {
		t.Errorf("the saved form reads back as %v", read.RequiredFields)
	}
}

func addressBadInputs(path string) []badInput {
	return []badInput{
		{name: "country not ISO 3166", method: "POST", path: path, body: address(map[string]any{"country": "XX"}), wantStatus: 400, wantField: "country", wantCode: "invalid"},
		{name: "country as a name", method: "POST", path: path, body: address(map[string]any{"country": "Germany"}), wantStatus: 400, wantField: "country", wantCode: "invalid"},
		{name: "country missing", method: "POST", path: path, body: address(map[string]any{"country": nil}), wantStatus: 400, wantField: "country", wantCode: "required"},
		{name: "city required by default", method: "POST", path: path, body: address(map[string]any{"city": nil}), wantStatus: 400, wantField: "city", wantCode: "required"},
		{name: "blank city is missing", method: "POST", path: path, body: address(map[string]any{"city": "  "}), wantStatus: 400, wantField: "city", wantCode: "required"},
		{name: "postal code too long", method: "POST", path: path, body: address(map[string]any{"postal_code": "123456789012345678901"}), wantStatus: 400, wantField: "postal_code", wantCode: "max_length"},
		{name: "phone not a number", method: "POST", path: path, body: address(map[string]any{"phone": "call me"}), wantStatus: 400, wantField: "phone", wantCode: "invalid"},
		{name: "unknown field", method: "POST", path: path, body: address(map[string]any{"street": "x"}), wantStatus: 400, wantField: "street", wantCode: "unknown_field"},
		{name: "nested address error names its index", method: "POST", path: "/v1/customers",
			body:       map[string]any{"email": "nested-" + randomSuffix() + "@example.com", "addresses": []any{validAddress(), address(map[string]any{"country": "ZZ"})}},
			wantStatus: 400, wantField: "addresses[1].country", wantCode: "invalid"},
		{name: "two default shipping addresses", method: "POST", path: "/v1/customers",
			body: map[string]any{"email": "twodefaults@example.com", "addresses": []any{
				address(map[string]any{"is_default_shipping": true}), address(map[string]any{"is_default_shipping": true})}},
			wantStatus: 400, wantField: "addresses", wantCode: "invalid"},
		{name: "unknown field in the form", method: "PUT", path: "/v1/settings/address-form", body: map[string]any{"required_fields": []string{"zip"}}, wantStatus: 400, wantField: "required_fields", wantCode: "invalid"},
		{name: "form without the list", method: "PUT", path: "/v1/settings/address-form", body: map[string]any{}, wantStatus: 400, wantField: "required_fields", wantCode: "required"},
	}
}
