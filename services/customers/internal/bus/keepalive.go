package bus

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// inHand is the commands JetStream delivered to this instance that it has
// not answered yet, and when JetStream last heard of each. keepAlive tells
// JetStream that those still waiting on a lane or being applied are in
// hand, so that a batch may take longer than AckWait (retried while the
// database is down, or applied by a slow instance) and AckWait can be short:
// the commands of a reader that died come back within it.
//
// It does so only while the reader pulls, which keeps its pin. One that has
// stopped pulling (it drains, or a message holds its loop up) keeps its
// commands for pinMargin/2 at most, so that they are due again before its
// pin can pass to another instance, which then gets them before newer ones.
type inHand struct {
	mu      sync.Mutex
	touched map[jetstream.Msg]time.Time
	// stalledSince is since when the reader has not been pulling: zero
	// while its loop waits in Next, which pulls.
	stalledSince time.Time
	draining     bool
}

func newInHand() *inHand { return &inHand{touched: map[jetstream.Msg]time.Time{}} }

// hold adds a command's message as it is delivered.
func (h *inHand) hold(msg jetstream.Msg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.touched[msg] = time.Now()
}

// release drops the commands of a batch once they are answered (acked,
// terminated or given back).
func (h *inHand) release(batch []command) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range batch {
		delete(h.touched, c.msg)
	}
}

// away marks the reader's loop out of Next with a message; back, in it
// again.
func (h *inHand) away() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stalledSince.IsZero() {
		h.stalledSince = time.Now()
	}
}

func (h *inHand) back() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.draining {
		h.stalledSince = time.Time{}
	}
}

// drain marks the reader stopped for good.
func (h *inHand) drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stalledSince.IsZero() {
		h.stalledSince = time.Now()
	}
	h.draining = true
}

// due returns the messages JetStream has not heard of for every, and notes
// them heard of now; none once the reader has not pulled for stallLimit.
func (h *inHand) due(every, stallLimit time.Duration) []jetstream.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if !h.stalledSince.IsZero() && now.Sub(h.stalledSince) >= stallLimit {
		return nil
	}
	var out []jetstream.Msg
	for msg, at := range h.touched {
		if now.Sub(at) >= every {
			h.touched[msg] = now
			out = append(out, msg)
		}
	}
	return out
}

// keepAlive tells JetStream, every AckWait/4 until ctx ends, that the
// commands in hand are being worked on: it hears of each at least every
// AckWait/2, well before AckWait.
func (b *Bus) keepAlive(ctx context.Context, h *inHand) {
	every := max(b.cfg.AckWait/4, 10*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, msg := range h.due(every, b.cfg.pinMargin()/2) {
			_ = msg.InProgress() // an error: answered meanwhile, or NATS is away and cannot hear it
		}
	}
}
