package relay

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db"
	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
)

// maxTakeover is the longest the events stream may go without a new event
// while one relay hangs holding the lane and another stands by.
const maxTakeover = 5 * time.Second

// Two relays run with their default settings while events are committed
// one after another, and one hangs in the middle of a batch, holding the
// lane's lock, as a process stopped by SIGSTOP or a frozen VM would:
// after publishing the batch (before marking it sent), or before
// publishing it. The other relay publishes again within maxTakeover; every
// event is in the stream exactly once; and when the hung relay resumes it
// marks nothing and publishes nothing.
func TestARelayThatHangsHoldingTheLaneHoldsUpEventsForSecondsOnlyAndResumesHarmlessly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hang func(r *Relay, hang func())
	}{
		{"after publishing", func(r *Relay, hang func()) {
			r.beforeMarkSent = func() error { hang(); return nil }
		}},
		{"before publishing", func(r *Relay, hang func()) {
			r.pause = func(at string) {
				if at == "publish" {
					hang()
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			relayHangs(t, tc.hang)
		})
	}
}

func relayHangs(t *testing.T, hangAt func(r *Relay, hang func())) {
	pool, js := newBus(t)
	relay := func() *Relay {
		return New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(), Config{BatchSize: 20})
	}
	hung, standby := relay(), relay()
	var armed atomic.Bool
	hangs, resume := make(chan time.Time, 1), make(chan struct{})
	hangAt(hung, func() {
		if armed.CompareAndSwap(true, false) {
			hangs <- time.Now()
			<-resume
		}
	})
	resumeOnce := sync.OnceFunc(func() { close(resume) })
	stop := startRelays(t, hung, standby)
	defer func() { resumeOnce(); stop() }() // a relay that still hangs cannot stop

	// Every message the relays send, before JetStream drops any duplicate.
	var sent atomic.Int64
	sub, err := js.Conn().Subscribe(events.EventsSubjectPrefix+">", func(*nats.Msg) { sent.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck

	// Events are committed one by one: until the relay hangs, then for
	// maxTakeover and a second more.
	var hungAt time.Time
	for start := time.Now(); hungAt.IsZero() || time.Since(hungAt) < maxTakeover+time.Second; {
		if hungAt.IsZero() && time.Since(start) > 10*time.Second {
			t.Fatal("the relay got no batch to hang in within 10 s")
		}
		if time.Since(start) > 200*time.Millisecond {
			armed.Store(true) // once both relays are under way
		}
		writeEvent(t, pool, uuid.Must(uuid.NewV7()), 1, false)
		select {
		case hungAt = <-hangs:
		default:
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitUntilSent(t, pool)

	// The hung relay resumes with nothing left to publish.
	publishedBefore, sentBefore := counterValue(t, hung.metrics.published), sent.Load()
	resumeOnce()
	time.Sleep(time.Second)
	if n := counterValue(t, hung.metrics.published) - publishedBefore; n != 0 {
		t.Errorf("the relay that hung marked %v events sent after it resumed, want none", n)
	}
	if n := sent.Load() - sentBefore; n != 0 {
		t.Errorf("the relay that hung sent %d messages after it resumed, want none", n)
	}
	waitUntilSent(t, pool)
	stop()

	stored := storedOnceEach(t, pool, js)
	i, _ := slices.BinarySearchFunc(stored, hungAt, time.Time.Compare)
	var firstAfter time.Time
	if i < len(stored) {
		firstAfter = stored[i]
	}
	t.Logf("%d events; the first stored after the relay hung came %s after", len(stored), firstAfter.Sub(hungAt).Round(time.Millisecond))
	if firstAfter.IsZero() || firstAfter.Sub(hungAt) > maxTakeover {
		t.Errorf("no event stored within %s of the relay hanging", maxTakeover)
	}
}

// One relay hangs holding the reconciler's lock, which an erasure takes to
// delete: while reconciling (before it reads the streams), or while
// erasing a customer (before it deletes). The customer's erasure is done
// within maxTakeover of the hang all the same (by either relay), and when
// the hung relay resumes it deletes and publishes nothing: the streams hold
// the customer's messages from its erasure's on and the others', once each.
func TestARelayThatHangsHoldingTheReconcilersLockHoldsUpErasuresForSecondsOnly(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"reconcile", "erase"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			relayHangsHoldingTheReconcilersLock(t, at)
		})
	}
}

func relayHangsHoldingTheReconcilersLock(t *testing.T, at string) {
	pool, url := dbtest.New(t)
	js, err := jetstream.New(natstest.New(t).Connect())
	if err != nil {
		t.Fatal(err)
	}
	ctx, q := context.Background(), gen.New(pool)
	// Each relay has a pool of its own, as in a process of its own: the
	// connections the hung one holds must not starve the other.
	hungPool, err := db.Connect(ctx, url, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hungPool.Close)
	relay := func(pool *pgxpool.Pool) *Relay {
		return New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(), Config{ReconcileInterval: 50 * time.Millisecond})
	}
	hung, other := relay(hungPool), relay(pool)
	erased, kept := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	var ids []uuid.UUID // erased's three, then kept's two
	for i, c := range []uuid.UUID{erased, erased, erased, kept, kept} {
		ids = append(ids, writeEventOf(t, pool, events.CustomerUpdated, c, i+1, false))
	}
	erase := func() {
		err := q.InsertErasure(ctx, gen.InsertErasureParams{CustomerID: erased, KeepEventID: ids[2], PartitionKeys: []string{erased.String()}, Emails: []string{}, RequestedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
	}

	var armed atomic.Bool
	hangs, resume := make(chan time.Time, 1), make(chan struct{})
	hung.pause = func(where string) {
		if where == at && armed.CompareAndSwap(true, false) {
			hangs <- time.Now()
			<-resume
		}
	}
	resumeOnce := sync.OnceFunc(func() { close(resume) })
	stopHung := startRelays(t, hung)
	defer func() { resumeOnce(); stopHung() }() // a relay that still hangs cannot stop
	waitUntilSent(t, pool)

	// The other relay starts once the first hangs, or it might take the
	// lock or the erasure first.
	armed.Store(true)
	if at == "erase" {
		erase()
	}
	var hungAt time.Time
	select {
	case hungAt = <-hangs:
	case <-time.After(10 * time.Second):
		t.Fatalf("the relay did not get to %s within 10 s", at)
	}
	defer startRelays(t, other)()
	if at == "reconcile" {
		erase()
	}
	waitUntil(t, "erase", erasureDone(t, pool, erased))
	tookOver := time.Since(hungAt)

	resumeOnce()
	time.Sleep(time.Second)
	if wrong := streamsHold(t, js, ids[2:])(); wrong != "" {
		t.Errorf("after the hung relay resumed: %s", wrong)
	}
	var lastError string
	if err := pool.QueryRow(ctx, `SELECT last_error FROM erasures WHERE customer_id = $1`, erased).Scan(&lastError); err != nil {
		t.Fatal(err)
	}
	if lastError != "" {
		t.Errorf("the erasure is done, and says it failed: %s", lastError)
	}
	t.Logf("the erasure was done %s after the relay hung", tookOver.Round(time.Millisecond))
	if tookOver > maxTakeover {
		t.Errorf("the erasure took %s after the relay hung, want at most %s", tookOver, maxTakeover)
	}
}
