package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers"
)

// The whole loop, as staff and an app see it: an endpoint registered
// through the API gets the customer created through the API, signed with
// the secret the registration answered (checked with the Standard Webhooks
// library), and a ping; the delivery log reads both delivered.
func TestARegisteredEndpointGetsTheEventsOfTheAPI(t *testing.T) {
	w := newWorld(t)
	cfg := customers.Config{MaxBodyBytes: 64 << 10}
	cfg.Webhooks.AllowHTTP = true
	api := httptest.NewServer(customers.New(w.pool, zaptest.NewLogger(t), prometheus.NewRegistry(), cfg).Handler())
	t.Cleanup(api.Close)
	token, err := customers.CreateToken(context.Background(), w.pool, "staff", false, customers.Permissions)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path string, body any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, api.URL+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s", method, path, resp.Status)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	rcv := newReceiver(t, nil)
	w.start(fast)
	var hook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	call(http.MethodPost, "/v1/webhooks", map[string]any{"url": rcv.URL + "/crm", "event_types": []string{"customer.created"}}, &hook)
	var created struct {
		ID string `json:"id"`
	}
	call(http.MethodPost, "/v1/customers", map[string]any{"email": "hook-" + hook.ID[:8] + "@example.com"}, &created)
	call(http.MethodPost, "/v1/webhooks/"+hook.ID+"/ping", nil, nil)

	w.eventually("the created customer and the ping delivered", func() bool { return len(rcv.accepted()) == 2 })
	wh, err := standardwebhooks.NewWebhook(hook.Secret)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, c := range rcv.got() {
		if err := wh.Verify(c.body, c.header); err != nil {
			t.Errorf("the library refuses the delivery: %v", err)
		}
		e := eventOf(t, c)
		types[e.Type()] = true
		if e.Type() == events.CustomerCreated && e.Subject() != created.ID {
			t.Errorf("customer.created about %s, want %s", e.Subject(), created.ID)
		}
	}
	if !types[events.CustomerCreated] || !types[events.WebhookPing] {
		t.Errorf("delivered types %v", types)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var log struct {
			Deliveries []struct {
				Status   string `json:"status"`
				Attempts int    `json:"attempts"`
			} `json:"deliveries"`
		}
		call(http.MethodGet, "/v1/webhooks/"+hook.ID+"/deliveries", nil, &log)
		ok := len(log.Deliveries) == 2
		for _, d := range log.Deliveries {
			ok = ok && d.Status == "delivered" && d.Attempts == 1
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery log reads %+v", log.Deliveries)
		}
	}
	if strings.Contains(rcv.got()[0].header.Get("webhook-signature"), " ") {
		t.Error("two signatures without a rotation")
	}
}
