package relay

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
)

// waitUntil polls cond until it holds, and fails the test after 20 s with
// what cond last said was wrong.
func waitUntil(t *testing.T, what string, cond func() string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		wrong := cond()
		if wrong == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, wrong)
		}
	}
}

// erasureDone says whether the customer's erasure is done: "" when it is.
func erasureDone(t *testing.T, pool *pgxpool.Pool, customer uuid.UUID) func() string {
	return func() string {
		var done bool
		if err := pool.QueryRow(context.Background(), `SELECT erased_at IS NOT NULL FROM erasures WHERE customer_id = $1`, customer).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if !done {
			return "erasure not done"
		}
		return ""
	}
}

func allSent(t *testing.T, pool *pgxpool.Pool) func() string {
	return func() string {
		n, err := gen.New(pool).CountUnsentOutbox(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return fmt.Sprintf("%d events unsent", n)
		}
		return ""
	}
}

// deleteBehindItsBack deletes an event's message from its stream, where the
// event log says it is, as an operator or a broker's fault would.
func deleteBehindItsBack(t *testing.T, pool *pgxpool.Pool, js jetstream.JetStream, eventID uuid.UUID, secure bool) {
	t.Helper()
	ctx := context.Background()
	var name string
	var seq uint64
	if err := pool.QueryRow(ctx, `SELECT stream, stream_seq FROM event_log WHERE event_id = $1`, eventID).Scan(&name, &seq); err != nil {
		t.Fatalf("event %s in the log: %v", eventID, err)
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	del := s.DeleteMsg
	if secure {
		del = s.SecureDeleteMsg
	}
	if err := del(ctx, seq); err != nil {
		t.Fatalf("delete %s message %d: %v", name, seq, err)
	}
}

// streamsHold says how the events of both streams, read by a consumer
// replaying them, differ from want (each event id once): "" when they hold
// each wanted event once and nothing else.
func streamsHold(t *testing.T, js jetstream.JetStream, want []uuid.UUID) func() string {
	return func() string {
		seen := map[string]int{}
		for _, name := range []string{events.EventsStream, events.NotificationsStream} {
			if _, err := js.Stream(context.Background(), name); err != nil {
				return fmt.Sprintf("stream %s: %v", name, err)
			}
			for _, e := range readStream(t, js, name) {
				seen[e.ID()]++
			}
		}
		var wrong []string
		for _, id := range want {
			if n := seen[id.String()]; n != 1 {
				wrong = append(wrong, fmt.Sprintf("event %s %d times", id, n))
			}
			delete(seen, id.String())
		}
		for id, n := range seen {
			wrong = append(wrong, fmt.Sprintf("event %s %d times, want none", id, n))
		}
		if len(wrong) == 0 {
			return ""
		}
		slices.Sort(wrong)
		return fmt.Sprintf("%d wrong, such as %v", len(wrong), wrong[:min(len(wrong), 5)])
	}
}

// reconciled is what the relays' customerbus_relay_reconciled_total{stream} add up to.
func reconciled(t *testing.T, relays []*Relay, stream string) float64 {
	n := 0.0
	for _, r := range relays {
		n += counterValue(t, r.metrics.reconciled.WithLabelValues(stream))
	}
	return n
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Messages deleted behind the relay's back (the stream's first and last,
// one between them securely, a notification; all within the duplicate
// window, so with its own Nats-Msg-Id JetStream would drop the
// re-publication) come back once each, to a live consumer as to one
// replaying the streams, and again when deleted again. The messages an
// erasure deleted never come back: those of a finished erasure, and that of
// an erasure under way (which deleted it and stopped before marking it).
func TestReconcilerPublishesAgainOnceWhatTheStreamsLostButNothingErased(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{
		{"the stream's state tells", 0},
		{"each message's id is checked", maxClockSkew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reconcileLost(t, tc.skew)
		})
	}
}

func reconcileLost(t *testing.T, skew time.Duration) {
	pool, js := newBus(t)
	ctx, q := context.Background(), gen.New(pool)
	// The erased customers' events go between the kept ones', so the
	// stream's first and last messages are kept ones'.
	erased, erasing, kept := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), customersN(3)
	ids := map[uuid.UUID][]uuid.UUID{} // customer.updated 1, 2, 3, then a notification
	for _, c := range []uuid.UUID{kept[0], erased, erasing, kept[1], kept[2]} {
		for seq := 1; seq <= 3; seq++ {
			ids[c] = append(ids[c], writeEventOf(t, pool, events.CustomerUpdated, c, seq, false))
		}
		ids[c] = append(ids[c], writeEventOf(t, pool, events.CustomerPasswordResetRequested, c, 3, false))
	}
	relays := []*Relay{newRelay(t, pool, js), newRelay(t, pool, js)}
	for _, r := range relays {
		r.clockSkew = skew
	}
	t.Cleanup(startRelays(t, relays...))
	waitUntil(t, "publish", allSent(t, pool))

	// erased's erasure is done: its first two events are gone. erasing's
	// is under way: it deleted the first event and stopped (its own event,
	// never published, keeps it waiting).
	for c, keep := range map[uuid.UUID]uuid.UUID{erased: ids[erased][2], erasing: uuid.New()} {
		if err := q.InsertErasure(ctx, gen.InsertErasureParams{CustomerID: c, KeepEventID: keep, PartitionKeys: []string{c.String()}, Emails: []string{}, RequestedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "erase", erasureDone(t, pool, erased))
	deleteBehindItsBack(t, pool, js, ids[erasing][0], true)
	want := []uuid.UUID{ids[erased][2], ids[erased][3]}
	want = append(want, ids[erasing][1:]...)
	for _, c := range kept {
		want = append(want, ids[c]...)
	}
	if wrong := streamsHold(t, js, want)(); wrong != "" {
		t.Fatalf("before any loss: %s", wrong)
	}

	live, err := js.CreateConsumer(ctx, events.EventsStream, jetstream.ConsumerConfig{
		Durable: "app", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, end := range []struct {
		name, order string
		want        uuid.UUID
	}{{"first", "ASC", ids[kept[0]][0]}, {"last", "DESC", ids[kept[2]][2]}} {
		var got uuid.UUID
		if err := pool.QueryRow(ctx, `SELECT event_id FROM event_log WHERE stream = $1 AND stream_seq IS NOT NULL ORDER BY stream_seq `+end.order+` LIMIT 1`, events.EventsStream).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != end.want {
			t.Fatalf("the events stream's %s message is event %s, want kept customer's %s", end.name, got, end.want)
		}
	}
	lost := []uuid.UUID{ids[kept[0]][0], ids[kept[1]][1], ids[kept[2]][2]} // first, between, last
	for i, id := range lost {
		deleteBehindItsBack(t, pool, js, id, i == 1)
	}
	deleteBehindItsBack(t, pool, js, ids[kept[2]][3], false) // a notification

	waitUntil(t, "reconcile", streamsHold(t, js, want))
	var got []uuid.UUID
	for len(got) < len(lost) {
		batch, err := live.Fetch(len(lost)-len(got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := len(got)
		for m := range batch.Messages() {
			e, err := events.FromMsg(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, uuid.MustParse(e.ID()))
			_ = m.Ack()
		}
		if len(got) == n {
			break
		}
	}
	time.Sleep(10 * relays[0].cfg.ReconcileInterval) // passes that must change nothing
	if wrong := streamsHold(t, js, want)(); wrong != "" {
		t.Errorf("later passes: %s", wrong)
	}
	if more, err := live.Fetch(10, jetstream.FetchMaxWait(200*time.Millisecond)); err == nil {
		for m := range more.Messages() {
			t.Errorf("the live consumer got message %s again", m.Headers().Get(nats.MsgIdHdr))
		}
	}
	slices.SortFunc(got, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	slices.SortFunc(lost, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if fmt.Sprint(got) != fmt.Sprint(lost) {
		t.Errorf("the live consumer got %v again, want the lost %v once each", got, lost)
	}
	if n := reconciled(t, relays, events.EventsStream); n != 3 {
		t.Errorf("reconciled{%s} = %v, want 3", events.EventsStream, n)
	}
	if n := reconciled(t, relays, events.NotificationsStream); n != 1 {
		t.Errorf("reconciled{%s} = %v, want 1", events.NotificationsStream, n)
	}

	// An event published again and lost again comes back again.
	deleteBehindItsBack(t, pool, js, ids[kept[1]][1], false)
	waitUntil(t, "reconcile again", func() string {
		if n := reconciled(t, relays, events.EventsStream); n != 4 {
			return fmt.Sprintf("reconciled{%s} = %v, want 4", events.EventsStream, n)
		}
		return streamsHold(t, js, want)()
	})
}

// A stream deleted while the relay runs (it makes it again), or deleted
// and made again by someone else with other messages at the sequences of
// the relay's (JetStream numbers a new stream from 1 again), gets every
// event again, once.
func TestReconcilerPublishesAgainTheEventsOfAStreamMadeAfresh(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		others int // messages on the stream made again, before the relay starts; -1: deleted after
	}{
		{"deleted while the relay runs", -1},
		{"made again with other messages", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, js := newBus(t)
			ctx := context.Background()
			writeEvents(t, pool, customersN(3), 2)
			quiet := newRelay(t, pool, js)
			quiet.cfg.ReconcileInterval = time.Hour
			runUntilSent(t, pool, quiet)
			var want []uuid.UUID
			for _, e := range readStream(t, js, events.EventsStream) {
				want = append(want, uuid.MustParse(e.ID()))
			}

			if tc.others >= 0 {
				if err := js.DeleteStream(ctx, events.EventsStream); err != nil {
					t.Fatal(err)
				}
				if err := events.EnsureStreams(ctx, js, events.StreamOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			want = append(want, publishOthers(t, js, max(tc.others, 0))...)
			r := newRelay(t, pool, js)
			r.clockSkew = 0 // only the stream's creation makes the relay read its messages
			t.Cleanup(startRelays(t, r))
			if tc.others < 0 {
				// Once the relay is under way: a deletion while it starts,
				// and makes or updates the stream, may leave JetStream with
				// a stream that neither acks nor delivers (it did in 2 runs of 15).
				want = append(want, writeEventOf(t, pool, events.CustomerUpdated, uuid.Must(uuid.NewV7()), 1, false))
				waitUntilSent(t, pool)
				if err := js.DeleteStream(ctx, events.EventsStream); err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, "reconcile", streamsHold(t, js, want))
			time.Sleep(10 * r.cfg.ReconcileInterval)
			if wrong := streamsHold(t, js, want)(); wrong != "" {
				t.Errorf("later passes: %s", wrong)
			}
		})
	}
}

// The deployed NATS configuration lets the relay's user reconcile: read a
// stream's state and its messages (to check their ids), and publish again.
func TestDeployNATSConfigLetsTheRelayReconcile(t *testing.T) {
	srv := natstest.Deploy(t, "../../deploy/nats/nats.conf")
	pool, _ := dbtest.New(t)
	writeEvents(t, pool, customersN(2), 2)
	r := New(pool, srv.JetStreamAs("relay"), zaptest.NewLogger(t), prometheus.NewRegistry(), Config{
		PollInterval: 50 * time.Millisecond, PublishTimeout: time.Second, ReconcileInterval: 50 * time.Millisecond,
	}) // the clocks are not trusted: every message's id is checked
	t.Cleanup(startRelays(t, r))
	waitUntil(t, "publish", allSent(t, pool))
	admin := srv.JetStreamAs("admin")
	var want []uuid.UUID
	for _, e := range readStream(t, admin, events.EventsStream) {
		want = append(want, uuid.MustParse(e.ID()))
	}
	var lost uuid.UUID
	if err := pool.QueryRow(context.Background(), `SELECT event_id FROM event_log ORDER BY outbox_id LIMIT 1`).Scan(&lost); err != nil {
		t.Fatal(err)
	}
	deleteBehindItsBack(t, pool, admin, lost, false)
	waitUntil(t, "reconcile", func() string {
		if n := counterValue(t, r.metrics.reconcileFailures); n > 0 {
			t.Fatalf("%v reconciliation passes failed", n)
		}
		return streamsHold(t, admin, want)()
	})
}

// Messages published in a stream's first minute (clocks may differ by that
// much) are read one by one to tell them from an earlier stream's: once per
// message while the stream is the same, not on every pass; and a stream
// made again after that, with other messages at those sequences, is read
// again and gets its events back.
func TestReconcilerReadsAMessageOnceWhileItsStreamIsTheSame(t *testing.T) {
	t.Parallel()
	pool, js := newBus(t)
	ctx := context.Background()
	writeEvents(t, pool, customersN(3), 2)
	r := newRelay(t, pool, js) // the streams are new: every message is read
	var passes atomic.Int64
	r.pause = func(at string) {
		if at == "reconcile" {
			passes.Add(1)
		}
	}
	t.Cleanup(startRelays(t, r))
	waitUntilSent(t, pool)
	var want []uuid.UUID
	for _, e := range readStream(t, js, events.EventsStream) {
		want = append(want, uuid.MustParse(e.ID()))
	}
	// What the relay's connection sends once every event is sent: the
	// passes' requests.
	requests := func() uint64 { return js.Conn().Stats().OutMsgs }
	waitUntil(t, "a pass", func() string {
		if passes.Load() < 2 {
			return "fewer than 2 passes"
		}
		return ""
	})
	sent, from := requests(), passes.Load()
	time.Sleep(40 * r.cfg.ReconcileInterval)
	n := passes.Load() - from
	// A pass reads each stream's state (2 requests); reading the 6 messages
	// again would be 6 more.
	if got := requests() - sent; n < 10 || got > uint64(3*n) {
		t.Errorf("%d passes sent %d requests to JetStream; want at most 3 a pass, with no message read again", n, got)
	}

	if err := js.DeleteStream(ctx, events.EventsStream); err != nil {
		t.Fatal(err)
	}
	if err := events.EnsureStreams(ctx, js, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	want = append(want, publishOthers(t, js, 3)...)
	waitUntil(t, "reconcile the stream made again", streamsHold(t, js, want))
}

// publishOthers publishes n events of someone else's straight to the
// events stream, and returns their ids.
func publishOthers(t *testing.T, js jetstream.JetStream, n int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for range n {
		e := newEvent(t, events.CustomerCreated, uuid.Must(uuid.NewV7()), 1)
		msg, err := events.ToMsg(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, uuid.MustParse(e.ID()))
	}
	return ids
}
