package relay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
)

// maxFailover is the longest the events stream may go without a new event
// while the relay has events to publish and one node of three is lost.
const maxFailover = 5 * time.Second

// The relay publishes a steady stream of events through the node that
// leads the events stream (replicated three times), and that node goes
// just after JetStream stored a batch, before the relay could mark it
// sent: the relay reconnects to another node, a replica takes over the
// stream and drops the batch when it comes again, every event committed to
// the outbox is in the stream exactly once, and the stream goes no longer
// than maxFailover without a new event.
func TestRelayLosingTheStreamLeadersNodePublishesEveryEventOnceAndGoesOnWithinSeconds(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	cluster := natstest.NewCluster(t, 3)
	ctx := context.Background()
	setup := cluster.JetStream(0)
	cluster.Settle("streams", func(ctx context.Context) error {
		return events.EnsureStreams(ctx, setup, events.StreamOptions{Replicas: 3})
	})
	leader := cluster.StreamLeader(natstest.GlobalAccount, events.EventsStream)
	survivor := (leader + 1) % 3

	// The relay's connection is to the leader's node, so it loses both.
	js := cluster.JetStream(leader)
	r := New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(), Config{
		BatchSize: 50, PollInterval: 20 * time.Millisecond, PublishTimeout: time.Second, StreamReplicas: 3,
	})
	var kill atomic.Bool
	lost := make(chan time.Time, 1)
	r.beforeMarkSent = func() error {
		if !kill.CompareAndSwap(true, false) {
			return nil
		}
		at := time.Now()
		cluster.Shutdown(leader)
		lost <- at
		return errors.New("the node went before its acks came back")
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()

	reader := cluster.JetStream(survivor)
	stored := func() uint64 {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		st, err := reader.Stream(ctx, events.EventsStream)
		if err != nil {
			return 0 // no leader at the moment
		}
		return st.CachedInfo().State.Msgs
	}
	// Events are committed one by one all along: before the loss, until a
	// hundred are in the stream, and for a second after it.
	var asked bool
	var killed time.Time
	for i, start := 0, time.Now(); killed.IsZero() || time.Since(killed) < time.Second; i++ {
		if killed.IsZero() && time.Since(start) > 20*time.Second {
			t.Fatalf("the leader's node not lost within 20 s (%d events in the stream)", stored())
		}
		writeEvent(t, pool, uuid.Must(uuid.NewV7()), 1, false)
		if !asked && i%10 == 0 && stored() >= 100 {
			asked = true
			kill.Store(true) // at the relay's next batch
		}
		select {
		case killed = <-lost:
		default:
		}
		time.Sleep(2 * time.Millisecond)
	}
	waitUntilSent(t, pool)

	storedAt := storedOnceEach(t, pool, reader)
	var longest time.Duration
	var resumed time.Time // the first event stored after the loss
	for i, at := range storedAt {
		if i > 0 {
			longest = max(longest, at.Sub(storedAt[i-1]))
		}
		if resumed.IsZero() && at.After(killed) {
			resumed = at
		}
	}
	t.Logf("%d events; node %d, the stream's leader, lost: the first new event stored %s after, the longest the stream went without one %s",
		len(storedAt), leader, resumed.Sub(killed), longest)
	if resumed.IsZero() || longest > maxFailover {
		t.Errorf("the stream went %s without an event (want at most %s); first event after the loss at %s",
			longest, maxFailover, resumed)
	}
}
