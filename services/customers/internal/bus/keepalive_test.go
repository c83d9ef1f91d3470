package bus

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fakeMsg stands for a delivered message; inHand only tells them apart.
type fakeMsg struct{ jetstream.Msg }

// The commands in hand are kept alive while the reader pulls, and given up
// once it has stopped pulling for the limit: for a while when a message
// holds its loop up, for good once it drains, whatever the loop does then.
func TestInHandKeepsCommandsAliveOnlyWhileTheReaderPulls(t *testing.T) {
	h := newInHand()
	msg := &fakeMsg{}
	h.hold(msg)
	due := func(stallLimit time.Duration) int { return len(h.due(0, stallLimit)) }
	if n := len(h.due(time.Hour, time.Hour)); n != 0 {
		t.Errorf("%d due just after delivery, want none", n)
	}
	steps := []struct {
		name       string
		do         func()
		stallLimit time.Duration
		want       int
	}{
		{"pulling", func() {}, 0, 1},
		{"held up within the limit", h.away, time.Hour, 1},
		{"held up past the limit", func() {}, 0, 0},
		{"pulling again", h.back, 0, 1},
		{"draining", h.drain, 0, 0},
		{"draining, the loop back in Next", h.back, 0, 0},
		{"answered", func() { h.release([]command{{msg: msg}}) }, time.Hour, 0},
	}
	for _, s := range steps {
		s.do()
		if n := due(s.stallLimit); n != s.want {
			t.Errorf("%s: %d due, want %d", s.name, n, s.want)
		}
	}
}
