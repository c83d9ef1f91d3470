package customers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db"
	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/relay"
)

// maxRecovery is how long after PostgreSQL is back creates may still fail
// and events may still stall.
const maxRecovery = 2 * time.Second

// outage is how long PostgreSQL stays down: long enough for whatever
// retries to have backed off as far as they go.
const outage = 7500 * time.Millisecond

// PostgreSQL's postmaster is killed (SIGKILL) while clients keep creating
// customers, and started again after the outage: within maxRecovery of its
// being back, creates succeed again and their events reach the stream;
// every create answered 201 has its one row and its one customer.created.
// The command service and the relay run as in production, with their
// default settings, on a server of the test's own.
func TestCreatesAndTheirEventsGoOnWithinSecondsOfPostgreSQLComingBackFromAKill(t *testing.T) {
	t.Parallel()
	pg := dbtest.NewCluster(t)
	ctx := context.Background()
	pool, err := db.Connect(ctx, pg.URL(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := db.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(natstest.New(t).Connect())
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	api := httptest.NewServer(customers.New(pool, log, prometheus.NewRegistry(), customers.Config{MaxBodyBytes: 64 << 10}).Handler())
	t.Cleanup(api.Close)
	runCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.New(pool, js, log, prometheus.NewRegistry(), relay.Config{}).Run(runCtx) }()
	t.Cleanup(func() {
		stopRelay()
		if err := <-relayDone; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	token, err := customers.CreateToken(ctx, pool, "test", false, customers.Permissions)
	if err != nil {
		t.Fatal(err)
	}

	w := &creator{url: api.URL + "/v1/customers", token: token}
	stopWriting := make(chan struct{})
	var writing sync.WaitGroup
	writing.Go(func() { w.run(stopWriting) })
	for w.created() < 20 {
		if w.attempts() > 200 {
			close(stopWriting)
			t.Fatal("creates fail before any fault")
		}
		time.Sleep(10 * time.Millisecond)
	}
	killed := time.Now()
	pg.Kill()
	time.Sleep(outage)
	pg.Start()
	back := time.Now()
	time.Sleep(maxRecovery + time.Second)
	close(stopWriting)
	writing.Wait()

	(&system{t: t, pool: pool}).waitRelayed()

	rows, err := pool.Query(ctx, "SELECT id::text FROM customers")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for _, id := range ids {
		stored[id]++
	}
	createdEvents := map[string]int{}
	var last, firstAfterBack time.Time
	var longestGap time.Duration
	eachEvent(t, js, func(subject string, at time.Time) {
		createdEvents[subject]++
		if !last.IsZero() {
			longestGap = max(longestGap, at.Sub(last))
		}
		last = at
		if firstAfterBack.IsZero() && at.After(back) {
			firstAfterBack = at
		}
	})

	answered := w.answered()
	for _, id := range answered {
		if stored[id] != 1 || createdEvents[id] != 1 {
			t.Errorf("customer %s answered 201: %d rows, %d customer.created events; want 1 and 1", id, stored[id], createdEvents[id])
		}
	}
	for id := range stored {
		if createdEvents[id] != 1 {
			t.Errorf("customer %s: %d customer.created events, want 1", id, createdEvents[id])
		}
	}
	lastFailure, failures := w.lastFailure()
	t.Logf("%d creates answered 201, %d failed, the last failure answered %s after the kill (PostgreSQL was back after %s); "+
		"the stream went %s without an event, the first after PostgreSQL was back came %s after",
		len(answered), failures, lastFailure.Sub(killed).Round(time.Millisecond), back.Sub(killed).Round(time.Millisecond),
		longestGap.Round(time.Millisecond), firstAfterBack.Sub(back).Round(time.Millisecond))
	if lastFailure.Sub(back) > maxRecovery {
		t.Errorf("creates still failed %s after PostgreSQL was back, want at most %s", lastFailure.Sub(back), maxRecovery)
	}
	if firstAfterBack.IsZero() || firstAfterBack.Sub(back) > maxRecovery {
		t.Errorf("no event reached the stream within %s of PostgreSQL being back (first at %s)", maxRecovery, firstAfterBack)
	}
	if t.Failed() {
		t.Logf("PostgreSQL's log:\n%s", pg.Log())
	}
}

// creator creates customers one after another through the API, and keeps
// what each create was answered.
type creator struct {
	url, token string

	mu       sync.Mutex
	ids      []string  // of the creates answered 201
	failed   int       // creates answered otherwise, or not at all
	failedAt time.Time // when the last of them ended
}

func (c *creator) run(stop <-chan struct{}) {
	client := &http.Client{Timeout: 2 * time.Second}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
		id, err := c.create(client, fmt.Sprintf("outage-%d@example.com", i))
		c.mu.Lock()
		if err != nil {
			c.failed++
			c.failedAt = time.Now()
		} else {
			c.ids = append(c.ids, id)
		}
		c.mu.Unlock()
	}
}

// create creates one customer and returns its id.
func (c *creator) create(client *http.Client, email string) (string, error) {
	body, _ := json.Marshal(map[string]string{"email": email})
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	var created struct {
		ID string `json:"id"`
	}
	return created.ID, json.NewDecoder(resp.Body).Decode(&created)
}

func (c *creator) created() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func (c *creator) attempts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids) + c.failed
}

func (c *creator) answered() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...)
}

func (c *creator) lastFailure() (time.Time, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failedAt, c.failed
}

// eachEvent calls f with the subject (the customer) of every
// customer.created on the events stream, in stream order, and when the
// stream stored it.
func eachEvent(t *testing.T, js jetstream.JetStream, f func(subject string, stored time.Time)) {
	t.Helper()
	ctx := context.Background()
	stream, err := js.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.Subject(events.CustomerCreated)}})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(0); seq < info.State.LastSeq; {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			seq = meta.Sequence.Stream
			e, err := events.FromMsg(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			if err != nil {
				t.Fatal(err)
			}
			f(e.Subject(), meta.Timestamp)
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			break // the rest are other events'
		}
	}
}
