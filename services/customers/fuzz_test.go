package customers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/services/customers"
)

// apiSeed is a request of FuzzAPI's seed corpus: as (0 staff, 1 a
// customer, 2 no token), and a path and body that may name the fixtures
// by placeholder ({customer}, {address} …).
type apiSeed struct {
	as           uint8
	method, path string
	body         string
}

// apiSeeds are one or more realistic requests of every route.
var apiSeeds = []apiSeed{
	{2, "POST", "/v1/store/register", `{"email":"reg@example.com","password":"correct horse battery","first_name":"Ann","redirect_url":"https://shop.example.com/confirm","channel":"web"}`},
	{2, "POST", "/v1/store/confirm", `{"token":"not-a-token"}`},
	{2, "POST", "/v1/store/token", `{"email":"{shopper_email}","password":"correct horse battery"}`},
	{2, "POST", "/v1/store/token/refresh", `{"refresh_token":"x"}`},
	{2, "POST", "/v1/store/password-reset", `{"email":"{shopper_email}","redirect_url":"https://shop.example.com/reset","channel":"web"}`},
	{2, "POST", "/v1/store/password", `{"token":"x","password":"another good password"}`},
	{1, "POST", "/v1/store/logout", `{"all":false}`},
	{1, "GET", "/v1/store/me", ``},
	{1, "PATCH", "/v1/store/me", `{"first_name":"Annie","phone":"+49 30 1234567","language_code":"de","metadata":{"k":"v"}}`},
	{1, "GET", "/v1/store/me/addresses?limit=5", ``},
	{1, "POST", "/v1/store/me/addresses", `{"first_name":"Ann","last_name":"Lee","street_address_1":"Main St 1","city":"Berlin","postal_code":"10115","country":"DE","phone":"030 1234567"}`},
	{1, "PATCH", "/v1/store/me/addresses/{my_address}", `{"city":"Hamburg"}`},
	{1, "DELETE", "/v1/store/me/addresses/{my_address}", ``},
	{1, "POST", "/v1/store/me/email-change", `{"new_email":"new@example.com","password":"correct horse battery","redirect_url":"https://shop.example.com/email","channel":"web"}`},
	{1, "POST", "/v1/store/me/email-change/confirm", `{"token":"x"}`},
	{1, "POST", "/v1/store/me/deletion-request", `{"redirect_url":"https://shop.example.com/delete","channel":"web"}`},
	{1, "POST", "/v1/store/me/delete", `{"token":"x"}`},
	{1, "GET", "/v1/store/me/orders", ``},
	{1, "GET", "/v1/store/me/data-export", ``},
	{1, "GET", "/v1/store/me/consent/email", ``},
	{1, "PUT", "/v1/store/me/consent/sms", `{"state":"subscribed","redirect_url":"https://shop.example.com/c","channel":"web"}`},
	{2, "POST", "/v1/store/consent/confirm", `{"token":"x"}`},
	{0, "POST", "/v1/orders", `{"id":"0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b","number":"R-1","email":"buyer@example.com","customer_id":"{customer}","channel":"web","total":"12.50","currency":"eur","status":"placed","placed_at":"2025-03-14T15:09:26Z","metadata":{"source":"pos"}}`},
	{0, "POST", "/v1/orders", `{"id":"0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0c","number":"R-2","email":"buyer@example.com","customer_id":null,"channel":"web","total":"0.5","currency":"EUR","status":"placed","placed_at":"0000-01-01T00:00:00+01:00"}`},
	{0, "POST", "/v1/orders/{order}/transfer-requests", `{"customer_id":"{other}","redirect_url":"https://shop.example.com/transfer","channel":"web"}`},
	{0, "DELETE", "/v1/orders/{order}/transfer-requests", ``},
	{2, "POST", "/v1/store/orders/{order}/transfer/accept", `{"token":"x"}`},
	{2, "POST", "/v1/store/orders/{order}/transfer/decline", `{"token":"x"}`},
	{0, "GET", "/v1/customers/{customer}/orders?limit=2", ``},
	{0, "POST", "/v1/customers", `{"email":"new@example.com","first_name":"Ann","phone":"+49 30 1234567","language_code":"pt-br","external_reference":"ERP-1","metadata":{"tier":"gold"},"private_metadata":{"k":"v"},"groups":["{group}"],"addresses":[{"street_address_1":"Main St 1","city":"Berlin","postal_code":"10115","country":"DE","first_name":"Ann","last_name":"Lee","is_default_billing":true}]}`},
	{0, "GET", "/v1/customers?q=ann&is_active=true&created_after=2020-01-01T00:00:00Z&metadata=tier:gold&order=email&limit=10&with_count=true", ``},
	{0, "GET", "/v1/customers?number_of_orders_min=1&placed_orders_before=2030-01-01T00:00:00Z&email_marketing_consent=subscribed&cursor=x", ``},
	{0, "GET", "/v1/customers/export?format=ndjson&with_addresses=true", ``},
	{0, "GET", "/v1/customers/export?format=csv&columns=email,first_name", ``},
	{0, "GET", "/v1/customers/{customer}", ``},
	{0, "PATCH", "/v1/customers/{customer}", `{"first_name":" Ann ","phone":null,"note":"VIP","is_active":true,"external_reference":null,"metadata":{"tier":"silver"}}`},
	{0, "DELETE", "/v1/customers/{other}", ``},
	{0, "POST", "/v1/customers/{other}/anonymize", ``},
	{0, "GET", "/v1/customers/{customer}/history?limit=3", ``},
	{0, "GET", "/v1/customers/{customer}/data-export", ``},
	{0, "POST", "/v1/customers/{customer}/merge", `{"source_id":"{other}","override":{"email":"{other}"}}`},
	{0, "GET", "/v1/customers/{customer}/merge-preview?source_id={other}&override=email,phone", ``},
	{0, "GET", "/v1/customers/{customer}/duplicates", ``},
	{0, "GET", "/v1/customer-duplicates?reason=email&limit=5", ``},
	{0, "POST", "/v1/customer-duplicates/dismissals", `{"customer_ids":["{customer}","{other}"]}`},
	{0, "PUT", "/v1/customers/{customer}/consent/email", `{"state":"subscribed","collected_from":"checkout","opt_in_level":"single_opt_in"}`},
	{0, "PATCH", "/v1/customers/{customer}/metadata", `{"metadata":{"a":"1","b":null}}`},
	{0, "PATCH", "/v1/customers/{customer}/private-metadata", `{"metadata":{"erp":"42"}}`},
	{0, "POST", "/v1/customers/{customer}/notes", `{"text":"Called about the order"}`},
	{0, "GET", "/v1/customers/{customer}/notes", ``},
	{0, "POST", "/v1/customers/bulk-delete", `{"ids":["{other}"]}`},
	{0, "POST", "/v1/customers/bulk-update", `{"ids":["{customer}","{other}"],"update":{"is_active":false,"add_groups":["{group}"]}}`},
	{0, "GET", "/v1/customers/{customer}/addresses", ``},
	{0, "POST", "/v1/customers/{customer}/addresses", `{"first_name":"Ann","last_name":"Lee","street_address_1":"Side St 2","city":"Paris","postal_code":"75001","country":"fr","is_default_shipping":true}`},
	{0, "PATCH", "/v1/customers/{customer}/addresses/{address}", `{"postal_code":"10117","phone":"+33 1 23 45 67 89","is_default_billing":false}`},
	{0, "DELETE", "/v1/customers/{customer}/addresses/{address}", ``},
	{0, "GET", "/v1/import-jobs/0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b", ``},
	{0, "GET", "/v1/import-jobs/x/errors", ``},
	{0, "GET", "/v1/settings/address-form", ``},
	{0, "PUT", "/v1/settings/address-form", `{"required_fields":["first_name","last_name","street_address_1","city","postal_code","country"]}`},
	{0, "POST", "/v1/customer-groups", `{"name":"VIP","description":"The best"}`},
	{0, "GET", "/v1/customer-groups?q=v&limit=5", ``},
	{0, "GET", "/v1/customer-groups/{group}", ``},
	{0, "PATCH", "/v1/customer-groups/{group}", `{"description":"Still the best"}`},
	{0, "DELETE", "/v1/customer-groups/{group}", ``},
	{0, "POST", "/v1/customer-groups/{group}/customers", `{"add":["{customer}"],"remove":["{other}"]}`},
	{0, "POST", "/v1/webhooks", `{"url":"https://hooks.example.com/customerbus","event_types":["customer.*","order.recorded"],"content_mode":"binary","description":"CRM"}`},
	{0, "GET", "/v1/webhooks?limit=1", ``},
	{0, "GET", "/v1/webhooks/{webhook}", ``},
	{0, "PATCH", "/v1/webhooks/{webhook}", `{"is_active":false,"event_types":["*"]}`},
	{0, "DELETE", "/v1/webhooks/{webhook}", ``},
	{0, "POST", "/v1/webhooks/{webhook}/rotate-secret", ``},
	{0, "POST", "/v1/webhooks/{webhook}/ping", ``},
	{0, "GET", "/v1/webhooks/{webhook}/deliveries", ``},
	{0, "POST", "/v1/webhooks/{webhook}/deliveries/0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b/retry", ``},
	{0, "GET", "/v1/nothing-here", ``},
	{0, "PUT", "/v1/customers", `{}`},
}

// fuzzMethods are the methods FuzzAPI sends (HEAD answers no body to
// check).
var fuzzMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// FuzzAPI sends requests to every route of the service, on a real
// database (one for the whole run), as staff, as a customer or with no
// token: whatever the method, path, query and body, the service never
// answers a 5xx, every answer matches the OpenAPI document, and a customer
// a write answers is the one stored. Destroying a fixture (a deletion, a
// merge) makes new ones for the next input.
func FuzzAPI(f *testing.F) {
	add := func(as uint8, method, path, contentType, body string) {
		f.Add(as, uint8(slices.Index(fuzzMethods, method)), path, contentType, []byte(body))
	}
	for _, s := range apiSeeds {
		add(s.as, s.method, s.path, "application/json", s.body)
	}
	add(0, "POST", "/v1/customers/import?mode=upsert&on_error=skip_rows", "text/csv",
		"email,first_name,metadata.tier,address.country,created_at\nann@example.com,Ann,gold,DE,2019-01-01T00:00:00Z\n")
	add(0, "POST", "/v1/customers/import", "application/x-ndjson", `{"email":"bo@example.com","addresses":[{"country":"US"}]}`+"\n")
	add(0, "POST", "/v1/customers", "text/plain", `{}`)
	add(0, "POST", "/v1/customers", "", "{\"email\":\"\xff@example.com\"}")
	add(0, "OPTIONS", "/v1/customers", "", "")

	pool, _ := dbtest.New(f)
	core, logged := observer.New(zap.ErrorLevel)
	svc := customers.New(pool, zap.New(core), prometheus.NewRegistry(), customers.Config{MaxBodyBytes: 64 << 10})
	api := httptest.NewServer(svc.Handler())
	f.Cleanup(api.Close)
	token, err := customers.CreateToken(context.Background(), pool, "fuzz", false, customers.Permissions)
	if err != nil {
		f.Fatal(err)
	}
	var fx *apiFixtures
	f.Fuzz(func(t *testing.T, as, methodIndex uint8, path, contentType string, body []byte) {
		if strings.ContainsFunc(contentType, isControl) || strings.ContainsFunc(path, func(r rune) bool { return r == ' ' || isControl(r) }) {
			return // not a request an HTTP client sends (Go's client would, and its server refuses the request line)
		}
		method := fuzzMethods[int(methodIndex)%len(fuzzMethods)]
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		s := &system{t: t, pool: pool, api: api, token: token, svc: svc}
		if fx == nil {
			fx = newAPIFixtures(s)
		}
		path, body = fx.replace.Replace(path), []byte(fx.replace.Replace(string(body)))
		if _, err := http.NewRequest(method, api.URL+path, nil); err != nil {
			return
		}
		headers := map[string]string{"Content-Type": contentType}
		switch as % 3 {
		case 1:
			headers["Authorization"] = "Bearer " + fx.shopperToken
		case 2:
			headers["Authorization"] = ""
		}
		var sent any
		if len(body) > 0 {
			sent = body
		}
		logged.TakeAll()
		r := request(t, s, method, path, sent, headers)
		if r.status >= 500 {
			var errs []string
			for _, e := range logged.TakeAll() {
				errs = append(errs, fmt.Sprintf("%s %v", e.Message, e.ContextMap()))
			}
			t.Fatalf("%s %s %s answered %d: %s\nlogged: %s", method, path, body, r.status, r.body, strings.Join(errs, "\n"))
		}
		if r.status >= 300 {
			return
		}
		if method != http.MethodGet && strings.HasPrefix(path, "/v1/customers") {
			var c customerJSON
			if json.Unmarshal(r.body, &c) == nil && c.ID != "" && c.Email != "" && c.Version > 0 {
				s.expectStored(c)
			}
		}
		if method == http.MethodDelete || strings.Contains(path, "merge") || strings.Contains(path, "anonymize") ||
			strings.Contains(path, "bulk-delete") || strings.Contains(path, "/me/delete") {
			fx = nil // perhaps a fixture is gone
		}
	})
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// apiFixtures are what FuzzAPI's requests name: two customers (one with an
// address), a group, an order, a webhook, and a customer logged in, with
// an address of its own.
type apiFixtures struct {
	replace      *strings.Replacer
	shopperToken string
}

func newAPIFixtures(s *system) *apiFixtures {
	s.t.Helper()
	c := s.createCustomer(map[string]any{
		"email": "fuzz-" + randomSuffix() + "@example.com", "first_name": "Ann", "phone": "+49 30 1234567",
		"addresses": []map[string]any{{
			"first_name": "Ann", "last_name": "Lee", "street_address_1": "Main St 1", "city": "Berlin",
			"postal_code": "10115", "country": "DE", "is_default_shipping": true,
		}},
	})
	other := s.createCustomer(map[string]any{"email": "fuzz-other-" + randomSuffix() + "@example.com", "last_name": "Lee"})
	group := s.createGroup("fuzz-" + randomSuffix())
	ord := s.recordOrder(orderBody(&c.ID, time.Now().Add(-time.Hour)))
	var wh struct {
		ID string `json:"id"`
	}
	request(s.t, s, http.MethodPost, "/v1/webhooks", map[string]any{
		"url": "https://hooks.example.com/" + randomSuffix(), "event_types": []string{"customer.*"},
	}, nil).decode(s.t, &wh)
	sh := s.newShopper()
	var mine struct {
		ID string `json:"id"`
	}
	request(s.t, s, http.MethodPost, "/v1/store/me/addresses", map[string]any{
		"first_name": "Bo", "last_name": "Lee", "street_address_1": "Side St 2", "city": "Hamburg", "postal_code": "20095", "country": "DE",
	}, map[string]string{"Authorization": "Bearer " + sh.AccessToken}).decode(s.t, &mine)
	return &apiFixtures{
		replace: strings.NewReplacer(
			"{customer}", c.ID, "{other}", other.ID, "{address}", *c.DefaultShipping, "{my_address}", mine.ID,
			"{group}", group.ID, "{order}", ord.ID, "{webhook}", wh.ID, "{shopper}", sh.ID, "{shopper_email}", sh.Email,
		),
		shopperToken: sh.AccessToken,
	}
}
