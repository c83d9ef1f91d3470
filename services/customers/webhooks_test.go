package customers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers"
)

// webhookJSON is the API's webhook endpoint; Secret is set only by its
// creation and a rotation.
type webhookJSON struct {
	ID                      string     `json:"id"`
	URL                     string     `json:"url"`
	EventTypes              []string   `json:"event_types"`
	ContentMode             string     `json:"content_mode"`
	Description             string     `json:"description"`
	IsActive                bool       `json:"is_active"`
	DisabledReason          *string    `json:"disabled_reason"`
	DisabledAt              *time.Time `json:"disabled_at"`
	FailingSince            *time.Time `json:"failing_since"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
	Secret                  string     `json:"secret"`
}

// deliveryJSON is one delivery of an endpoint.
type deliveryJSON struct {
	ID               string     `json:"id"`
	EventID          string     `json:"event_id"`
	EventType        string     `json:"event_type"`
	Status           string     `json:"status"`
	Attempts         int        `json:"attempts"`
	NextAttemptAt    *time.Time `json:"next_attempt_at"`
	LastAttemptAt    *time.Time `json:"last_attempt_at"`
	LastResponseCode *int       `json:"last_response_code"`
	LastLatencyMS    *float64   `json:"last_latency_ms"`
	LastError        *string    `json:"last_error"`
	CreatedAt        time.Time  `json:"created_at"`
	DeliveredAt      *time.Time `json:"delivered_at"`
}

var secretRE = regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=$`)

func (s *system) createWebhook(body map[string]any) webhookJSON {
	s.t.Helper()
	if body == nil {
		body = map[string]any{"url": "https://hooks.example.com/" + randomSuffix(), "event_types": []string{"customer.*"}}
	}
	r := request(s.t, s, http.MethodPost, "/v1/webhooks", body, nil)
	r.expectStatus(s.t, http.StatusCreated)
	var w webhookJSON
	r.decode(s.t, &w)
	return w
}

func (s *system) getWebhook(id string) webhookJSON {
	s.t.Helper()
	r := request(s.t, s, http.MethodGet, "/v1/webhooks/"+id, nil, nil)
	r.expectStatus(s.t, http.StatusOK)
	var raw map[string]json.RawMessage
	r.decode(s.t, &raw)
	if _, ok := raw["secret"]; ok {
		s.t.Errorf("GET /v1/webhooks/%s shows the secret: %s", id, r.body)
	}
	var w webhookJSON
	r.decode(s.t, &w)
	return w
}

func (s *system) ping(id string) deliveryJSON {
	s.t.Helper()
	r := request(s.t, s, http.MethodPost, "/v1/webhooks/"+id+"/ping", nil, nil)
	r.expectStatus(s.t, http.StatusAccepted)
	var d deliveryJSON
	r.decode(s.t, &d)
	return d
}

func (s *system) deliveries(id, query string) ([]deliveryJSON, *string) {
	s.t.Helper()
	r := request(s.t, s, http.MethodGet, "/v1/webhooks/"+id+"/deliveries?"+query, nil, nil)
	r.expectStatus(s.t, http.StatusOK)
	var page struct {
		Deliveries []deliveryJSON `json:"deliveries"`
		NextCursor *string        `json:"next_cursor"`
	}
	r.decode(s.t, &page)
	return page.Deliveries, page.NextCursor
}

// webhookSecrets reads the endpoint's secrets from its row.
func (s *system) webhookSecrets(id string) (secret string, previous *string, expires *time.Time) {
	s.t.Helper()
	if err := s.pool.QueryRow(context.Background(),
		`SELECT secret, previous_secret, previous_secret_expires_at FROM webhooks WHERE id = $1`, id,
	).Scan(&secret, &previous, &expires); err != nil {
		s.t.Fatalf("read the webhook's row: %v", err)
	}
	return secret, previous, expires
}

// webhookRouteCall prepares a webhook route's call that succeeds.
func webhookRouteCall(s *system, method, pattern string) (path string, body any) {
	s.t.Helper()
	switch method + " " + pattern {
	case "POST /v1/webhooks":
		return pattern, map[string]any{"url": "https://hooks.example.com/" + randomSuffix(), "event_types": []string{"*"}}
	case "GET /v1/webhooks":
		return pattern, nil
	}
	w := s.createWebhook(nil)
	path = strings.ReplaceAll(pattern, "{id}", w.ID)
	switch method + " " + pattern {
	case "PATCH /v1/webhooks/{id}":
		body = map[string]any{"description": "patched"}
	case "POST /v1/webhooks/{id}/deliveries/{did}/retry":
		path = strings.ReplaceAll(path, "{did}", s.ping(w.ID).ID)
	}
	return path, body
}

// The secret is shown by the creation and by each rotation, never by a
// read; a rotation keeps the secret it replaces signing for the grace.
func TestWebhookSecretIsShownOnlyByCreateAndRotate(t *testing.T) {
	t.Parallel()
	const grace = 2 * time.Hour
	s := newSystemWith(t, func(c *customers.Config) { c.Webhooks.SecretGrace = grace })
	r := request(t, s, http.MethodPost, "/v1/webhooks", map[string]any{
		"url": " https://hooks.example.com/in ", "event_types": []string{"customer.created", " order.* ", "customer.created"},
		"description": " the CRM ",
	}, nil)
	r.expectStatus(t, http.StatusCreated)
	var created webhookJSON
	r.decode(t, &created)
	if loc := r.header.Get("Location"); loc != "/v1/webhooks/"+created.ID {
		t.Errorf("Location %q", loc)
	}
	if !secretRE.MatchString(created.Secret) {
		t.Errorf("secret %q is not whsec_ and 32 bytes in base64", created.Secret)
	}
	if created.URL != "https://hooks.example.com/in" || !slices.Equal(created.EventTypes, []string{"customer.created", "order.*"}) ||
		created.ContentMode != "structured" || created.Description != "the CRM" || !created.IsActive ||
		created.DisabledReason != nil || created.PreviousSecretExpiresAt != nil {
		t.Errorf("created %+v", created)
	}
	got := s.getWebhook(created.ID)
	want := created
	want.Secret = ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GET after the creation reads\n%+v\nthe creation answered\n%+v", got, want)
	}
	if secret, previous, _ := s.webhookSecrets(created.ID); secret != created.Secret || previous != nil {
		t.Errorf("the row holds secret %q previous %v, the creation answered %q", secret, deref(previous), created.Secret)
	}

	rotate := func() webhookJSON {
		t.Helper()
		r := request(t, s, http.MethodPost, "/v1/webhooks/"+created.ID+"/rotate-secret", nil, nil)
		r.expectStatus(t, http.StatusOK)
		var w webhookJSON
		r.decode(t, &w)
		return w
	}
	before := time.Now()
	first := rotate()
	if !secretRE.MatchString(first.Secret) || first.Secret == created.Secret {
		t.Fatalf("rotation answered secret %q after %q", first.Secret, created.Secret)
	}
	secret, previous, expires := s.webhookSecrets(created.ID)
	if secret != first.Secret || previous == nil || *previous != created.Secret {
		t.Errorf("after a rotation the row holds secret %q previous %v, want %q and %q", secret, deref(previous), first.Secret, created.Secret)
	}
	if expires == nil || expires.Before(before.Add(grace-time.Second)) || expires.After(time.Now().Add(grace+time.Second)) {
		t.Errorf("previous secret expires at %v, want about now + %s", deref(expires), grace)
	}
	if first.PreviousSecretExpiresAt == nil || !first.PreviousSecretExpiresAt.Equal(*expires) {
		t.Errorf("rotation answered previous_secret_expires_at %v, the row holds %v", deref(first.PreviousSecretExpiresAt), deref(expires))
	}
	first.Secret = ""
	if got := s.getWebhook(created.ID); !reflect.DeepEqual(got, first) {
		t.Errorf("GET after the rotation reads\n%+v\nthe rotation answered\n%+v", got, first)
	}

	// A rotation within the grace: the secret it replaces is the one that
	// signs now, and the oldest stops.
	second := rotate()
	if _, previous, _ := s.webhookSecrets(created.ID); previous == nil || *previous != secret {
		t.Errorf("after a second rotation the previous secret is %v, want the first rotation's %q", deref(previous), secret)
	}
	if second.Secret == secret || second.Secret == created.Secret {
		t.Errorf("the second rotation repeated a secret")
	}
	request(t, s, http.MethodPost, "/v1/webhooks/01970000-0000-7000-8000-000000000000/rotate-secret", nil, nil).
		expectProblem(t, http.StatusNotFound, "id", "not_found")
}

// Endpoints list newest first by pages; a change reads back; switching one
// on again clears why it was off; a deletion takes its deliveries along.
func TestWebhooksListChangeAndDelete(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	a, b, c := s.createWebhook(nil), s.createWebhook(nil), s.createWebhook(nil)
	var list struct {
		Webhooks   []webhookJSON `json:"webhooks"`
		NextCursor *string       `json:"next_cursor"`
	}
	request(t, s, http.MethodGet, "/v1/webhooks?limit=2", nil, nil).decode(t, &list)
	if len(list.Webhooks) != 2 || list.Webhooks[0].ID != c.ID || list.Webhooks[1].ID != b.ID || list.NextCursor == nil {
		t.Fatalf("first page: %+v", list)
	}
	if list.Webhooks[0].Secret != "" {
		t.Errorf("the list shows a secret")
	}
	request(t, s, http.MethodGet, "/v1/webhooks?limit=2&cursor="+*list.NextCursor, nil, nil).decode(t, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != a.ID || list.NextCursor != nil {
		t.Fatalf("second page: %+v", list)
	}
	request(t, s, http.MethodGet, "/v1/webhooks?cursor=nope", nil, nil).expectProblem(t, 400, "cursor", "invalid")
	request(t, s, http.MethodGet, "/v1/webhooks?q=x", nil, nil).expectProblem(t, 400, "q", "unknown_field")

	var patched webhookJSON
	r := request(t, s, http.MethodPatch, "/v1/webhooks/"+a.ID, map[string]any{
		"url": "https://other.example.com/hook", "event_types": []string{"*"}, "content_mode": "binary",
		"description": "ERP", "is_active": false,
	}, nil)
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &patched)
	if patched.URL != "https://other.example.com/hook" || !slices.Equal(patched.EventTypes, []string{"*"}) || patched.ContentMode != "binary" ||
		patched.Description != "ERP" || patched.IsActive || !patched.UpdatedAt.After(a.UpdatedAt) || patched.DisabledReason != nil {
		t.Errorf("patched %+v", patched)
	}
	if got := s.getWebhook(a.ID); !reflect.DeepEqual(got, patched) {
		t.Errorf("GET after the change reads\n%+v\nthe change answered\n%+v", got, patched)
	}
	var url, mode string
	var types []string
	var active bool
	if err := s.pool.QueryRow(context.Background(), `SELECT url, event_types, content_mode, is_active FROM webhooks WHERE id = $1`, a.ID).
		Scan(&url, &types, &mode, &active); err != nil {
		t.Fatal(err)
	}
	if url != patched.URL || !slices.Equal(types, patched.EventTypes) || mode != "binary" || active {
		t.Errorf("the row holds %s %v %s %v after the change", url, types, mode, active)
	}
	// Nothing to change: the endpoint stays as it is.
	var same webhookJSON
	request(t, s, http.MethodPatch, "/v1/webhooks/"+a.ID, map[string]any{"description": "ERP"}, nil).decode(t, &same)
	if !same.UpdatedAt.Equal(patched.UpdatedAt) {
		t.Errorf("a change to nothing moved updated_at from %v to %v", patched.UpdatedAt, same.UpdatedAt)
	}

	// The webhooks service switched b off; staff switch it on again.
	if _, err := s.pool.Exec(context.Background(), `UPDATE webhooks SET is_active = false, disabled_reason = 'failing',
		disabled_at = now(), failing_since = now() - interval '3 days' WHERE id = $1`, b.ID); err != nil {
		t.Fatal(err)
	}
	if off := s.getWebhook(b.ID); off.IsActive || off.DisabledReason == nil || *off.DisabledReason != "failing" || off.DisabledAt == nil || off.FailingSince == nil {
		t.Fatalf("switched off by the webhooks service, GET reads %+v", off)
	}
	var on webhookJSON
	request(t, s, http.MethodPatch, "/v1/webhooks/"+b.ID, map[string]any{"is_active": true}, nil).decode(t, &on)
	if !on.IsActive || on.DisabledReason != nil || on.DisabledAt != nil || on.FailingSince != nil {
		t.Errorf("switched on again: %+v", on)
	}
	if n := s.count(`SELECT count(*) FROM webhooks WHERE id = $1 AND is_active AND disabled_reason IS NULL
		AND disabled_at IS NULL AND failing_since IS NULL`, b.ID); n != 1 {
		t.Errorf("the row still says why it was off")
	}

	d := s.ping(c.ID)
	if r := s.do(http.MethodDelete, "/v1/webhooks/"+c.ID, nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: status %d", r.StatusCode)
	}
	request(t, s, http.MethodGet, "/v1/webhooks/"+c.ID, nil, nil).expectProblem(t, 404, "id", "not_found")
	request(t, s, http.MethodDelete, "/v1/webhooks/"+c.ID, nil, nil).expectProblem(t, 404, "id", "not_found")
	if n := s.count(`SELECT count(*) FROM webhook_deliveries WHERE id = $1 OR webhook_id = $2`, d.ID, c.ID); n != 0 {
		t.Errorf("%d deliveries of the deleted webhook are left", n)
	}
	request(t, s, http.MethodGet, "/v1/webhooks/nope", nil, nil).expectProblem(t, 404, "id", "not_found")
}

// A ping queues a webhook.ping for the endpoint alone: a pending delivery,
// and its event as the CloudEvent in JSON, of the contract's shape.
func TestWebhookPingQueuesAWebhookPingDelivery(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	w := s.createWebhook(nil)
	before := time.Now()
	d := s.ping(w.ID)
	if d.Status != "pending" || d.Attempts != 0 || d.EventType != events.WebhookPing || d.NextAttemptAt == nil ||
		d.NextAttemptAt.Before(before.Add(-time.Second)) || d.LastAttemptAt != nil || d.DeliveredAt != nil {
		t.Errorf("ping answered %+v", d)
	}
	listed, next := s.deliveries(w.ID, "")
	if len(listed) != 1 || !reflect.DeepEqual(listed[0], d) || next != nil {
		t.Errorf("the deliveries list\n%+v\nthe ping answered\n%+v", listed, d)
	}

	var status, key, typ string
	var seq, eventSeq int64
	var payload []byte
	if err := s.pool.QueryRow(context.Background(), `
		SELECT d.status, d.partition_key, d.seq, e.type, e.seq, e.payload
		FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
		WHERE d.id = $1 AND d.webhook_id = $2 AND e.id = $3 AND e.partition_key = d.partition_key`, d.ID, w.ID, d.EventID,
	).Scan(&status, &key, &seq, &typ, &eventSeq, &payload); err != nil {
		t.Fatalf("read the ping's rows: %v", err)
	}
	if status != "pending" || key != "ping:"+w.ID || seq != 0 || eventSeq != 0 || typ != events.WebhookPing {
		t.Errorf("rows: status %s partition key %s seq %d/%d type %s", status, key, seq, eventSeq, typ)
	}
	ev, err := events.Unmarshal(payload)
	if err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	var tokenID string
	if err := s.pool.QueryRow(context.Background(), `SELECT id::text FROM api_tokens WHERE name = 'test'`).Scan(&tokenID); err != nil {
		t.Fatal(err)
	}
	if err := ev.Validate(); err != nil || ev.ID() != d.EventID || ev.Type() != events.WebhookPing || ev.Source() != events.SourceCustomers ||
		ev.Subject() != w.ID || ext(ev, events.ExtPartitionKey) != "ping:"+w.ID || ext(ev, events.ExtSequence) != "0" ||
		ext(ev, events.ExtAuthID) != tokenID || !events.ValidTraceParent(ext(ev, events.ExtTraceParent)) {
		t.Errorf("the payload is not the ping's CloudEvent (%v): %s", err, payload)
	}
	if err := events.ValidateData(events.WebhookPing, ev.Data()); err != nil {
		t.Error(err)
	}
	var data events.WebhookPingData
	if err := json.Unmarshal(ev.Data(), &data); err != nil || data.WebhookID.String() != w.ID || data.Message == "" {
		t.Errorf("ping data %s (%v)", ev.Data(), err)
	}

	request(t, s, http.MethodPatch, "/v1/webhooks/"+w.ID, map[string]any{"is_active": false}, nil).expectStatus(t, http.StatusOK)
	request(t, s, http.MethodPost, "/v1/webhooks/"+w.ID+"/ping", nil, nil).expectProblem(t, http.StatusConflict, "id", "webhook_inactive")
	request(t, s, http.MethodPost, "/v1/webhooks/01970000-0000-7000-8000-000000000000/ping", nil, nil).expectProblem(t, 404, "id", "not_found")
	if n := s.count(`SELECT count(*) FROM webhook_deliveries`); n != 1 {
		t.Errorf("%d deliveries after a refused ping, want the first one alone", n)
	}
}

// Deliveries list newest first, by status; a retry makes any of them due
// again at once, keeping its attempts, unless its event is gone.
func TestWebhookDeliveriesListAndRetry(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	w, other := s.createWebhook(nil), s.createWebhook(nil)
	first, second, third := s.ping(w.ID), s.ping(w.ID), s.ping(w.ID)
	page, next := s.deliveries(w.ID, "limit=2")
	if len(page) != 2 || page[0].ID != third.ID || page[1].ID != second.ID || next == nil {
		t.Fatalf("first page: %+v", page)
	}
	if page, next = s.deliveries(w.ID, "limit=2&cursor="+*next); len(page) != 1 || page[0].ID != first.ID || next != nil {
		t.Fatalf("second page: %+v", page)
	}

	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'delivered', attempts = 2, last_attempt_at = now(),
		last_response_code = 204, last_latency_ms = 12.5, delivered_at = now(), leased_until = now() + interval '1 minute' WHERE id = $1`, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'failed', attempts = 9, last_attempt_at = now(),
		last_error = 'timeout', next_attempt_at = now() + interval '1 day' WHERE id = $1`, second.ID); err != nil {
		t.Fatal(err)
	}
	delivered, _ := s.deliveries(w.ID, "status=delivered")
	if len(delivered) != 1 || delivered[0].ID != first.ID || delivered[0].NextAttemptAt != nil || delivered[0].LastResponseCode == nil ||
		*delivered[0].LastResponseCode != 204 || delivered[0].LastLatencyMS == nil || *delivered[0].LastLatencyMS != 12.5 || delivered[0].DeliveredAt == nil {
		t.Errorf("delivered ones: %+v", delivered)
	}
	if failed, _ := s.deliveries(w.ID, "status=failed"); len(failed) != 1 || failed[0].ID != second.ID || failed[0].LastError == nil {
		t.Errorf("failed ones: %+v", failed)
	}
	request(t, s, http.MethodGet, "/v1/webhooks/"+w.ID+"/deliveries?status=lost", nil, nil).expectProblem(t, 400, "status", "invalid")
	request(t, s, http.MethodGet, "/v1/webhooks/01970000-0000-7000-8000-000000000000/deliveries", nil, nil).expectProblem(t, 404, "id", "not_found")

	retry := func(webhookID, deliveryID string) reply {
		return request(t, s, http.MethodPost, "/v1/webhooks/"+webhookID+"/deliveries/"+deliveryID+"/retry", nil, nil)
	}
	for _, tt := range []struct {
		name     string
		id       string
		attempts int
	}{{"delivered", first.ID, 2}, {"failed", second.ID, 9}} {
		before := time.Now()
		r := retry(w.ID, tt.id)
		r.expectStatus(t, http.StatusAccepted)
		var d deliveryJSON
		r.decode(t, &d)
		if d.Status != "pending" || d.Attempts != tt.attempts || d.NextAttemptAt == nil || d.NextAttemptAt.Before(before.Add(-time.Second)) ||
			d.NextAttemptAt.After(time.Now().Add(time.Second)) {
			t.Errorf("retry of the %s delivery answered %+v", tt.name, d)
		}
		if n := s.count(`SELECT count(*) FROM webhook_deliveries WHERE id = $1 AND status = 'pending' AND attempts = $2
			AND leased_until IS NULL AND next_attempt_at = $3`, tt.id, tt.attempts, *d.NextAttemptAt); n != 1 {
			t.Errorf("the %s delivery's row is not pending and due, unleased, with its attempts", tt.name)
		}
		if listed, _ := s.deliveries(w.ID, "status=pending"); !slices.ContainsFunc(listed, func(l deliveryJSON) bool { return reflect.DeepEqual(l, d) }) {
			t.Errorf("the pending deliveries %+v lack the retried %+v", listed, d)
		}
	}

	retry(other.ID, third.ID).expectProblem(t, http.StatusNotFound, "did", "not_found")
	retry(w.ID, "nope").expectProblem(t, http.StatusNotFound, "did", "not_found")
	if _, err := s.pool.Exec(ctx, `UPDATE webhook_events SET payload = NULL WHERE id = $1`, third.EventID); err != nil {
		t.Fatal(err)
	}
	retry(w.ID, third.ID).expectProblem(t, http.StatusConflict, "did", "payload_gone")
	request(t, s, http.MethodPatch, "/v1/webhooks/"+w.ID, map[string]any{"is_active": false}, nil).expectStatus(t, http.StatusOK)
	retry(w.ID, first.ID).expectProblem(t, http.StatusConflict, "id", "webhook_inactive")
}

func TestWebhookInputIsChecked(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	w := s.createWebhook(nil)
	ok := func(fields map[string]any) map[string]any {
		body := map[string]any{"url": "https://hooks.example.com/in", "event_types": []string{"customer.*"}}
		for k, v := range fields {
			body[k] = v
		}
		return body
	}
	many := make([]string, 51)
	for i := range many {
		many[i] = "customer.created"
	}
	post := func(name string, body any, field, code string) badInput {
		return badInput{name: name, method: http.MethodPost, path: "/v1/webhooks", body: body, wantStatus: 400, wantField: field, wantCode: code}
	}
	runBadInputs(t, s, []badInput{
		post("no url", map[string]any{"event_types": []string{"*"}}, "url", "required"),
		post("blank url", ok(map[string]any{"url": "  "}), "url", "required"),
		post("http is refused by default", ok(map[string]any{"url": "http://hooks.example.com/in"}), "url", "invalid"),
		post("another scheme", ok(map[string]any{"url": "ftp://hooks.example.com/in"}), "url", "invalid"),
		post("a relative url", ok(map[string]any{"url": "/in"}), "url", "invalid"),
		post("no host", ok(map[string]any{"url": "https:///in"}), "url", "invalid"),
		post("a user and password", ok(map[string]any{"url": "https://ann:secret@hooks.example.com/in"}), "url", "invalid"),
		post("a url too long", ok(map[string]any{"url": "https://hooks.example.com/" + strings.Repeat("a", 2048)}), "url", "max_length"),
		post("no event types", map[string]any{"url": "https://hooks.example.com/in"}, "event_types", "required"),
		post("empty event types", ok(map[string]any{"event_types": []string{}}), "event_types", "required"),
		post("too many event types", ok(map[string]any{"event_types": many}), "event_types", "max_items"),
		post("a notification", ok(map[string]any{"event_types": []string{"customer.*", events.CustomerPasswordResetRequested}}), "event_types[1]", "invalid"),
		post("webhook.ping", ok(map[string]any{"event_types": []string{events.WebhookPing}}), "event_types[0]", "invalid"),
		post("an unknown type", ok(map[string]any{"event_types": []string{"customer.exploded"}}), "event_types[0]", "invalid"),
		post("a pattern of no type", ok(map[string]any{"event_types": []string{"shipment.*"}}), "event_types[0]", "invalid"),
		post("a pattern in the middle", ok(map[string]any{"event_types": []string{"customer.*.created"}}), "event_types[0]", "invalid"),
		post("a bare prefix", ok(map[string]any{"event_types": []string{"customer"}}), "event_types[0]", "invalid"),
		post("another content mode", ok(map[string]any{"content_mode": "xml"}), "content_mode", "invalid"),
		post("a description too long", ok(map[string]any{"description": strings.Repeat("é", 501)}), "description", "max_length"),
		post("an unknown field", ok(map[string]any{"secret": "whsec_mine"}), "secret", "unknown_field"),
		post("event types not a list", ok(map[string]any{"event_types": "*"}), "event_types", "invalid_type"),
		{name: "a change to http", method: http.MethodPatch, path: "/v1/webhooks/" + w.ID, body: map[string]any{"url": "http://x.example.com"},
			wantStatus: 400, wantField: "url", wantCode: "invalid"},
		{name: "a change to no event types", method: http.MethodPatch, path: "/v1/webhooks/" + w.ID, body: map[string]any{"event_types": []string{}},
			wantStatus: 400, wantField: "event_types", wantCode: "required"},
	})
	// A notification is refused for what it is, not as an unknown type.
	p := request(t, s, http.MethodPost, "/v1/webhooks", ok(map[string]any{"event_types": []string{events.CustomerVerificationRequested}}), nil).
		expectProblem(t, 400, "event_types[0]", "invalid")
	if msg := p.Errors[0].Message; !strings.Contains(msg, "notification") || !strings.Contains(msg, "one-time token") {
		t.Errorf("a notification is refused with %q", msg)
	}
	if n := s.count(`SELECT count(*) FROM webhooks`); n != 1 {
		t.Errorf("%d webhooks after refused creations, want 1", n)
	}
	if got := s.getWebhook(w.ID); got.URL != w.URL || !slices.Equal(got.EventTypes, w.EventTypes) {
		t.Errorf("a refused change changed the webhook: %+v", got)
	}

	// Every public type, pattern and * is taken (webhook.disabled too); the
	// 50 entries a list may hold count before repeats go.
	types := append([]string{"*", "customer.*", "customer_group.*", "order.*", "command.*", "webhook.*"}, events.PublicTypes...)
	created := s.createWebhook(ok(map[string]any{"event_types": append(types, events.WebhookDisabled, "*")}))
	if want := types; !slices.Equal(created.EventTypes, want) {
		t.Errorf("event types %v, want %v", created.EventTypes, want)
	}
}

// Plain http endpoints are for development: WEBHOOKS_ALLOW_HTTP lets them in.
func TestWebhooksAllowHTTPWhenConfigured(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, func(c *customers.Config) { c.Webhooks.AllowHTTP = true })
	w := s.createWebhook(map[string]any{"url": "http://127.0.0.1:9999/hook", "event_types": []string{"*"}})
	if got := s.getWebhook(w.ID); got.URL != "http://127.0.0.1:9999/hook" {
		t.Errorf("url %q", got.URL)
	}
	request(t, s, http.MethodPost, "/v1/webhooks", map[string]any{"url": "ftp://127.0.0.1/hook", "event_types": []string{"*"}}, nil).
		expectProblem(t, 400, "url", "invalid")
}

// There may be 500 endpoints; a 501st is refused until one goes.
func TestWebhooksAreLimited(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO webhooks (id, url, event_types, secret, created_at, updated_at)
		SELECT gen_random_uuid(), 'https://hooks.example.com/' || n, '{*}', 'whsec_x', now(), now() FROM generate_series(1, 499) n`); err != nil {
		t.Fatal(err)
	}
	last := s.createWebhook(nil)
	request(t, s, http.MethodPost, "/v1/webhooks", map[string]any{"url": "https://hooks.example.com/in", "event_types": []string{"*"}}, nil).
		expectProblem(t, http.StatusConflict, "", "too_many_webhooks")
	if n := s.count(`SELECT count(*) FROM webhooks`); n != 500 {
		t.Errorf("%d webhooks, want 500", n)
	}
	request(t, s, http.MethodDelete, "/v1/webhooks/"+last.ID, nil, nil).expectStatus(t, http.StatusNoContent)
	s.createWebhook(nil)
}

// Every webhook route needs MANAGE_APPS: a token holding every other
// permission is refused, and changes nothing.
func TestWebhookRoutesNeedManageApps(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	others := slices.DeleteFunc(slices.Clone(customers.Permissions), func(p string) bool { return p == "MANAGE_APPS" })
	token, err := customers.CreateToken(context.Background(), s.pool, "no apps", false, others)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, rt := range s.routes {
		method, pattern, _ := strings.Cut(rt.Pattern, " ")
		if !strings.HasPrefix(pattern, "/v1/webhooks") {
			continue
		}
		n++
		if rt.Permission != "MANAGE_APPS" {
			t.Errorf("%s needs %s, want MANAGE_APPS", rt.Pattern, rt.Permission)
		}
		st := s.forTest(t)
		path, body := webhookRouteCall(st, method, pattern)
		webhooks, deliveries := st.count(`SELECT count(*) FROM webhooks`), st.count(`SELECT count(*) FROM webhook_deliveries`)
		request(t, s, method, path, body, map[string]string{"Authorization": "Bearer " + token}).expectProblem(t, http.StatusForbidden, "Authorization", "forbidden")
		if st.count(`SELECT count(*) FROM webhooks`) != webhooks || st.count(`SELECT count(*) FROM webhook_deliveries`) != deliveries {
			t.Errorf("%s without MANAGE_APPS changed the webhooks", rt.Pattern)
		}
	}
	if n != 9 {
		t.Errorf("%d webhook routes, want 9", n)
	}
}
