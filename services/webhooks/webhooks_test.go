package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/db/outbox"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/relay"
)

// world is one test's database, NATS server and relay; the webhooks service
// runs on it with start.
type world struct {
	t    *testing.T
	pool *pgxpool.Pool
	js   jetstream.JetStream
}

func newWorld(t *testing.T) *world {
	t.Helper()
	t.Parallel()
	pool, _ := dbtest.New(t)
	js, err := jetstream.New(natstest.New(t).Connect())
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, pool: pool, js: js}
	w.run("relay", relay.New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(),
		relay.Config{PollInterval: 20 * time.Millisecond, PublishTimeout: time.Second}).Run)
	// Tests make consumers on the events stream, which the relay makes.
	w.eventually("the relay made the events stream", func() bool {
		_, err := js.Stream(context.Background(), events.EventsStream)
		return err == nil
	})
	return w
}

// run runs f until the test ends; stop ends it sooner.
func (w *world) run(name string, f func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Errorf("%s: %v", name, err)
			}
		})
	}
	w.t.Cleanup(stop)
	return stop
}

// fast is a configuration for tests: retries within moments, and loopback
// receivers allowed.
func fast(c *Config) {
	c.RetryDelays = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond, 200 * time.Millisecond}
	c.PollInterval = 20 * time.Millisecond
	c.Timeout = 2 * time.Second
	c.AllowPrivateAddresses = true
}

// start runs a webhooks service tuned by tune, and waits for its consumer,
// which starts at new events.
func (w *world) start(tune ...func(*Config)) (stop func()) {
	w.t.Helper()
	var cfg Config
	for _, f := range tune {
		f(&cfg)
	}
	s := New(w.pool, w.js, zaptest.NewLogger(w.t), prometheus.NewRegistry(), cfg)
	stop = w.run("webhooks", s.Run)
	w.eventually("the fan-out's consumer exists", func() bool {
		_, err := w.js.Consumer(context.Background(), events.EventsStream, ConsumerName)
		return err == nil
	})
	return stop
}

func (w *world) eventually(what string, ok func() bool) {
	w.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not within 15 s", what)
		}
	}
}

// endpoint registers a receiver as the API would store it, with a fresh
// secret; it returns the endpoint's id and secret.
func (w *world) endpoint(url, contentMode string, types ...string) (uuid.UUID, string) {
	w.t.Helper()
	id := uuid.Must(uuid.NewV7())
	secret := newSecret()
	_, err := w.pool.Exec(context.Background(), `
		INSERT INTO webhooks (id, url, event_types, content_mode, secret, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, now(), now())`, id, url, types, contentMode, secret)
	if err != nil {
		w.t.Fatal(err)
	}
	return id, secret
}

func newSecret() string { return "whsec_" + base64.StdEncoding.EncodeToString([]byte(rand.Text())) }

// emit commits events through the outbox, as the command service does: for
// each customer, n versions of it (customer.updated, sequence 1..n).
func (w *world) emit(customers []uuid.UUID, n int) []cloudevents.Event {
	w.t.Helper()
	var evs []cloudevents.Event
	for v := 1; v <= n; v++ {
		for _, c := range customers {
			evs = append(evs, w.updated(c, v))
		}
	}
	w.write(evs)
	return evs
}

// updated is customer c's customer.updated of version v.
func (w *world) updated(c uuid.UUID, v int) cloudevents.Event {
	w.t.Helper()
	e, err := events.New(events.Meta{
		Type: events.CustomerUpdated, Source: events.SourceCustomers, Subject: c.String(), PartitionKey: c.String(),
		Sequence: int64(v), Time: time.Now(), TraceParent: events.NewTraceParent(),
		Actor: events.Actor{Type: events.AuthServiceAccount, ID: "test"},
	}, map[string]any{"id": c, "version": v, "changed": []string{"note"}})
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

// write writes evs to the outbox, for the relay to publish.
func (w *world) write(evs []cloudevents.Event) {
	w.t.Helper()
	err := pgx.BeginFunc(context.Background(), w.pool, func(tx pgx.Tx) error {
		return outbox.Write(context.Background(), gen.New(tx), evs)
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// call is a request a receiver got.
type call struct {
	header http.Header
	body   []byte
	status int // what it answered
	at     time.Time
}

// receiver is an HTTP endpoint of the test's: answer decides each call's
// status (200 when nil).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []call
	answer func(n int, c call) int
}

func newReceiver(t *testing.T, answer func(n int, c call) int) *receiver {
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		c := call{header: req.Header.Clone(), body: body, at: time.Now(), status: http.StatusOK}
		r.mu.Lock()
		if r.answer != nil {
			c.status = r.answer(len(r.calls), c)
		}
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		rw.WriteHeader(c.status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// accepted is the calls answered 2xx, in the order they came.
func (r *receiver) accepted() []call {
	return slices.DeleteFunc(r.got(), func(c call) bool { return c.status < 200 || c.status > 299 })
}

// verify checks a call's signatures as the Standard Webhooks spec says,
// written here from the spec rather than with the library the service
// signs with: HMAC-SHA256 with the secret's base64 key over
// "id.timestamp.body", base64, as "v1,<signature>" in a space-separated
// list. It returns how many of the secrets signed.
func verify(t *testing.T, c call, secrets ...string) int {
	t.Helper()
	id, ts := c.header.Get("webhook-id"), c.header.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		t.Errorf("webhook-id %q, webhook-timestamp %q", id, ts)
		return 0
	}
	signed := 0
	for _, secret := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			t.Fatal(err)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "." + string(c.body)))
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		if slices.Contains(strings.Fields(c.header.Get("webhook-signature")), want) {
			signed++
		}
	}
	return signed
}

// eventOf reads a structured-mode call's CloudEvent.
func eventOf(t *testing.T, c call) cloudevents.Event {
	t.Helper()
	if ct := c.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
		t.Errorf("Content-Type %q", ct)
	}
	var e cloudevents.Event
	if err := json.Unmarshal(c.body, &e); err != nil {
		t.Fatalf("body %s: %v", c.body, err)
	}
	return e
}

// Every event reaches the endpoint signed, with the event's id as
// webhook-id on every attempt, at least once; one customer's events are
// accepted in their order even when attempts fail and are retried, while
// another customer's go on.
func TestEventsAreDeliveredSignedAndInOrderPerCustomer(t *testing.T) {
	w := newWorld(t)
	// Every third call fails, so retries interleave with first attempts.
	rcv := newReceiver(t, func(n int, _ call) int {
		if n%3 == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	_, secret := w.endpoint(rcv.URL, "structured", "customer.*")
	w.endpoint(rcv.URL+"/groups-only", "structured", "customer_group.created") // matches nothing here
	w.start(fast)
	a, b := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	sent := w.emit([]uuid.UUID{a, b}, 8)

	w.eventually("every event accepted", func() bool {
		ids := map[string]bool{}
		for _, c := range rcv.accepted() {
			ids[c.header.Get("webhook-id")] = true
		}
		return len(ids) == len(sent)
	})
	byID := map[string]cloudevents.Event{}
	for _, e := range sent {
		byID[e.ID()] = e
	}
	last := map[string]int{} // per customer, the sequence accepted last
	for _, c := range rcv.got() {
		if verify(t, c, secret) != 1 {
			t.Errorf("call %s: signature %q does not verify", c.header.Get("webhook-id"), c.header.Get("webhook-signature"))
		}
		e := eventOf(t, c)
		orig, ok := byID[c.header.Get("webhook-id")]
		if !ok || e.ID() != orig.ID() || e.Type() != events.CustomerUpdated || e.Subject() != orig.Subject() {
			t.Fatalf("call with webhook-id %s carries event %s %s", c.header.Get("webhook-id"), e.ID(), e.Type())
		}
		// Tracing off, the receiver still continues the event's trace.
		if got, want := c.header.Get("traceparent"), orig.Extensions()[events.ExtTraceParent]; got != want {
			t.Errorf("call %s: traceparent header %q, want the event's %q", e.ID(), got, want)
		}
		if c.status < 200 || c.status > 299 {
			continue
		}
		seq, _ := strconv.Atoi(fmt.Sprint(e.Extensions()[events.ExtSequence]))
		if seq != last[e.Subject()]+1 {
			t.Errorf("customer %s: sequence %d accepted after %d", e.Subject(), seq, last[e.Subject()])
		}
		last[e.Subject()] = seq
	}
	if last[a.String()] != 8 || last[b.String()] != 8 {
		t.Errorf("last sequences accepted %v, want 8 for each", last)
	}
	// The log, read apart from the receiver, says the same once the last
	// outcomes are recorded.
	var delivered, attempts int
	w.eventually("the log records every delivery", func() bool {
		err := w.pool.QueryRow(context.Background(), `
			SELECT count(*) FILTER (WHERE status = 'delivered'), coalesce(sum(attempts), 0) FROM webhook_deliveries`).Scan(&delivered, &attempts)
		return err == nil && delivered == len(sent)
	})
	if attempts != len(rcv.got()) {
		t.Errorf("log: %d delivered in %d attempts, want %d in the %d calls", delivered, attempts, len(sent), len(rcv.got()))
	}
}

// An endpoint that fails every attempt, and one that hangs, hold up
// neither each other nor a healthy endpoint.
func TestFailingAndSlowEndpointsHoldUpNoOther(t *testing.T) {
	w := newWorld(t)
	failing := newReceiver(t, func(int, call) int { return http.StatusInternalServerError })
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	healthy := newReceiver(t, nil)
	w.endpoint(failing.URL, "structured", "*")
	w.endpoint(slow.URL, "structured", "*")
	w.endpoint(healthy.URL, "structured", "customer.updated")
	w.start(fast, func(c *Config) { c.Timeout = 10 * time.Second })
	customers := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	start := time.Now()
	sent := w.emit(customers, 5)
	w.eventually("the healthy endpoint has every event", func() bool { return len(healthy.accepted()) == len(sent) })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the healthy endpoint waited %s, behind the slow one's 10 s timeout", took)
	}
	if len(failing.got()) == 0 {
		t.Error("the failing endpoint was never tried")
	}
}

// A 410 disables the endpoint at once, and an endpoint whose every attempt
// fails for WEBHOOKS_DISABLE_AFTER is disabled too; each emits one
// webhook.disabled on the bus, about the endpoint, without its secret.
func TestGoneAndFailingEndpointsAreDisabledWithAnEvent(t *testing.T) {
	w := newWorld(t)
	gone := newReceiver(t, func(int, call) int { return http.StatusGone })
	failing := newReceiver(t, func(int, call) int { return http.StatusBadGateway })
	goneID, goneSecret := w.endpoint(gone.URL, "structured", "customer.*")
	failingID, _ := w.endpoint(failing.URL, "structured", "customer.*")
	disabled, err := w.js.CreateOrUpdateConsumer(context.Background(), events.EventsStream, jetstream.ConsumerConfig{
		FilterSubject: events.Subject(events.WebhookDisabled), AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	w.start(fast, func(c *Config) {
		c.DisableAfter = 300 * time.Millisecond
		c.RetryDelays = slices.Repeat([]time.Duration{100 * time.Millisecond}, 20)
	})
	w.emit([]uuid.UUID{uuid.Must(uuid.NewV7())}, 2)

	got := map[string]events.WebhookDisabledData{}
	var raw []string
	for deadline := time.Now().Add(15 * time.Second); len(got) < 2 && time.Now().Before(deadline); {
		batch, err := disabled.Fetch(2, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			e, err := events.FromMsg(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			if err != nil {
				t.Fatal(err)
			}
			var d events.WebhookDisabledData
			if err := e.DataAs(&d); err != nil || e.Subject() != d.Webhook.ID.String() || fmt.Sprint(e.Extensions()[events.ExtSequence]) != "1" {
				t.Errorf("webhook.disabled %s: subject %s, sequence %v, data %s (%v)", e.ID(), e.Subject(), e.Extensions()[events.ExtSequence], e.Data(), err)
			}
			got[e.Subject()] = d
			raw = append(raw, string(e.Data()))
		}
	}
	if d := got[goneID.String()]; d.Reason != events.WebhookDisabledGone || d.Webhook.IsActive || !strings.Contains(d.LastError, "410") {
		t.Errorf("the 410 endpoint's event: %+v", d)
	}
	if d := got[failingID.String()]; d.Reason != events.WebhookDisabledFailing || !strings.Contains(d.LastError, "502") {
		t.Errorf("the failing endpoint's event: %+v", d)
	}
	for _, r := range raw {
		if strings.Contains(r, strings.TrimPrefix(goneSecret, "whsec_")) || strings.Contains(r, "secret\":") {
			t.Errorf("webhook.disabled carries a secret: %s", r)
		}
	}
	// The database agrees; the 410 endpoint was tried once, and nothing more
	// goes to either.
	for id, reason := range map[uuid.UUID]string{goneID: "gone", failingID: "failing"} {
		var active bool
		var why *string
		if err := w.pool.QueryRow(context.Background(), `SELECT is_active, disabled_reason FROM webhooks WHERE id = $1`, id).Scan(&active, &why); err != nil || active || why == nil || *why != reason {
			t.Errorf("endpoint %s: active %v, reason %v (%v), want disabled for %s", id, active, why, err, reason)
		}
	}
	if n := len(gone.got()); n != 1 {
		t.Errorf("the 410 endpoint got %d calls, want 1", n)
	}
	n := len(failing.got())
	time.Sleep(300 * time.Millisecond)
	if len(failing.got()) != n {
		t.Error("a disabled endpoint was tried again")
	}
}

// By default deliveries reach no loopback, private, link-local or
// metadata address, whatever the URL's name resolves to.
func TestAddressGuardRefusesLoopbackPrivateAndMetadata(t *testing.T) {
	w := newWorld(t)
	rcv := newReceiver(t, nil)
	local, _ := w.endpoint(rcv.URL, "structured", "*")                                                // 127.0.0.1
	byName, _ := w.endpoint(strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1), "structured", "*") // resolves to loopback
	metadata, _ := w.endpoint("http://169.254.169.254/latest/meta-data/", "structured", "*")
	w.start(func(c *Config) { fast(c); c.AllowPrivateAddresses = false })
	w.emit([]uuid.UUID{uuid.Must(uuid.NewV7())}, 1)
	for _, id := range []uuid.UUID{local, byName, metadata} {
		w.eventually("an attempt to "+id.String(), func() bool {
			var lastError *string
			err := w.pool.QueryRow(context.Background(), `SELECT last_error FROM webhook_deliveries WHERE webhook_id = $1`, id).Scan(&lastError)
			return err == nil && lastError != nil && strings.Contains(*lastError, "WEBHOOKS_ALLOW_PRIVATE_ADDRESSES")
		})
	}
	if n := len(rcv.got()); n != 0 {
		t.Errorf("the guarded receiver got %d calls", n)
	}

}

// A redirect is a failed attempt, and its target is not asked.
func TestRedirectsAreNotFollowed(t *testing.T) {
	w2 := newWorld(t)
	target := newReceiver(t, nil)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	id, _ := w2.endpoint(redirect.URL, "structured", "*")
	w2.start(fast)
	w2.emit([]uuid.UUID{uuid.Must(uuid.NewV7())}, 1)
	w2.eventually("the redirect recorded", func() bool {
		var code *int32
		err := w2.pool.QueryRow(context.Background(), `SELECT last_response_code FROM webhook_deliveries WHERE webhook_id = $1`, id).Scan(&code)
		return err == nil && code != nil && *code == http.StatusFound
	})
	if n := len(target.got()); n != 0 {
		t.Errorf("the redirect was followed: %d calls", n)
	}
}

// During a rotation's grace both secrets sign, after it only the new one;
// binary mode carries the data as the body and the attributes as headers,
// signed over that body.
func TestRotationSignsWithBothSecretsAndBinaryMode(t *testing.T) {
	w := newWorld(t)
	rcv := newReceiver(t, nil)
	id, secret := w.endpoint(rcv.URL, "binary", "customer.updated")
	old := newSecret()
	if _, err := w.pool.Exec(context.Background(), `UPDATE webhooks SET previous_secret = $2, previous_secret_expires_at = now() + interval '1 hour' WHERE id = $1`, id, old); err != nil {
		t.Fatal(err)
	}
	w.start(fast)
	c := uuid.Must(uuid.NewV7())
	sent := w.emit([]uuid.UUID{c}, 1)
	w.eventually("delivered", func() bool { return len(rcv.accepted()) == 1 })
	call := rcv.got()[0]
	if n := verify(t, call, secret, old); n != 2 {
		t.Errorf("%d of the two secrets signed: %q", n, call.header.Get("webhook-signature"))
	}
	if got, want := call.header.Get("traceparent"), sent[0].Extensions()[events.ExtTraceParent]; got != want {
		t.Errorf("binary mode: traceparent header %q, want the event's %q", got, want)
	}
	if call.header.Get("ce-id") != sent[0].ID() || call.header.Get("ce-type") != events.CustomerUpdated || call.header.Get("ce-partitionkey") != c.String() {
		t.Errorf("binary mode headers: %v", call.header)
	}
	var data map[string]any
	if err := json.Unmarshal(call.body, &data); err != nil || data["id"] != c.String() {
		t.Errorf("binary mode body %s (%v)", call.body, err)
	}

	if _, err := w.pool.Exec(context.Background(), `UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	w.emit([]uuid.UUID{c}, 1)
	w.eventually("delivered again", func() bool { return len(rcv.accepted()) == 2 })
	call = rcv.got()[1]
	if verify(t, call, secret) != 1 || verify(t, call, old) != 0 || len(strings.Fields(call.header.Get("webhook-signature"))) != 1 {
		t.Errorf("after the grace: %q", call.header.Get("webhook-signature"))
	}
}

// A service stopped while deliveries wait for their retry, and another
// started later, deliver every event exactly once to a receiver that
// accepted none of the first attempts.
func TestRestartMidRetryLosesNothingAndSendsNothingTwice(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	refuse := true
	rcv := newReceiver(t, func(int, call) int {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	w.endpoint(rcv.URL, "structured", "customer.*")
	stop := w.start(fast, func(c *Config) { c.RetryDelays = []time.Duration{time.Second, time.Second, time.Second} })
	customers := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	sent := w.emit(customers, 3)
	w.eventually("first attempts made", func() bool { return len(rcv.got()) >= len(customers) })
	stop()
	mu.Lock()
	refuse = false
	mu.Unlock()
	more := w.emit(customers, 1) // published while no instance runs
	w.start(fast)
	w.eventually("every event accepted", func() bool { return len(rcv.accepted()) >= len(sent)+len(more) })
	time.Sleep(300 * time.Millisecond) // a stray repeat would have come by now
	seen := map[string]int{}
	for _, c := range rcv.accepted() {
		seen[c.header.Get("webhook-id")]++
	}
	for _, e := range append(sent, more...) {
		if seen[e.ID()] != 1 {
			t.Errorf("event %s accepted %d times", e.ID(), seen[e.ID()])
		}
	}
}

// Under the NATS configuration shipped in deploy/, the webhooks service
// reads the events as user webhooks and delivers them, refused nothing.
func TestDeployNATSConfigForWebhooks(t *testing.T) {
	srv := natstest.Deploy(t, "../../deploy/nats/nats.conf")
	pool, _ := dbtest.New(t)
	w := &world{t: t, pool: pool, js: srv.JetStreamAs("webhooks")}
	w.run("relay", relay.New(pool, srv.JetStreamAs("relay"), zaptest.NewLogger(t), prometheus.NewRegistry(),
		relay.Config{PollInterval: 20 * time.Millisecond, PublishTimeout: time.Second}).Run)
	rcv := newReceiver(t, nil)
	w.endpoint(rcv.URL, "structured", "customer.updated")
	w.start(fast)
	w.emit([]uuid.UUID{uuid.Must(uuid.NewV7())}, 1)
	w.eventually("delivered", func() bool { return len(rcv.accepted()) == 1 })
	if r := srv.Refusals("webhooks"); len(r) != 0 {
		t.Errorf("webhooks was refused: %v", r)
	}
}

// An event from before its customer's erasure that reaches the fan-out
// after the erasure ran (it was in flight) is not stored, so its personal
// data is never sent; the erasure's own event is, as are other customers'.
func TestEventsFromBeforeAnErasureAreNotDelivered(t *testing.T) {
	w := newWorld(t)
	rcv := newReceiver(t, nil)
	w.endpoint(rcv.URL, "structured", "*")
	w.start(fast)
	erased, other := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	event := func(typ string, c uuid.UUID, at time.Time) cloudevents.Event {
		e, err := events.New(events.Meta{Type: typ, Source: events.SourceCustomers, Subject: c.String(), PartitionKey: c.String(),
			Sequence: 1, Time: at, TraceParent: events.NewTraceParent(), Actor: events.Actor{Type: events.AuthServiceAccount, ID: "test"}},
			map[string]any{"id": c})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	before := time.Now().Add(-time.Minute)
	stale, otherStale := event(events.CustomerUpdated, erased, before), event(events.CustomerUpdated, other, before)
	anonymized := event(events.CustomerAnonymized, erased, time.Now())
	if _, err := w.pool.Exec(context.Background(), `
		INSERT INTO erasures (customer_id, keep_event_id, partition_keys, emails, requested_at)
		VALUES ($1, $2, $3, '{}', now())`, erased, anonymized.ID(), []string{erased.String()}); err != nil {
		t.Fatal(err)
	}
	err := pgx.BeginFunc(context.Background(), w.pool, func(tx pgx.Tx) error {
		return outbox.Write(context.Background(), gen.New(tx), []cloudevents.Event{stale, otherStale, anonymized})
	})
	if err != nil {
		t.Fatal(err)
	}
	w.eventually("the erasure's event and the other customer's delivered", func() bool { return len(rcv.accepted()) == 2 })
	time.Sleep(200 * time.Millisecond)
	var ids []string
	for _, c := range rcv.got() {
		ids = append(ids, c.header.Get("webhook-id"))
	}
	if !slices.Contains(ids, anonymized.ID()) || !slices.Contains(ids, otherStale.ID()) || slices.Contains(ids, stale.ID()) {
		t.Errorf("delivered %v; want %s and %s, never %s", ids, anonymized.ID(), otherStale.ID(), stale.ID())
	}
}

// After the NATS server restarts, events flow again within seconds: the
// fan-out's pull does not sit out its expiry on a connection that is gone.
func TestEventsFlowSoonAfterNATSRestarts(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	ns := natstest.New(t)
	js, err := jetstream.New(ns.Connect())
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, pool: pool, js: js}
	w.run("relay", relay.New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(),
		relay.Config{PollInterval: 20 * time.Millisecond, PublishTimeout: time.Second}).Run)
	rcv := newReceiver(t, nil)
	w.endpoint(rcv.URL, "structured", "*")
	w.start(fast)
	c := uuid.Must(uuid.NewV7())
	w.emit([]uuid.UUID{c}, 1)
	w.eventually("delivered before the restart", func() bool { return len(rcv.accepted()) == 1 })

	ns.Stop()
	ns.Start()
	start := time.Now()
	w.emit([]uuid.UUID{c}, 1)
	w.eventually("delivered after the restart", func() bool { return len(rcv.accepted()) == 2 })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the first event after the restart took %s, want at most 5 s", took.Round(time.Millisecond))
	} else {
		t.Logf("the first event after the restart took %s", took.Round(time.Millisecond))
	}
}

// Stopping never leaves a delivery claimed: every attempt claimed before the
// stop runs and is recorded, so the next instance can send it at once rather
// than after its lease. (A claim cut short by the stop had committed all the
// same and held its deliveries for the lease, 32 s here.)
func TestStoppingLeavesNoDeliveryClaimed(t *testing.T) {
	w := newWorld(t)
	rcv := newReceiver(t, func(int, call) int { return http.StatusServiceUnavailable })
	w.endpoint(rcv.URL, "structured", "customer.*")
	customers := make([]uuid.UUID, 50)
	for i := range customers {
		customers[i] = uuid.Must(uuid.NewV7())
	}
	retryAtOnce := func(c *Config) {
		fast(c)
		c.RetryDelays = []time.Duration{time.Millisecond}
		c.PollInterval = time.Millisecond
	}
	stop := w.start(retryAtOnce)
	w.emit(customers, 1)
	w.eventually("attempts made", func() bool { return len(rcv.got()) >= len(customers) })
	for i := range 40 {
		stop()
		var held int
		if err := w.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM webhook_deliveries WHERE leased_until > now()`).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held != 0 {
			t.Fatalf("stop %d left %d deliveries claimed", i, held)
		}
		stop = w.start(retryAtOnce)
		time.Sleep(time.Duration(i%7) * 3 * time.Millisecond)
	}
	stop()
}

// Stopping never leaves events that the fan-out had pulled to wait out
// their AckWait (30 s): it stores them first, so the next instance has
// every delivery at once.
func TestStoppingTheFanOutLeavesNoEventBehind(t *testing.T) {
	w := newWorld(t)
	rcv := newReceiver(t, nil)
	w.endpoint(rcv.URL, "structured", "customer.*")
	emitted := 0
	for i := range 15 {
		stop := w.start(fast)
		customers := make([]uuid.UUID, 40)
		for j := range customers {
			customers[j] = uuid.Must(uuid.NewV7())
		}
		emitted += len(w.emit(customers, 1))
		time.Sleep(time.Duration(i%5) * 10 * time.Millisecond)
		stop()
	}
	w.start(fast)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var stored int
		if err := w.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored == emitted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries stored 5 s after the last start", stored, emitted)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.eventually("every event delivered", func() bool { return len(rcv.accepted()) >= emitted })
}

// An event that jumps past the next sequence of its customer is counted
// and logged: the endpoints did not get the events between. A late one,
// or one seen again, is no gap.
func TestASequenceGapIsCountedAndLogged(t *testing.T) {
	w := newWorld(t)
	logs, logged := observer.New(zapcore.WarnLevel)
	reg := prometheus.NewRegistry()
	s := New(w.pool, w.js, zap.New(logs), reg, Config{PollInterval: 20 * time.Millisecond})
	w.run("webhooks", s.Run)
	w.eventually("the fan-out and the sequence watch consume", func() bool {
		st, err := w.js.Stream(context.Background(), events.EventsStream)
		return err == nil && st.CachedInfo().State.Consumers == 2
	})
	a, b := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	w.write([]cloudevents.Event{w.updated(a, 1), w.updated(a, 2), w.updated(b, 5), w.updated(a, 4), w.updated(a, 3), w.updated(b, 6), w.updated(b, 9)})

	gaps := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "customerbus_webhook_sequence_gaps_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no customerbus_webhook_sequence_gaps_total on the registry")
		return 0
	}
	w.eventually("two gaps counted", func() bool { return gaps() >= 2 })
	time.Sleep(100 * time.Millisecond) // a third would come now
	if g := gaps(); g != 2 {
		t.Errorf("%v gaps counted, want 2", g)
	}
	var got []string
	for _, e := range logged.FilterMessageSnippet("sequence gap").All() {
		f := e.ContextMap()
		got = append(got, fmt.Sprintf("%s %d→%d", f["subject"], f["expected"], f["got"]))
	}
	if want := []string{fmt.Sprintf("%s 3→4", a), fmt.Sprintf("%s 7→9", b)}; !slices.Equal(got, want) {
		t.Errorf("gaps logged %q, want %q", got, want)
	}
}
