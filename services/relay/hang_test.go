package relay

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/events"
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
		{"before publishing", func(r *Relay, hang func()) { r.beforePublish = hang }},
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
	resumeOnce := func() {
		select {
		case <-resume:
		default:
			close(resume)
		}
	}
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
