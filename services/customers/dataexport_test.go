package customers_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/customerbus/customerbus/events"
)

// dataExportJSON is GET …/data-export, its parts kept raw to compare them
// with what the routes of each part answer.
type dataExportJSON struct {
	Customer  map[string]json.RawMessage  `json:"customer"`
	Addresses json.RawMessage             `json:"addresses"`
	Orders    json.RawMessage             `json:"orders"`
	Groups    []struct{ ID, Name string } `json:"groups"`
	Notes     json.RawMessage             `json:"notes"`
	Consents  struct {
		Email   consentJSON       `json:"email"`
		History []json.RawMessage `json:"history"`
	} `json:"consents"`
	History json.RawMessage `json:"history"`
	Emails  []struct {
		Type   string     `json:"type"`
		SentAt *time.Time `json:"sent_at"`
	} `json:"emails"`
	Sessions []struct {
		CreatedAt time.Time `json:"created_at"`
	} `json:"sessions"`
}

// The data export holds everything about the customer, each part as its
// own route shows it, for staff with private metadata and for the customer
// itself without; never a token.
func TestDataExportHoldsEverythingAboutTheCustomer(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	sh := m.newShopper()
	base := "/v1/customers/" + sh.ID
	request(t, m.system, http.MethodPost, base+"/addresses", validAddress(), nil).expectStatus(t, http.StatusCreated)
	request(t, m.system, http.MethodPost, base+"/notes", map[string]any{"text": "asked for a catalogue"}, nil).expectStatus(t, http.StatusCreated)
	request(t, m.system, http.MethodPatch, base+"/private-metadata", map[string]any{"set": map[string]string{"erp": "k-77"}}, nil).expectStatus(t, http.StatusOK)
	request(t, m.system, http.MethodPut, base+"/consent/email", map[string]any{"state": "subscribed"}, nil).expectStatus(t, http.StatusOK)
	g := m.createGroup("export-" + randomSuffix())
	request(t, m.system, http.MethodPost, "/v1/customer-groups/"+g.ID+"/customers", map[string]any{"add": []string{sh.ID}}, nil).expectStatus(t, http.StatusOK)
	m.recordOrder(orderBody(&sh.ID, time.Now()))
	m.waitRelayed()
	m.smtp.WaitMails(1)

	get := func(path, token string) (dataExportJSON, []byte) {
		t.Helper()
		var d dataExportJSON
		var r reply
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if token == "" {
				r = request(t, m.system, http.MethodGet, path, nil, nil)
			} else {
				r = m.as(token, http.MethodGet, path, nil)
			}
			r.expectStatus(t, http.StatusOK)
			r.decode(t, &d)
			if len(d.Emails) > 0 && d.Emails[0].SentAt != nil || time.Now().After(deadline) {
				return d, r.body
			}
		}
	}
	staff, staffBody := get(base+"/data-export", "")
	own, ownBody := get("/v1/store/me/data-export", sh.AccessToken)

	// Each part is what its own route answers.
	part := func(path, key string) json.RawMessage {
		t.Helper()
		var page map[string]json.RawMessage
		request(t, m.system, http.MethodGet, path, nil, nil).decode(t, &page)
		return page[key]
	}
	same := func(name string, got, want json.RawMessage) {
		t.Helper()
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("the export's %s:\n%s\nits route answers:\n%s", name, got, want)
		}
	}
	for _, d := range []dataExportJSON{staff, own} {
		same("addresses", d.Addresses, part(base+"/addresses", "addresses"))
		same("orders", d.Orders, part(base+"/orders", "orders"))
		same("notes", d.Notes, part(base+"/notes", "notes"))
		same("history", d.History, part(base+"/history?limit=100", "entries"))
		if len(d.Groups) != 1 || d.Groups[0].ID != g.ID || d.Groups[0].Name != g.Name {
			t.Errorf("groups %+v, want %s", d.Groups, g.Name)
		}
		if d.Consents.Email.State != "subscribed" || len(d.Consents.History) != 1 {
			t.Errorf("consents %+v", d.Consents)
		}
		if len(d.Emails) != 1 || d.Emails[0].Type != events.CustomerVerificationRequested || d.Emails[0].SentAt == nil {
			t.Errorf("emails %+v, want the verification email, sent", d.Emails)
		}
		if len(d.Sessions) != 1 {
			t.Errorf("sessions %+v, want the shopper's login", d.Sessions)
		}
	}
	if _, ok := staff.Customer["private_metadata"]; !ok {
		t.Error("the staff export has no private metadata")
	}
	if _, ok := own.Customer["private_metadata"]; ok || strings.Contains(string(ownBody), "k-77") {
		t.Error("the customer's own export shows private metadata")
	}
	for _, secret := range []string{sh.AccessToken, sh.RefreshToken, "cbt_", "argon2"} {
		if strings.Contains(string(staffBody), secret) || strings.Contains(string(ownBody), secret) {
			t.Errorf("an export holds a secret (%.12s…)", secret)
		}
	}
	request(t, m.system, http.MethodGet, "/v1/customers/"+g.ID+"/data-export", nil, nil).expectProblem(t, http.StatusNotFound, "id", "not_found")
}
