package customers_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// attributeJSON is an attribute definition as a client sees it.
type attributeJSON struct {
	ID                string   `json:"id"`
	Key               string   `json:"key"`
	Label             string   `json:"label"`
	Type              string   `json:"type"`
	Values            []string `json:"values"`
	Required          bool     `json:"required"`
	Storefront        bool     `json:"storefront"`
	VisibleToCustomer bool     `json:"visible_to_customer"`
	Indexed           bool     `json:"indexed"`
	Version           int64    `json:"version"`
}

type attrCustomerJSON struct {
	ID         string                     `json:"id"`
	Version    int64                      `json:"version"`
	Attributes map[string]json.RawMessage `json:"attributes"`
}

type attrProblemJSON struct {
	problemJSON
	AffectedCustomers int64 `json:"affected_customers"`
}

// define defines an attribute and expects it to work.
func (s *system) define(body map[string]any) attributeJSON {
	s.t.Helper()
	var d attributeJSON
	if r := s.do(http.MethodPost, "/v1/settings/customer-attributes", body, &d); r.StatusCode != http.StatusCreated {
		s.t.Fatalf("define %v: status %d", body["key"], r.StatusCode)
	}
	return d
}

// defineShopAttributes defines one attribute of each type.
func (s *system) defineShopAttributes() {
	s.t.Helper()
	for _, d := range []map[string]any{
		{"key": "tier", "label": "Loyalty tier", "type": "enum", "values": []string{"bronze", "silver", "gold"}, "indexed": true, "visible_to_customer": true},
		{"key": "vat", "label": "VAT number", "type": "string", "max_length": 12, "pattern": "[A-Z]{2}[0-9A-Z]+"},
		{"key": "points", "label": "Points", "type": "integer", "min": 0, "max": 100000, "indexed": true},
		{"key": "credit", "label": "Credit", "type": "decimal", "min": 0, "max": 999.99},
		{"key": "b2b", "label": "B2B", "type": "boolean", "indexed": true},
		{"key": "dob", "label": "Date of birth", "type": "date", "indexed": true, "storefront": true, "visible_to_customer": true},
		{"key": "since", "label": "Customer since", "type": "datetime", "indexed": true},
		{"key": "billing_email", "label": "Billing email", "type": "email"},
		{"key": "site", "label": "Website", "type": "url"},
	} {
		s.define(d)
	}
}

func TestAttributeDefinitionsNeedManageSettingsAndReadBack(t *testing.T) {
	s := newSystem(t)
	staffOnly := s.newToken("users", "MANAGE_USERS")
	body := map[string]any{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"gold"}}
	for _, rt := range []struct{ method, path string }{
		{http.MethodGet, "/v1/settings/customer-attributes"},
		{http.MethodPost, "/v1/settings/customer-attributes"},
		{http.MethodGet, "/v1/settings/customer-attributes/tier"},
		{http.MethodPatch, "/v1/settings/customer-attributes/tier"},
		{http.MethodDelete, "/v1/settings/customer-attributes/tier"},
	} {
		if r := s.doWith(staffOnly.secret, rt.method, rt.path, body, nil); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s with MANAGE_USERS only: status %d, want 403", rt.method, rt.path, r.StatusCode)
		}
	}
	d := s.define(body)
	var again attrProblemJSON
	if r := s.do(http.MethodPost, "/v1/settings/customer-attributes", body, &again); r.StatusCode != http.StatusConflict || again.Errors[0].Code != "unique" {
		t.Errorf("second definition of tier: %d %+v", r.StatusCode, again.Errors)
	}
	var patched attributeJSON
	if r := s.do(http.MethodPatch, "/v1/settings/customer-attributes/tier", map[string]any{"values": []string{"gold", "silver"}, "indexed": true}, &patched); r.StatusCode != http.StatusOK {
		t.Fatalf("patch: %d", r.StatusCode)
	}
	var got attributeJSON
	s.do(http.MethodGet, "/v1/settings/customer-attributes/tier", nil, &got)
	if got.Version != 2 || !got.Indexed || !slices.Equal(got.Values, []string{"gold", "silver"}) {
		t.Errorf("read back %+v, want version 2, indexed, values gold and silver", got)
	}
	var list struct{ Attributes []attributeJSON }
	s.do(http.MethodGet, "/v1/settings/customer-attributes", nil, &list)
	if len(list.Attributes) != 1 || list.Attributes[0].ID != d.ID {
		t.Errorf("list %+v", list.Attributes)
	}
	if r := s.do(http.MethodDelete, "/v1/settings/customer-attributes/tier", nil, nil); r.StatusCode != http.StatusNoContent {
		t.Errorf("delete: %d", r.StatusCode)
	}
	if r := s.do(http.MethodGet, "/v1/settings/customer-attributes/tier", nil, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("get after delete: %d", r.StatusCode)
	}
	// Each change is one event of the definition, in sequence.
	evs, _ := s.streamEvents(3)
	for i, want := range []string{events.CustomerAttributeDefined, events.CustomerAttributeUpdated, events.CustomerAttributeDeleted} {
		if evs[i].Type() != want || evs[i].Subject() != d.ID || fmt.Sprint(evs[i].Extensions()["sequence"]) != fmt.Sprint(i+1) {
			t.Errorf("event %d: %s about %s, want %s about %s", i, evs[i].Type(), evs[i].Subject(), want, d.ID)
		}
		if err := events.ValidateData(evs[i].Type(), evs[i].Data()); err != nil {
			t.Error(err)
		}
	}
	var updated struct{ Changed []string }
	_ = json.Unmarshal(evs[1].Data(), &updated)
	if !slices.Equal(updated.Changed, []string{"values", "indexed"}) {
		t.Errorf("updated changed %v, want [values indexed]", updated.Changed)
	}
}

func TestAttributeValuesAreCheckedByType(t *testing.T) {
	s := newSystem(t)
	s.defineShopAttributes()
	cases := []struct {
		name  string
		attrs map[string]any
		field string
		code  string
	}{
		{"enum value not in the list", map[string]any{"tier": "platinum"}, "attributes.tier", "not_in_enum"},
		{"enum value not a string", map[string]any{"tier": 3}, "attributes.tier", "invalid"},
		{"string too long", map[string]any{"vat": "DE1234567890123"}, "attributes.vat", "max_length"},
		{"string against its pattern", map[string]any{"vat": "de123"}, "attributes.vat", "invalid"},
		{"integer above max", map[string]any{"points": 100001}, "attributes.points", "out_of_range"},
		{"integer below min", map[string]any{"points": -1}, "attributes.points", "out_of_range"},
		{"integer with a fraction", map[string]any{"points": 1.5}, "attributes.points", "invalid"},
		{"integer as a string", map[string]any{"points": "10"}, "attributes.points", "invalid"},
		{"decimal above max", map[string]any{"credit": 1000}, "attributes.credit", "out_of_range"},
		{"decimal with an exponent", map[string]any{"credit": json.Number("1e3")}, "attributes.credit", "invalid"},
		{"boolean as a string", map[string]any{"b2b": "yes"}, "attributes.b2b", "invalid"},
		{"date not a date", map[string]any{"dob": "1990-02-30"}, "attributes.dob", "invalid"},
		{"datetime without a zone", map[string]any{"since": "2020-01-01T10:00:00"}, "attributes.since", "invalid"},
		{"email not an email", map[string]any{"billing_email": "billing at shop"}, "attributes.billing_email", "invalid"},
		{"url not http", map[string]any{"site": "ftp://shop.example.com"}, "attributes.site", "invalid"},
		{"unknown key", map[string]any{"shoe_size": 42}, "attributes.shoe_size", "unknown_attribute"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p problemJSON
			r := s.do(http.MethodPost, "/v1/customers", map[string]any{"email": "c-" + randomSuffix() + "@example.com", "attributes": tc.attrs}, &p)
			if r.StatusCode != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Field != tc.field || p.Errors[0].Code != tc.code {
				t.Errorf("status %d, errors %+v; want 400 %s %s", r.StatusCode, p.Errors, tc.field, tc.code)
			}
		})
	}
	// Every type's good value is stored in its canonical form.
	c := s.createCustomer(map[string]any{"email": "good@example.com", "attributes": map[string]any{
		"tier": "gold", "vat": "DE123", "points": 120, "credit": 12.5, "b2b": true, "dob": "1990-02-28",
		"since": "2020-01-01T12:00:00+02:00", "billing_email": " Billing@Shop.Example ", "site": "https://shop.example.com/a",
	}})
	var got attrCustomerJSON
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	want := map[string]string{"tier": `"gold"`, "vat": `"DE123"`, "points": `120`, "credit": `12.5`, "b2b": `true`,
		"dob": `"1990-02-28"`, "since": `"2020-01-01T10:00:00Z"`, "billing_email": `"billing@shop.example"`, "site": `"https://shop.example.com/a"`}
	for k, v := range want {
		if string(got.Attributes[k]) != v {
			t.Errorf("attributes.%s = %s, want %s", k, got.Attributes[k], v)
		}
	}
}

func TestAttributeValuesOnUpdateReachTheStream(t *testing.T) {
	s := newSystem(t)
	s.define(map[string]any{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"silver", "gold"}, "indexed": true})
	s.define(map[string]any{"key": "points", "label": "Points", "type": "integer", "indexed": true})
	c := s.createCustomer(map[string]any{"email": "ann@example.com", "attributes": map[string]any{"tier": "silver", "points": 5}})
	var upd attrCustomerJSON
	if r := s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"attributes": map[string]any{"tier": "gold", "points": nil}}, &upd); r.StatusCode != http.StatusOK {
		t.Fatalf("patch: %d", r.StatusCode)
	}
	var got attrCustomerJSON
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if string(got.Attributes["tier"]) != `"gold"` || got.Attributes["points"] != nil || got.Version != 2 {
		t.Errorf("after patch: %+v", got)
	}
	// An unrelated update and the same value again change nothing of them.
	s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"attributes": map[string]any{"tier": "gold"}}, nil)
	evs, _ := s.streamEvents(4) // two definitions, created, updated
	last := evs[3]
	var data struct {
		Changed    []string
		Attributes map[string]json.RawMessage
	}
	if err := json.Unmarshal(last.Data(), &data); err != nil {
		t.Fatal(err)
	}
	if last.Type() != events.CustomerUpdated || !slices.Equal(data.Changed, []string{"attributes.points", "attributes.tier"}) || string(data.Attributes["tier"]) != `"gold"` {
		t.Errorf("event %s changed %v attributes %v", last.Type(), data.Changed, data.Attributes)
	}
	if err := events.ValidateData(last.Type(), last.Data()); err != nil {
		t.Error(err)
	}
	if n := s.count(`SELECT count(*) FROM outbox o WHERE o.partition_key = $1`, c.ID); n != 2 {
		t.Errorf("%d events of the customer, want 2 (the same value again is no change)", n)
	}
}

func TestAttributeDefinitionChangesThatBreakValuesAreRefused(t *testing.T) {
	s := newSystem(t)
	s.define(map[string]any{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"silver", "gold"}})
	s.define(map[string]any{"key": "points", "label": "Points", "type": "integer"})
	for i, tier := range []string{"gold", "gold", "silver"} {
		s.createCustomer(map[string]any{"email": "c" + string(rune('a'+i)) + "@example.com", "attributes": map[string]any{"tier": tier, "points": 10 * (i + 1)}})
	}
	cases := []struct {
		name, key string
		patch     map[string]any
		affected  int64
	}{
		{"an enum value taken away", "tier", map[string]any{"values": []string{"silver"}}, 3},
		{"a narrower bound", "points", map[string]any{"max": 15}, 2},
		{"another type", "points", map[string]any{"type": "boolean"}, 3},
		{"required while a customer has no value", "points", map[string]any{"required": true}, 1},
	}
	s.createCustomer(map[string]any{"email": "none@example.com", "attributes": map[string]any{"tier": "gold"}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p attrProblemJSON
			r := s.do(http.MethodPatch, "/v1/settings/customer-attributes/"+tc.key, tc.patch, &p)
			if r.StatusCode != http.StatusConflict || p.Errors[0].Code != "breaks_values" || p.AffectedCustomers != tc.affected {
				t.Errorf("status %d, affected %d, errors %+v; want 409 breaks_values for %d", r.StatusCode, p.AffectedCustomers, p.Errors, tc.affected)
			}
			var d attributeJSON
			s.do(http.MethodGet, "/v1/settings/customer-attributes/"+tc.key, nil, &d)
			if d.Version != 1 {
				t.Errorf("definition moved to version %d", d.Version)
			}
		})
	}
	var p attrProblemJSON
	if r := s.do(http.MethodDelete, "/v1/settings/customer-attributes/tier", nil, &p); r.StatusCode != http.StatusConflict || p.AffectedCustomers != 4 {
		t.Errorf("delete while held: %d, affected %d", r.StatusCode, p.AffectedCustomers)
	}
	if r := s.do(http.MethodPost, "/v1/settings/customer-attributes", map[string]any{"key": "vat", "label": "VAT", "type": "string", "required": true}, &p); r.StatusCode != http.StatusConflict || p.AffectedCustomers != 4 {
		t.Errorf("required definition with customers: %d, affected %d", r.StatusCode, p.AffectedCustomers)
	}
	// A wider change passes, and a required attribute is then required of
	// new customers but no unrelated update of an old one fails over it.
	var d attributeJSON
	if r := s.do(http.MethodPatch, "/v1/settings/customer-attributes/tier", map[string]any{"values": []string{"bronze", "silver", "gold"}, "required": true}, &d); r.StatusCode != http.StatusOK {
		t.Fatalf("widening: %d", r.StatusCode)
	}
	var missing problemJSON
	if r := s.do(http.MethodPost, "/v1/customers", map[string]any{"email": "new@example.com"}, &missing); r.StatusCode != http.StatusBadRequest || missing.Errors[0].Field != "attributes.tier" || missing.Errors[0].Code != "required" {
		t.Errorf("create without a required attribute: %d %+v", r.StatusCode, missing.Errors)
	}
	c := listCustomers(t, s, "email=none@example.com").Customers[0]
	if r := s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"first_name": "Nina"}, nil); r.StatusCode != http.StatusOK {
		t.Errorf("unrelated update after the definition became required: %d", r.StatusCode)
	}
	if r := s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"attributes": map[string]any{"tier": nil}}, &missing); r.StatusCode != http.StatusBadRequest || missing.Errors[0].Code != "required" {
		t.Errorf("removing a required attribute: %d %+v", r.StatusCode, missing.Errors)
	}
}

func TestAttributeFiltersOnIndexedAttributes(t *testing.T) {
	s := newSystem(t)
	s.defineShopAttributes()
	for i, a := range []map[string]any{
		{"tier": "gold", "points": 100, "dob": "1980-05-01", "b2b": true},
		{"tier": "gold", "points": 900, "dob": "1995-05-01", "since": "2021-03-01T00:00:00Z"},
		{"tier": "silver", "points": 150, "dob": "1990-01-01"},
		{"tier": "bronze"},
	} {
		s.createCustomer(map[string]any{"email": "f" + string(rune('a'+i)) + "@example.com", "attributes": a})
	}
	cases := []struct {
		query string
		want  []string
	}{
		{"attributes[tier]=gold", []string{"fa", "fb"}},
		{"attributes[tier]=gold&attributes[points][gte]=200", []string{"fb"}},
		{"attributes[points][gte]=100&attributes[points][lte]=150", []string{"fa", "fc"}},
		{"attributes[points]=150", []string{"fc"}},
		{"attributes[dob][gte]=1985-01-01&attributes[dob][lte]=1990-01-01", []string{"fc"}},
		{"attributes[since][gte]=2021-01-01T00:00:00Z", []string{"fb"}},
		{"attributes[b2b]=true", []string{"fa"}},
		{"attributes[tier]=bronze&email=fd@example.com", []string{"fd"}},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			page := listCustomers(t, s, tc.query+"&order=email")
			var got []string
			for _, c := range page.Customers {
				got = append(got, strings.TrimSuffix(c.Email, "@example.com"))
			}
			if !slices.Equal(got, tc.want) || page.Count == nil || *page.Count != len(tc.want) {
				t.Errorf("got %v (count %s), want %v", got, countOf(page), tc.want)
			}
		})
	}
	bad := []struct{ query, field, code string }{
		{"attributes[vat]=DE1", "attributes[vat]", "not_indexed"},
		{"attributes[shoe]=42", "attributes[shoe]", "unknown_attribute"},
		{"attributes[points][gte]=many", "attributes[points]", "invalid"},
		{"attributes[tier][gte]=gold", "attributes[tier]", "invalid"},
		{"attributes[tier]=platinum", "attributes[tier]", "not_in_enum"},
	}
	for _, b := range bad {
		var p problemJSON
		if r := s.do(http.MethodGet, "/v1/customers?"+b.query, nil, &p); r.StatusCode != http.StatusBadRequest || p.Errors[0].Field != b.field || p.Errors[0].Code != b.code {
			t.Errorf("%s: %d %+v, want 400 %s %s", b.query, r.StatusCode, p.Errors, b.field, b.code)
		}
	}
	// A definition that becomes indexed is filterable on the values held already.
	s.do(http.MethodPatch, "/v1/settings/customer-attributes/vat", map[string]any{"indexed": true}, nil)
	s.createCustomer(map[string]any{"email": "vat@example.com", "attributes": map[string]any{"vat": "DE99"}})
	s.do(http.MethodPatch, "/v1/settings/customer-attributes/vat", map[string]any{"indexed": false}, nil)
	s.do(http.MethodPatch, "/v1/settings/customer-attributes/vat", map[string]any{"indexed": true}, nil)
	if page := listCustomers(t, s, "attributes[vat]="+url.QueryEscape("DE99")); len(page.Customers) != 1 {
		t.Errorf("after reindexing: %d customers with vat DE99, want 1", len(page.Customers))
	}
}

func TestAttributesOnTheStorefrontImportAndBus(t *testing.T) {
	s := newSystem(t)
	s.define(map[string]any{"key": "dob", "label": "Date of birth", "type": "date", "storefront": true, "visible_to_customer": true})
	s.define(map[string]any{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"silver", "gold"}, "visible_to_customer": true})
	s.define(map[string]any{"key": "risk", "label": "Risk", "type": "string"})
	sh := s.newShopper()
	s.do(http.MethodPatch, "/v1/customers/"+sh.ID, map[string]any{"attributes": map[string]any{"tier": "gold", "risk": "low"}}, nil)
	var me struct{ Attributes map[string]json.RawMessage }
	s.as(sh.AccessToken, http.MethodGet, "/v1/store/me", nil).decode(t, &me)
	if string(me.Attributes["tier"]) != `"gold"` || me.Attributes["risk"] != nil {
		t.Errorf("store/me shows %v, want tier and not risk", me.Attributes)
	}
	s.as(sh.AccessToken, http.MethodPatch, "/v1/store/me", map[string]any{"attributes": map[string]any{"dob": "1990-04-01"}}).expectStatus(t, http.StatusOK)
	for _, key := range []string{"tier", "risk", "unknown"} {
		r := s.as(sh.AccessToken, http.MethodPatch, "/v1/store/me", map[string]any{"attributes": map[string]any{key: "gold"}})
		r.expectStatus(t, http.StatusBadRequest)
		var p problemJSON
		r.decode(t, &p)
		if p.Errors[0].Code != "unknown_attribute" {
			t.Errorf("storefront setting %s: %+v", key, p.Errors)
		}
	}
	var staff attrCustomerJSON
	s.do(http.MethodGet, "/v1/customers/"+sh.ID, nil, &staff)
	if string(staff.Attributes["dob"]) != `"1990-04-01"` || string(staff.Attributes["risk"]) != `"low"` {
		t.Errorf("staff see %v", staff.Attributes)
	}
	// The customer's own data export leaves out what customers may not
	// see, the value and the name alike; staff's holds it.
	own := s.as(sh.AccessToken, http.MethodGet, "/v1/store/me/data-export", nil)
	own.expectStatus(t, http.StatusOK)
	if body := string(own.body); strings.Contains(body, "risk") || !strings.Contains(body, `"tier":"gold"`) {
		t.Errorf("the customer's data export shows risk or hides tier: %s", body)
	}
	var full struct{ Customer attrCustomerJSON }
	s.do(http.MethodGet, "/v1/customers/"+sh.ID+"/data-export", nil, &full)
	if string(full.Customer.Attributes["risk"]) != `"low"` {
		t.Errorf("staff's data export has %v", full.Customer.Attributes)
	}

	// An NDJSON import carries attributes, checked as a create's.
	cancel := s.runImports()
	defer cancel()
	job := s.startImport("application/x-ndjson", "",
		`{"email":"imp1@example.com","attributes":{"tier":"silver"}}`+"\n"+`{"email":"imp2@example.com","attributes":{"tier":"bronze"}}`+"\n")
	job = s.waitImport(job.ID)
	errs := s.importErrors(job.ID)
	if len(errs) != 1 || !strings.Contains(errs[0].Field+errs[0].Code, "not_in_enum") {
		t.Errorf("import errors %+v, want one not_in_enum", errs)
	}
	imported, ok := s.customerByEmail("imp1@example.com")
	if !ok {
		t.Fatal("imp1 not imported")
	}
	var got attrCustomerJSON
	s.do(http.MethodGet, "/v1/customers/"+imported.ID, nil, &got)
	if string(got.Attributes["tier"]) != `"silver"` {
		t.Errorf("imported attributes %v", got.Attributes)
	}

	// A bus command sets them too.
	s.runCommands()
	id := s.command("", events.CmdCustomerUpdate, map[string]any{"id": imported.ID, "attributes": map[string]any{"tier": "gold"}})
	var reply attrCustomerJSON
	s.commandReply(id, &reply)
	s.do(http.MethodGet, "/v1/customers/"+imported.ID, nil, &got)
	if string(got.Attributes["tier"]) != `"gold"` {
		t.Errorf("after the bus command: %v", got.Attributes)
	}
}

func TestAttributesInCSVAndNDJSONExportsAndImports(t *testing.T) {
	s := newSystem(t)
	s.define(map[string]any{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"silver", "gold"}, "indexed": true})
	s.define(map[string]any{"key": "points", "label": "Points", "type": "integer", "min": 0})
	s.define(map[string]any{"key": "b2b", "label": "B2B", "type": "boolean"})
	s.createCustomer(map[string]any{"email": "gold@example.com", "attributes": map[string]any{"tier": "gold", "points": 7, "b2b": true}})
	s.createCustomer(map[string]any{"email": "plain@example.com"})

	// The CSV has a column per definition; the attribute filter applies.
	file := export(t, s, "format=csv&order=email")
	rows, err := csv.NewReader(bytes.NewReader(file.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) int { return slices.Index(rows[0], name) }
	if col("attributes.b2b") < 0 || col("attributes.points") < 0 || col("attributes.tier") < 0 {
		t.Fatalf("header %v", rows[0])
	}
	if r := rows[1]; r[col("attributes.tier")] != "gold" || r[col("attributes.points")] != "7" || r[col("attributes.b2b")] != "true" {
		t.Errorf("gold's row %v", r)
	}
	if r := rows[2]; r[col("attributes.tier")] != "" || r[col("attributes.points")] != "" {
		t.Errorf("plain's row %v", r)
	}
	lines := strings.Split(strings.TrimSpace(string(export(t, s, "format=ndjson&attributes[tier]=gold").body)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"attributes":{"b2b":true,"points":7,"tier":"gold"}`) {
		t.Errorf("NDJSON export filtered on tier=gold: %q", lines)
	}

	// A CSV import types its cells by the definitions, creating and (with
	// upsert) changing customers; a bad cell is the row's error.
	cancel := s.runImports()
	defer cancel()
	job := s.waitImport(s.startImport("text/csv", "?mode=upsert",
		"email,attributes.tier,attributes.points,attributes.b2b\n"+
			"new@example.com,silver,12,false\n"+
			"gold@example.com,,8,\n"+
			"bad@example.com,gold,twelve,\n").ID)
	errs := s.importErrors(job.ID)
	if len(errs) != 1 || errs[0].Row != 3 || errs[0].Field != "attributes.points" || errs[0].Code != "invalid" {
		t.Errorf("import errors %+v, want row 3 attributes.points invalid", errs)
	}
	for email, want := range map[string]map[string]string{
		"new@example.com":  {"tier": `"silver"`, "points": `12`, "b2b": `false`},
		"gold@example.com": {"points": `8`}, // the empty cells removed tier and b2b
	} {
		c, ok := s.customerByEmail(email)
		if !ok {
			t.Fatalf("%s not found", email)
		}
		var got attrCustomerJSON
		s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
		if len(got.Attributes) != len(want) {
			t.Errorf("%s has %v, want %v", email, got.Attributes, want)
		}
		for k, v := range want {
			if string(got.Attributes[k]) != v {
				t.Errorf("%s attributes.%s = %s, want %s", email, k, got.Attributes[k], v)
			}
		}
	}
	if page := listCustomers(t, s, "attributes[tier]=gold"); len(page.Customers) != 0 {
		t.Errorf("%d customers still gold after the import removed it", len(page.Customers))
	}
}

func TestAttributesOnRegistrationAndMerge(t *testing.T) {
	s := newSystem(t)
	s.define(map[string]any{"key": "dob", "label": "Date of birth", "type": "date", "storefront": true, "visible_to_customer": true})
	s.define(map[string]any{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"silver", "gold"}})
	s.do(http.MethodPatch, "/v1/settings/customer-attributes/dob", map[string]any{"required": true}, nil)

	register := func(attrs map[string]any) reply {
		return s.public(http.MethodPost, "/v1/store/register", map[string]any{
			"email": "reg-" + randomSuffix() + "@example.com", "password": "correct horse battery",
			"redirect_url": shopURL, "channel": "web", "attributes": attrs,
		})
	}
	for _, tc := range []struct {
		attrs       map[string]any
		field, code string
	}{
		{nil, "attributes.dob", "required"},
		{map[string]any{"dob": "1990-04-01", "tier": "gold"}, "attributes.tier", "unknown_attribute"},
	} {
		r := register(tc.attrs)
		r.expectStatus(t, http.StatusBadRequest)
		var p problemJSON
		r.decode(t, &p)
		if len(p.Errors) != 1 || p.Errors[0].Field != tc.field || p.Errors[0].Code != tc.code {
			t.Errorf("register with %v: %+v, want %s %s", tc.attrs, p.Errors, tc.field, tc.code)
		}
	}
	r := register(map[string]any{"dob": "1990-04-01"})
	r.expectStatus(t, http.StatusCreated)
	var me struct {
		ID         string
		Attributes map[string]json.RawMessage
	}
	r.decode(t, &me)
	var got attrCustomerJSON
	s.do(http.MethodGet, "/v1/customers/"+me.ID, nil, &got)
	if string(got.Attributes["dob"]) != `"1990-04-01"` {
		t.Errorf("registered customer's attributes %v", got.Attributes)
	}

	// A merge keeps the target's values and takes the source's where the
	// target has none.
	target := s.createCustomer(map[string]any{"email": "target@example.com", "attributes": map[string]any{"dob": "1980-01-01"}})
	source := s.createCustomer(map[string]any{"email": "source@example.com", "attributes": map[string]any{"dob": "1970-01-01", "tier": "gold"}})
	if resp := s.do(http.MethodPost, "/v1/customers/"+target.ID+"/merge", map[string]any{"source_id": source.ID}, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("merge: %d", resp.StatusCode)
	}
	s.do(http.MethodGet, "/v1/customers/"+target.ID, nil, &got)
	if string(got.Attributes["dob"]) != `"1980-01-01"` || string(got.Attributes["tier"]) != `"gold"` {
		t.Errorf("merged attributes %v, want the target's dob and the source's tier", got.Attributes)
	}
}

func countOf(p listPage) string {
	if p.Count == nil {
		return "none"
	}
	return fmt.Sprint(*p.Count)
}

// Each instance keeps the definitions in memory; a change made through one
// must hold on the very next write through another.
func TestAttributeDefinitionChangesHoldOnEveryInstance(t *testing.T) {
	s := newSystem(t)
	other := s.secondInstance()
	s.define(map[string]any{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"bronze", "gold"}})
	s.define(map[string]any{"key": "code", "label": "Code", "type": "string", "max_length": 10})
	// The other instance reads the definitions, and keeps them.
	c := other.createCustomer(map[string]any{"email": "warm@example.com", "attributes": map[string]any{"tier": "gold", "code": "abcdef"}})

	attempt := func(method, path string, body map[string]any) (int, problemJSON) {
		t.Helper()
		var p problemJSON
		r := other.do(method, path, body, &p)
		return r.StatusCode, p
	}
	// A wider definition: the other instance takes the new value.
	s.do(http.MethodPatch, "/v1/settings/customer-attributes/tier", map[string]any{"values": []string{"bronze", "silver", "gold"}}, nil)
	if code, p := attempt(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"attributes": map[string]any{"tier": "silver"}}); code != http.StatusOK {
		t.Fatalf("update to a value defined through the first instance: %d %+v", code, p.Errors)
	}
	var got attrCustomerJSON
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if string(got.Attributes["tier"]) != `"silver"` {
		t.Errorf("read back through the first instance: tier %s, want silver", got.Attributes["tier"])
	}
	// A new definition is known to it.
	s.define(map[string]any{"key": "nick", "label": "Nickname", "type": "string", "max_length": 64, "indexed": true})
	n := other.createCustomer(map[string]any{"email": "nick@example.com", "attributes": map[string]any{"nick": "Al"}})
	if page := listCustomers(t, other, "attributes[nick]=Al"); len(page.Customers) != 1 || page.Customers[0].ID != n.ID {
		t.Errorf("filter on the new attribute through the other instance: %+v", page.Customers)
	}
	// A narrower one is enforced by it.
	s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"attributes": map[string]any{"code": nil}}, nil)
	if r := s.do(http.MethodPatch, "/v1/settings/customer-attributes/code", map[string]any{"max_length": 3}, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("narrow code: %d", r.StatusCode)
	}
	if code, p := attempt(http.MethodPost, "/v1/customers", map[string]any{"email": "long@example.com", "attributes": map[string]any{"code": "abcdef"}}); code != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Code != "max_length" {
		t.Errorf("create with a value the narrowed definition refuses: %d %+v, want 400 max_length", code, p.Errors)
	}
	// A deleted one is unknown to it.
	s.do(http.MethodPatch, "/v1/customers/"+n.ID, map[string]any{"attributes": map[string]any{"nick": nil}}, nil)
	if r := s.do(http.MethodDelete, "/v1/settings/customer-attributes/nick", nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete nick: %d", r.StatusCode)
	}
	if code, p := attempt(http.MethodPatch, "/v1/customers/"+n.ID, map[string]any{"attributes": map[string]any{"nick": "Bo"}}); code != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Code != "unknown_attribute" {
		t.Errorf("update with a deleted attribute: %d %+v, want 400 unknown_attribute", code, p.Errors)
	}
	if s.count("SELECT count(*) FROM customers WHERE email = 'long@example.com' OR attributes ? 'nick'") != 0 {
		t.Error("a refused write was stored")
	}
}

// A create that gives no attribute is written by one statement, without
// reading the definitions' version first; a requirement made through
// another instance still holds on it.
func TestACreateIsHeldToARequirementMadeThroughAnotherInstance(t *testing.T) {
	s := newSystem(t)
	other := s.secondInstance()
	s.define(map[string]any{"key": "tier", "label": "Tier", "type": "enum", "values": []string{"bronze", "gold"}})
	// The other instance reads the definitions, and keeps them.
	other.createCustomer(map[string]any{"email": "warm@example.com", "attributes": map[string]any{"tier": "gold"}})
	if r := s.do(http.MethodPatch, "/v1/settings/customer-attributes/tier", map[string]any{"required": true}, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("make tier required: %d", r.StatusCode)
	}
	var p problemJSON
	r := other.do(http.MethodPost, "/v1/customers", map[string]any{"email": "bare@example.com"}, &p)
	if r.StatusCode != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Field != "attributes.tier" || p.Errors[0].Code != "required" {
		t.Errorf("create without the required attribute through the other instance: %d %+v, want 400 required on attributes.tier", r.StatusCode, p.Errors)
	}
	if n := s.count("SELECT count(*) FROM customers WHERE email = 'bare@example.com'"); n != 0 {
		t.Errorf("the refused create was stored (%d rows)", n)
	}
	if n := s.count("SELECT count(*) FROM outbox WHERE partition_key NOT IN (SELECT id::text FROM customers) AND nats_subject LIKE '%customer.created'"); n != 0 {
		t.Errorf("%d customer.created events of customers not stored", n)
	}
	c := other.createCustomer(map[string]any{"email": "dressed@example.com", "attributes": map[string]any{"tier": "bronze"}})
	var got attrCustomerJSON
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if string(got.Attributes["tier"]) != `"bronze"` {
		t.Errorf("read back through the first instance: tier %s, want bronze", got.Attributes["tier"])
	}
}

// Definitions posted at once, through two instances, when the limit has
// room for one more: one is defined, the others refused, and the database
// holds exactly the limit. Each counts the definitions in its own
// transaction, after a lock that the others wait for.
func TestAttributeDefinitionLimitHoldsForConcurrentDefines(t *testing.T) {
	s := newSystem(t)
	other := s.secondInstance()
	for i := range customer.MaxAttributeDefinitions - 1 {
		s.define(map[string]any{"key": fmt.Sprintf("k%d", i), "label": "K", "type": "string"})
	}
	for round := range 3 {
		start := make(chan struct{})
		var wg sync.WaitGroup
		statuses := make([]int, 6)
		for i := range statuses {
			via := []*system{s, other}[i%2]
			wg.Go(func() {
				<-start
				var p problemJSON
				r := via.do(http.MethodPost, "/v1/settings/customer-attributes",
					map[string]any{"key": fmt.Sprintf("race%d_%d", round, i), "label": "Race", "type": "string"}, &p)
				statuses[i] = r.StatusCode
				if r.StatusCode != http.StatusCreated && (len(p.Errors) != 1 || p.Errors[0].Code != "max_items") {
					t.Errorf("round %d: a refused define answered %d %+v, want max_items", round, r.StatusCode, p.Errors)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := s.count("SELECT count(*) FROM customer_attribute_definitions"); n != customer.MaxAttributeDefinitions {
			t.Fatalf("round %d: %d definitions stored (answers %v), want %d", round, n, statuses, customer.MaxAttributeDefinitions)
		}
		if created := slices.Index(statuses, http.StatusCreated); created < 0 || slices.Contains(statuses[created+1:], http.StatusCreated) {
			t.Errorf("round %d: answers %v, want one 201", round, statuses)
		}
		// Room for one again.
		if r := s.do(http.MethodDelete, fmt.Sprintf("/v1/settings/customer-attributes/k%d", round), nil, nil); r.StatusCode != http.StatusNoContent {
			t.Fatalf("delete k%d: %d", round, r.StatusCode)
		}
	}
}

// An indexed string's values go in a btree, whose entries hold about 2,700
// bytes: its max_length is at most 512, and a value that long in 4-byte
// characters is stored and found.
func TestAnIndexedStringIsBoundSoItsLongestValueIsIndexed(t *testing.T) {
	s := newSystem(t)
	for _, body := range []map[string]any{
		{"key": "note", "label": "Note", "type": "string", "indexed": true},
		{"key": "note", "label": "Note", "type": "string", "indexed": true, "max_length": 513},
	} {
		var p problemJSON
		if r := s.do(http.MethodPost, "/v1/settings/customer-attributes", body, &p); r.StatusCode != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Field != "max_length" {
			t.Errorf("define %v: %d %+v, want 400 on max_length", body, r.StatusCode, p.Errors)
		}
	}
	s.define(map[string]any{"key": "plain", "label": "Plain", "type": "string"})
	var p problemJSON
	if r := s.do(http.MethodPatch, "/v1/settings/customer-attributes/plain", map[string]any{"indexed": true}, &p); r.StatusCode != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Field != "max_length" {
		t.Errorf("index a string of max_length 4096: %d %+v, want 400 on max_length", r.StatusCode, p.Errors)
	}
	s.define(map[string]any{"key": "note", "label": "Note", "type": "string", "indexed": true, "max_length": 512})
	long := strings.Repeat("\U0001F600", 512) // 2,048 bytes
	c := s.createCustomer(map[string]any{"email": "long@example.com", "attributes": map[string]any{"note": long}})
	page := listCustomers(t, s, "attributes[note]="+url.QueryEscape(long))
	if len(page.Customers) != 1 || page.Customers[0].ID != c.ID {
		t.Errorf("filter on the longest value: %+v, want the customer", page.Customers)
	}
}
