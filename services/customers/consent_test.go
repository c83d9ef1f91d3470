package customers_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/customerbus/customerbus/events"
)

// consentJSON is a customer's marketing consent on one channel.
type consentJSON struct {
	Channel       string     `json:"channel"`
	State         string     `json:"state"`
	OptInLevel    string     `json:"opt_in_level"`
	UpdatedAt     *time.Time `json:"consent_updated_at"`
	CollectedFrom string     `json:"collected_from"`
}

// Staff and the customer set its marketing consent per channel; each change
// is stored (a fresh GET and the list's filter show it), moves the version
// with one customer.consent_updated and is kept in the consent history; a
// confirmed opt-in waits for the link of its email.
func TestMarketingConsentIsSetConfirmedAndFiltered(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	sh := m.newShopper() // its verification email is mail 1
	other := m.createCustomer(map[string]any{"email": "other-" + randomSuffix() + "@example.com"})
	base := "/v1/customers/" + sh.ID
	get := func() customerJSONWithConsent {
		t.Helper()
		var c customerJSONWithConsent
		request(t, m.system, http.MethodGet, base, nil, nil).decode(t, &c)
		return c
	}
	before := get()
	if before.Email.State != "not_subscribed" || before.SMS.State != "not_subscribed" || before.Email.UpdatedAt != nil {
		t.Fatalf("a new customer's consents: %+v %+v, want not_subscribed, never set", before.Email, before.SMS)
	}

	// Staff subscribe it to email; the same again changes nothing.
	var set consentJSON
	request(t, m.system, http.MethodPut, base+"/consent/email", map[string]any{"state": "subscribed", "collected_from": "checkout"}, nil).decode(t, &set)
	after := get()
	if set.Channel != "email" || set.State != "subscribed" || set.OptInLevel != "single_opt_in" || set.CollectedFrom != "checkout" || set.UpdatedAt == nil ||
		after.Email.State != "subscribed" || after.Email.CollectedFrom != "checkout" || after.Version != before.Version+1 {
		t.Errorf("after subscribing: answer %+v, GET %+v version %d (was %d)", set, after.Email, after.Version, before.Version)
	}
	request(t, m.system, http.MethodPut, base+"/consent/email", map[string]any{"state": "subscribed", "collected_from": "checkout"}, nil).expectStatus(t, http.StatusOK)
	if v := get().Version; v != after.Version {
		t.Errorf("the same consent again moved the version to %d", v)
	}

	// SMS needs a phone to subscribe; unsubscribing always works.
	request(t, m.system, http.MethodPut, base+"/consent/sms", map[string]any{"state": "subscribed"}, nil).expectProblem(t, http.StatusBadRequest, "state", "phone_required")
	request(t, m.system, http.MethodPut, base+"/consent/sms", map[string]any{"state": "unsubscribed"}, nil).expectStatus(t, http.StatusOK)
	request(t, m.system, http.MethodPut, base+"/consent/sms", map[string]any{"state": "subscribed", "opt_in_level": "confirmed_opt_in"}, nil).
		expectProblem(t, http.StatusBadRequest, "opt_in_level", "invalid")
	request(t, m.system, http.MethodPut, base+"/consent/fax", map[string]any{"state": "subscribed"}, nil).expectProblem(t, http.StatusBadRequest, "channel", "invalid")
	request(t, m.system, http.MethodPut, base+"/consent/email", map[string]any{"state": "pending"}, nil).expectProblem(t, http.StatusBadRequest, "state", "invalid")

	// The customer unsubscribes itself, then opts in again, confirmed.
	var own consentJSON
	m.as(sh.AccessToken, http.MethodPut, "/v1/store/me/consent/email", map[string]any{"state": "unsubscribed"}).decode(t, &own)
	if own.State != "unsubscribed" || own.CollectedFrom != "storefront" {
		t.Errorf("the customer's own unsubscription: %+v", own)
	}
	m.as(sh.AccessToken, http.MethodPut, "/v1/store/me/consent/email", map[string]any{"state": "subscribed", "opt_in_level": "confirmed_opt_in"}).
		expectProblem(t, http.StatusBadRequest, "redirect_url", "required")
	m.as(sh.AccessToken, http.MethodPut, "/v1/store/me/consent/email", map[string]any{
		"state": "subscribed", "opt_in_level": "confirmed_opt_in", "redirect_url": shopURL, "channel": "web",
	}).decode(t, &own)
	if own.State != "pending" || get().Email.State != "pending" {
		t.Errorf("a confirmed opt-in before its confirmation: %+v", own)
	}
	token, _, mail := m.mailTo(2, sh.Email)
	if !strings.Contains(mail.Subject, "Confirm your subscription") {
		t.Errorf("the confirmation email's subject: %q", mail.Subject)
	}
	var confirmed consentJSON
	m.public(http.MethodPost, "/v1/store/consent/confirm", map[string]any{"token": token}).decode(t, &confirmed)
	var mine consentJSON
	m.as(sh.AccessToken, http.MethodGet, "/v1/store/me/consent/email", nil).decode(t, &mine)
	if confirmed.State != "subscribed" || confirmed.OptInLevel != "confirmed_opt_in" || mine.State != confirmed.State ||
		mine.OptInLevel != confirmed.OptInLevel || !mine.UpdatedAt.Equal(*confirmed.UpdatedAt) {
		t.Errorf("after the confirmation: answer %+v, the customer's GET %+v", confirmed, mine)
	}
	m.public(http.MethodPost, "/v1/store/consent/confirm", map[string]any{"token": token}).expectProblem(t, http.StatusBadRequest, "token", "already_used")

	// The list filters on it.
	var page struct {
		Customers []customerJSON `json:"customers"`
	}
	request(t, m.system, http.MethodGet, "/v1/customers?email_marketing_consent=subscribed", nil, nil).decode(t, &page)
	if len(page.Customers) != 1 || page.Customers[0].ID != sh.ID {
		t.Errorf("email_marketing_consent=subscribed lists %+v, want the shopper alone", page.Customers)
	}
	request(t, m.system, http.MethodGet, "/v1/customers?sms_marketing_consent=not_subscribed", nil, nil).decode(t, &page)
	if len(page.Customers) != 1 || page.Customers[0].ID != other.ID {
		t.Errorf("sms_marketing_consent=not_subscribed lists %+v, want the other customer alone", page.Customers)
	}
	request(t, m.system, http.MethodGet, "/v1/customers?email_marketing_consent=maybe", nil, nil).expectProblem(t, http.StatusBadRequest, "email_marketing_consent", "invalid")

	// Every change is kept, with its actor; each moved the version once.
	rows := m.count(`SELECT count(*) FROM customer_consent_changes WHERE customer_id = $1`, sh.ID)
	byCustomer := m.count(`SELECT count(*) FROM customer_consent_changes WHERE customer_id = $1 AND actor_type = 'user'`, sh.ID)
	if rows != 5 || byCustomer != 3 {
		t.Errorf("%d consent changes kept (%d by the customer), want 5 (3)", rows, byCustomer)
	}
	m.waitRelayed()
	var updates []string
	for _, e := range m.readStreamEvents(events.EventsStream) {
		if e.Type() == events.CustomerConsentUpdated && e.Subject() == sh.ID {
			updates = append(updates, ext(e, "sequence"))
		}
	}
	if len(updates) != 5 || updates[4] != itoa64(get().Version) {
		t.Errorf("customer.consent_updated sequences %v, want 5 ending at the version %d", updates, get().Version)
	}
}

// customerJSONWithConsent is the customer with its consents.
type customerJSONWithConsent struct {
	Version int64       `json:"version"`
	Email   consentJSON `json:"email_marketing_consent"`
	SMS     consentJSON `json:"sms_marketing_consent"`
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
