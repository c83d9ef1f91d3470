package ops_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/customerbus/customerbus/db"
	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/ops"
	"github.com/customerbus/customerbus/ops/opstest"
)

const (
	stream  = "ORDERS"
	durable = "shipper"
)

// opsServer serves ops.New on a database and a NATS server of the test's
// own, for needs of one stream and one durable consumer of it.
type opsServer struct {
	t    *testing.T
	url  string
	nats *natstest.Server
	js   jetstream.JetStream
}

func newOpsServer(t *testing.T, natsReported ...bool) *opsServer {
	t.Helper()
	pool, _ := dbtest.New(t)
	ns := natstest.New(t)
	js, err := jetstream.New(ns.Connect())
	if err != nil {
		t.Fatal(err)
	}
	h := ops.New(prometheus.NewRegistry(), ops.Needs{Pool: pool, JS: js,
		Streams: []string{stream}, Consumers: []ops.Consumer{{Stream: stream, Durable: durable}},
		NATSReported: len(natsReported) > 0 && natsReported[0]})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &opsServer{t: t, url: srv.URL, nats: ns, js: js}
}

// expectReady fails unless /readyz answers status with want's checks:
// "ok", or for a failing one the start of what it says.
func (s *opsServer) expectReady(status int, want map[string]string) {
	s.t.Helper()
	r := opstest.Readyz(s.t, s.url)
	code, word, checks := r.Code, r.Status, r.Checks
	wantWord := map[int]string{http.StatusOK: "ready", http.StatusServiceUnavailable: "unavailable"}[status]
	if code != status || word != wantWord {
		s.t.Errorf("/readyz: %d %q, want %d %q (checks %v)", code, word, status, wantWord, checks)
	}
	got := map[string]string{}
	for name, state := range checks {
		got[name] = state
		if w, ok := want[name]; ok && w != "ok" && strings.Contains(state, w) {
			got[name] = w
		}
	}
	if !reflect.DeepEqual(got, want) {
		s.t.Errorf("/readyz checks\n%v\nwant\n%v", checks, want)
	}
}

// /readyz names each dependency and its state, and is 503 until every one
// is there: the stream, then its consumer; when NATS goes, the connection
// is named, and the stream and consumer wait for it. /healthz answers
// throughout.
func TestReadyzNamesEachDependencyAndAnswers503UntilAllAreThere(t *testing.T) {
	s := newOpsServer(t)
	ctx := context.Background()
	s.expectReady(http.StatusServiceUnavailable, map[string]string{
		"database": "ok", "nats": "ok", "stream ORDERS": "not found", "consumer shipper": "waits for stream ORDERS"})

	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	s.expectReady(http.StatusServiceUnavailable, map[string]string{
		"database": "ok", "nats": "ok", "stream ORDERS": "ok", "consumer shipper": "not found on ORDERS"})

	if _, err := s.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: durable}); err != nil {
		t.Fatal(err)
	}
	s.expectReady(http.StatusOK, map[string]string{"database": "ok", "nats": "ok", "stream ORDERS": "ok", "consumer shipper": "ok"})

	s.nats.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for opstest.Readyz(t, s.url).Code == http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // until the client notices
	}
	s.expectReady(http.StatusServiceUnavailable, map[string]string{
		"database": "ok", "nats": "not connected", "stream ORDERS": "waits for nats", "consumer shipper": "waits for nats"})
	if resp, err := http.Get(s.url + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz without NATS: %v %v, want 200", resp, err)
	}
}

// A process whose NATS is only reported (the command service's) stays
// ready while NATS and its streams are missing, and says so; its database
// still makes it unready.
func TestReadyzOnlyReportsNATSWhereTheProcessWorksWithout(t *testing.T) {
	s := newOpsServer(t, true)
	s.expectReady(http.StatusOK, map[string]string{
		"database": "ok", "nats": "ok", "stream ORDERS": "not found", "consumer shipper": "waits for stream ORDERS"})
	s.nats.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for opstest.Readyz(t, s.url).Checks["nats"] == "ok" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // until the client notices
	}
	s.expectReady(http.StatusOK, map[string]string{
		"database": "ok", "nats": "not connected", "stream ORDERS": "waits for nats", "consumer shipper": "waits for nats"})
	// Joined with a service that needs NATS (as under run), it is required.
	if ops.Join(ops.Needs{Streams: []string{stream}, NATSReported: true}, ops.Needs{Streams: []string{"X"}}).NATSReported {
		t.Error("NATS only reported for a process with a service that needs it")
	}
}

// A database that does not answer is named.
func TestReadyzNamesTheDatabaseWhenItDoesNotAnswer(t *testing.T) {
	_, url := dbtest.New(t)
	pool, err := db.Connect(context.Background(), url, 0)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	srv := httptest.NewServer(ops.Handler(prometheus.NewRegistry(), ops.Needs{Pool: pool}))
	defer srv.Close()
	r := opstest.Readyz(t, srv.URL)
	if r.Code != http.StatusServiceUnavailable || r.Status != "unavailable" || len(r.Checks) != 1 || r.Checks["database"] == "ok" || r.Checks["database"] == "" {
		t.Errorf("/readyz on a closed pool: %+v, want 503 unavailable naming the database", r)
	}
}

// The consumer's lag is read from JetStream at each scrape: messages not
// delivered yet, then delivered and not acknowledged; and the stream's
// messages.
func TestMetricsShowTheLagOfADurableConsumerAtEachScrape(t *testing.T) {
	s := newOpsServer(t)
	ctx := context.Background()
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := s.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.js.Publish(ctx, "orders.placed", []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	lag := func() (messages, pending, ackPending float64) {
		m := opstest.Scrape(t, s.url+"/metrics")
		messages, _ = m.Value("customerbus_stream_messages", "stream", stream)
		pending, _ = m.Value("customerbus_consumer_pending_messages", "stream", stream, "consumer", durable)
		ackPending, _ = m.Value("customerbus_consumer_ack_pending_messages", "stream", stream, "consumer", durable)
		return
	}
	if m, p, a := lag(); m != 3 || p != 3 || a != 0 {
		t.Errorf("3 messages, none read: stream %v, pending %v, ack pending %v; want 3, 3, 0", m, p, a)
	}
	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() { // read, not acked
	}
	if m, p, a := lag(); m != 3 || p != 2 || a != 1 {
		t.Errorf("1 of 3 read, not acked: stream %v, pending %v, ack pending %v; want 3, 2, 1", m, p, a)
	}
	if v, _ := opstest.Scrape(t, s.url+"/metrics").Value("customerbus_nats_connected"); v != 1 {
		t.Errorf("customerbus_nats_connected %v, want 1", v)
	}
}

// The pool's connections are counted by state as a scrape finds them.
func TestMetricsShowTheDatabasePoolAtEachScrape(t *testing.T) {
	pool, _ := dbtest.New(t)
	srv := httptest.NewServer(ops.New(prometheus.NewRegistry(), ops.Needs{Pool: pool}))
	defer srv.Close()
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := opstest.Scrape(t, srv.URL+"/metrics")
	acquired, _ := m.Value("customerbus_db_pool_connections", "state", "acquired")
	max, _ := m.Value("customerbus_db_pool_max_connections")
	acquires, _ := m.Value("customerbus_db_pool_acquires_total")
	if acquired != 1 || max != float64(pool.Config().MaxConns) || acquires < 1 {
		t.Errorf("one connection held: acquired %v, max %v, acquires %v; want 1, %d, at least 1", acquired, max, acquires, pool.Config().MaxConns)
	}
	conn.Release()
	if v, _ := opstest.Scrape(t, srv.URL+"/metrics").Value("customerbus_db_pool_connections", "state", "acquired"); v != 0 {
		t.Errorf("released: acquired %v, want 0", v)
	}
}
