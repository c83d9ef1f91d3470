package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
)

// writeEvents puts customer.updated events for the given customers into the
// outbox, as a command's transaction would: seqPerCustomer versions each,
// interleaved across customers.
func writeEvents(t *testing.T, pool *pgxpool.Pool, customers []uuid.UUID, seqPerCustomer int) {
	t.Helper()
	for seq := 1; seq <= seqPerCustomer; seq++ {
		for _, id := range customers {
			writeEvent(t, pool, id, seq, false)
		}
	}
}

// writeEvent puts a customer's customer.updated of sequence seq into the
// outbox, in the bulk lane (as an import writes) or the live one.
func writeEvent(t *testing.T, pool *pgxpool.Pool, id uuid.UUID, seq int, bulk bool) {
	t.Helper()
	writeEventOf(t, pool, events.CustomerUpdated, id, seq, bulk)
}

// writeEventOf is writeEvent for an event of any type; it returns the
// event's id.
func writeEventOf(t *testing.T, pool *pgxpool.Pool, typ string, id uuid.UUID, seq int, bulk bool) uuid.UUID {
	t.Helper()
	e := newEvent(t, typ, id, seq)
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	q, ctx := gen.New(pool), context.Background()
	if bulk {
		_, err = q.CopyBulkOutbox(ctx, []gen.CopyBulkOutboxParams{{
			EventID: uuid.MustParse(e.ID()), NatsSubject: events.Subject(e.Type()), PartitionKey: id.String(), Event: b, Bulk: true,
		}})
	} else {
		err = q.InsertOutboxEvents(ctx, gen.InsertOutboxEventsParams{
			EventIds: []uuid.UUID{uuid.MustParse(e.ID())}, NatsSubjects: []string{events.Subject(e.Type())},
			PartitionKeys: []string{id.String()}, Events: [][]byte{b},
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return uuid.MustParse(e.ID())
}

// newEvent is a customer's event of sequence seq.
func newEvent(t *testing.T, typ string, id uuid.UUID, seq int) cloudevents.Event {
	t.Helper()
	e, err := events.New(events.Meta{
		Type: typ, Source: events.SourceCustomers, Subject: id.String(),
		PartitionKey: id.String(), Sequence: int64(seq), Time: time.Now(),
		Actor: events.Actor{Type: events.AuthServiceAccount, ID: "test"},
	}, map[string]any{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// newBus gives a test its own migrated database and JetStream server.
func newBus(t *testing.T) (*pgxpool.Pool, jetstream.JetStream) {
	t.Helper()
	pool, _ := dbtest.New(t)
	js, err := jetstream.New(natstest.New(t).Connect())
	if err != nil {
		t.Fatal(err)
	}
	return pool, js
}

func newRelay(t *testing.T, pool *pgxpool.Pool, js jetstream.JetStream) *Relay {
	return New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(), Config{
		BatchSize: 7, PollInterval: 50 * time.Millisecond, PublishTimeout: time.Second, ReconcileInterval: 50 * time.Millisecond,
	})
}

// runUntilSent runs the relays until the outbox is empty of unsent events.
func runUntilSent(t *testing.T, pool *pgxpool.Pool, relays ...*Relay) {
	t.Helper()
	defer startRelays(t, relays...)()
	waitUntilSent(t, pool)
}

// waitUntilSent waits up to 20 s for the outbox to have no unsent event.
func waitUntilSent(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := gen.New(pool).CountUnsentOutbox(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still unsent", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRelays runs the relays until the returned stop is called.
func startRelays(t *testing.T, relays ...*Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range relays {
		wg.Go(func() {
			if err := r.Run(ctx); err != nil {
				t.Errorf("relay: %v", err)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// streamSequences reads the whole stream and returns, per partition key, the
// sequences in stream order; it fails on a message id seen twice.
func streamSequences(t *testing.T, js jetstream.JetStream) (map[string][]int64, int) {
	seqs, keys := streamOrder(t, js)
	return seqs, len(keys)
}

// streamOrder reads the whole stream and returns, per partition key, the
// sequences in stream order, and the partition key of each message in
// stream order; it fails on a message id seen twice.
func streamOrder(t *testing.T, js jetstream.JetStream) (map[string][]int64, []string) {
	t.Helper()
	seqs := map[string][]int64{}
	var keys []string
	seen := map[string]bool{}
	for _, e := range readStream(t, js, events.EventsStream) {
		if seen[e.ID()] {
			t.Errorf("event %s delivered twice", e.ID())
		}
		seen[e.ID()] = true
		key, _ := e.Extensions()[events.ExtPartitionKey].(string)
		seqs[key] = append(seqs[key], events.Sequence(e))
		keys = append(keys, key)
	}
	return seqs, keys
}

// readStream reads a whole stream, as a consumer replaying it would, and
// returns its events in stream order.
func readStream(t *testing.T, js jetstream.JetStream, name string) []cloudevents.Event {
	t.Helper()
	var out []cloudevents.Event
	eachMessage(t, js, name, func(m jetstream.Msg) {
		e, err := events.FromMsg(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	})
	return out
}

// storedOnceEach checks that the events stream holds every event of the
// outbox exactly once and nothing else, and returns when it stored each
// message, in stream order.
func storedOnceEach(t *testing.T, pool *pgxpool.Pool, js jetstream.JetStream) []time.Time {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT event_id::text FROM outbox")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	inStream := map[string]int{}
	var stored []time.Time
	eachStreamMessage(t, js, func(m jetstream.Msg) {
		e, err := events.FromMsg(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if err != nil {
			t.Fatal(err)
		}
		inStream[e.ID()]++
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, meta.Timestamp)
	})
	for _, id := range ids {
		if inStream[id] != 1 {
			t.Errorf("event %s is in the stream %d times, want once", id, inStream[id])
		}
		delete(inStream, id)
	}
	for id := range inStream {
		t.Errorf("message %q in the stream is no event of the outbox", id)
	}
	return stored
}

// eachStreamMessage calls f with every message of the events stream, in
// stream order.
func eachStreamMessage(t *testing.T, js jetstream.JetStream, f func(jetstream.Msg)) {
	t.Helper()
	eachMessage(t, js, events.EventsStream, f)
}

// eachMessage calls f with every message of a stream, in stream order.
func eachMessage(t *testing.T, js jetstream.JetStream, name string, f func(jetstream.Msg)) {
	t.Helper()
	ctx := context.Background()
	stream, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := int(info.State.Msgs)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Just after a node is lost, a fetch may end at once, empty, while the
	// stream or the consumer finds its new leader; the ordered consumer
	// starts again where it was on the next fetch.
	progress := time.Now()
	for read := 0; read < total; {
		batch, err := cons.Fetch(total-read, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			f(m)
		}
		if got > 0 {
			read += got
			progress = time.Now()
			continue
		}
		if time.Since(progress) > 5*time.Second { // rather than wait for ever
			t.Fatalf("%s: read %d of its %d messages, then nothing for 5 s (last fetch: %v)", name, read, total, batch.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func assertInOrder(t *testing.T, seqs map[string][]int64, customers []uuid.UUID, perCustomer int) {
	t.Helper()
	for _, id := range customers {
		got := seqs[id.String()]
		if len(got) != perCustomer {
			t.Errorf("customer %s: %d events, want %d", id, len(got), perCustomer)
			continue
		}
		for i, s := range got {
			if s != int64(i+1) {
				t.Errorf("customer %s: sequences %v, want 1..%d in order", id, got, perCustomer)
				break
			}
		}
	}
}

func customersN(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.Must(uuid.NewV7())
	}
	return out
}

func TestRelayStoppedAfterPublishBeforeMarkingSentRepublishesAndConsumerSeesEachOnce(t *testing.T) {
	t.Parallel()
	pool, js := newBus(t)
	custs := customersN(3)
	writeEvents(t, pool, custs, 2) // 6 events; a batch takes one per customer

	// The first relay publishes its batch, gets every ack, then dies before
	// it can mark anything sent.
	crashed := newRelay(t, pool, js)
	ctx, cancel := context.WithCancel(context.Background())
	crashed.beforeMarkSent = func() error {
		cancel()
		return errors.New("relay killed")
	}
	if err := crashed.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := gen.New(pool).CountUnsentOutbox(context.Background()); n != 6 {
		t.Fatalf("unsent after crash = %d, want 6 (nothing marked)", n)
	}
	seqs, total := streamSequences(t, js)
	if total != 3 {
		t.Fatalf("stream holds %d events after the first relay, want 3 (one per customer)", total)
	}

	// A new relay publishes the same events again; JetStream drops them.
	runUntilSent(t, pool, newRelay(t, pool, js))
	seqs, total = streamSequences(t, js)
	if total != 6 {
		t.Errorf("stream holds %d events after the re-publication, want 6", total)
	}
	assertInOrder(t, seqs, custs, 2)
}

func TestTwoRelaysPublishEveryEventOnceInPerCustomerOrder(t *testing.T) {
	t.Parallel()
	pool, js := newBus(t)
	custs := customersN(10)
	writeEvents(t, pool, custs, 15) // 150 events in batches of 7

	runUntilSent(t, pool, newRelay(t, pool, js), newRelay(t, pool, js))
	seqs, total := streamSequences(t, js)
	if total != 150 {
		t.Errorf("stream holds %d events, want 150", total)
	}
	assertInOrder(t, seqs, custs, 15)
}

func TestRelayWakesOnNotifyWithoutWaitingForThePoll(t *testing.T) {
	t.Parallel()
	pool, js := newBus(t)
	r := New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(), Config{PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Let the relay reach its idle wait (streams created, LISTEN issued).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := js.Stream(context.Background(), events.EventsStream); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("relay never created the stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	custs := customersN(1)
	writeEvents(t, pool, custs, 1)
	deadline = time.Now().Add(5 * time.Second) // far below the one-hour poll
	for {
		if n, _ := gen.New(pool).CountUnsentOutbox(context.Background()); n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("event not relayed: the relay did not wake on NOTIFY")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each lane wakes for its own events only: a stream of live events leaves
// the bulk lane asleep (before, each cost a bulk batch that found nothing),
// an import's bulk events wake it (NotifyBulkOutbox), and a published
// customer.anonymized wakes the erasures, which live events do not. The
// polls are an hour apart, so every wake-up is a notification's.
func TestEachLaneAndTheErasuresWakeForTheirOwnEventsOnly(t *testing.T) {
	t.Parallel()
	pool, js := newBus(t)
	ctx, q := context.Background(), gen.New(pool)
	r := New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(), Config{PollInterval: time.Hour, ReconcileInterval: time.Hour})
	var bulkBatches atomic.Int32
	r.batchBegins = func(l lane) {
		if l.bulk {
			bulkBatches.Add(1)
		}
	}
	defer startRelays(t, r)()
	waitForStreams(t, js)
	time.Sleep(200 * time.Millisecond) // the lanes' first batches, at LISTEN
	before := bulkBatches.Load()

	for i, id := range customersN(10) {
		writeEvent(t, pool, id, i+1, false)
		waitUntilSent(t, pool)
	}
	if n := bulkBatches.Load() - before; n != 0 {
		t.Errorf("10 live events woke the bulk lane %d times, want 0", n)
	}

	imported := customersN(1)[0]
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := newEvent(t, events.CustomerCreated, imported, 1)
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.New(tx).CopyBulkOutbox(ctx, []gen.CopyBulkOutboxParams{{
		EventID: uuid.MustParse(e.ID()), NatsSubject: events.Subject(e.Type()), PartitionKey: imported.String(), Event: b, Bulk: true,
	}}); err != nil {
		t.Fatal(err)
	}
	if err := gen.New(tx).NotifyBulkOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntilSentWithin(t, pool, 5*time.Second, "an imported event")

	// An erasure, as the command writes it: the customer.anonymized event
	// and the erasure in one transaction, after an earlier event.
	erased := customersN(1)[0]
	writeEvent(t, pool, erased, 1, false)
	waitUntilSent(t, pool)
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e = newEvent(t, events.CustomerAnonymized, erased, 2)
	if b, err = events.Marshal(e); err != nil {
		t.Fatal(err)
	}
	qt := gen.New(tx)
	if err := qt.InsertOutboxEvents(ctx, gen.InsertOutboxEventsParams{
		EventIds: []uuid.UUID{uuid.MustParse(e.ID())}, NatsSubjects: []string{events.Subject(e.Type())},
		PartitionKeys: []string{erased.String()}, Events: [][]byte{b},
	}); err != nil {
		t.Fatal(err)
	}
	if err := qt.InsertErasure(ctx, gen.InsertErasureParams{
		CustomerID: erased, KeepEventID: uuid.MustParse(e.ID()), PartitionKeys: []string{erased.String()}, Emails: []string{}, RequestedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for erasureDone(t, pool, erased)() != "" {
		if time.Now().After(deadline) {
			t.Fatal("the erasure was not done within 5 s of its event: the published customer.anonymized did not wake the erasures")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := q.CountPendingErasures(ctx); err != nil || n != 0 {
		t.Errorf("pending erasures %d (%v), want 0", n, err)
	}
}

// The events committed while a woken lane lingers go out in the one batch
// that follows, each committed and notified on its own.
func TestALingeringLaneGathersTheEventsCommittedMeanwhileInOneBatch(t *testing.T) {
	t.Parallel()
	pool, js := newBus(t)
	r := New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(),
		Config{PollInterval: time.Hour, ReconcileInterval: time.Hour, Linger: 2 * time.Second})
	var liveBatches atomic.Int32
	r.batchBegins = func(l lane) {
		if !l.bulk {
			liveBatches.Add(1)
		}
	}
	defer startRelays(t, r)()
	waitForStreams(t, js)
	time.Sleep(3 * time.Second) // past its first wake-up's linger and batch
	before := liveBatches.Load()
	custs := customersN(5)
	writeEvents(t, pool, custs, 1) // well within the linger's 2 s
	waitUntilSentWithin(t, pool, 5*time.Second, "5 events")
	time.Sleep(r.cfg.Linger + 500*time.Millisecond) // a batch for the wake-ups that came while it lingered would come by then
	if n := liveBatches.Load() - before; n != 1 {
		t.Errorf("5 events committed within one linger went out in %d batches, want 1", n)
	}
	seqs, _ := streamSequences(t, js)
	assertInOrder(t, seqs, custs, 1)
}

// waitForStreams waits until a relay has made the streams: it is up.
func waitForStreams(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	waitUntil(t, "streams", func() string {
		if _, err := js.Stream(context.Background(), events.EventsStream); err != nil {
			return err.Error()
		}
		return ""
	})
}

// waitUntilSentWithin fails unless the outbox has no unsent event within d.
func waitUntilSentWithin(t *testing.T, pool *pgxpool.Pool, d time.Duration, what string) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := gen.New(pool).CountUnsentOutbox(context.Background()); n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not relayed within %s: its notification did not wake its lane", what, d)
		}
	}
}

func TestBatchHoldsAtMostOneEventPerCustomerInOutboxOrder(t *testing.T) {
	row := func(id int64, key string) gen.Outbox {
		return gen.Outbox{ID: id, PartitionKey: key}
	}
	got := firstPerPartition([]gen.Outbox{row(1, "a"), row(2, "b"), row(3, "a"), row(4, "c"), row(5, "b")})
	var ids []int64
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if fmt.Sprint(ids) != "[1 2 4]" {
		t.Errorf("batch ids %v, want [1 2 4]: the first event of each customer, in order", ids)
	}
}

// Either lane goes on while the other stands still (another relay holds
// it, here the test), but for the events of a customer with an earlier
// unsent event in the held lane: those wait for it, and every customer's
// events arrive in order once the held lane moves.
func TestALaneIsNotHeldUpByTheOtherButCustomersKeepTheirOrder(t *testing.T) {
	t.Parallel()
	for _, held := range []lane{bulkLane, liveLane} {
		t.Run("held "+held.name, func(t *testing.T) {
			t.Parallel()
			laneHeld(t, held)
		})
	}
}

func laneHeld(t *testing.T, held lane) {
	pool, js := newBus(t)
	ctx := context.Background()
	holder, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, held.lockKey); err != nil {
		t.Fatal(err)
	}
	// Events in the held lane, then in the moving lane: 5 of customers of
	// their own, 3 of customers with an event in the held lane.
	heldBulk := held.name == bulkLane.name
	waiting, moving := customersN(20), customersN(5)
	for _, id := range waiting {
		writeEvent(t, pool, id, 1, heldBulk)
	}
	for _, id := range moving {
		writeEvent(t, pool, id, 1, !heldBulk)
	}
	for _, id := range waiting[:3] {
		writeEvent(t, pool, id, 2, !heldBulk)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- newRelay(t, pool, js).Run(runCtx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, _ := gen.New(pool).CountUnsentOutbox(ctx); n == 23 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s lane is held and the other lane's events did not go out", held.name)
		}
	}
	time.Sleep(200 * time.Millisecond) // time for an event that should wait to go out wrongly
	seqs, keys := streamOrder(t, js)
	if len(keys) != 5 {
		t.Fatalf("while the %s lane is held the stream holds %d events, want the other lane's 5", held.name, len(keys))
	}
	assertInOrder(t, seqs, moving, 1)

	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, held.lockKey); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, _ := gen.New(pool).CountUnsentOutbox(ctx); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events unsent after the %s lane was let go", held.name)
		}
	}
	seqs, keys = streamOrder(t, js)
	if len(keys) != 28 {
		t.Fatalf("stream holds %d events, want 28", len(keys))
	}
	assertInOrder(t, seqs, waiting[:3], 2)
	assertInOrder(t, seqs, waiting[3:], 1)
	assertInOrder(t, seqs, moving, 1)
}
