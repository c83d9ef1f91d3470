package notifier

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/notifier/smtptest"
)

// maxFailover is the longest an email may wait after the node leading the
// notifier's consumer vanished. No consumer can be served before the two
// nodes left elect a new leader, which JetStream's Raft does 4 to 9 s after
// it last heard of the old one; then the notifier's next pull finds it, one
// heartbeat check (2 s, see events.Messages) at most after.
const maxFailover = 9*time.Second + 2*time.Second + time.Second

// The streams have three replicas, and the notifier is connected to a node
// that survives. While it sends an email, and so has no pull request
// waiting, the node that leads its consumer vanishes: its next pull goes
// to a leader that is gone and is lost. A notification published just
// after is sent within maxFailover of the loss, and every email once.
func TestEmailAfterTheConsumerLeadersNodeVanishedMidSendGoesWithinSeconds(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.New(t)
	cluster := natstest.NewCluster(t, 3)
	ctx := context.Background()
	setup := cluster.JetStream(0)
	cluster.Settle("streams", func(ctx context.Context) error {
		return events.EnsureStreams(ctx, setup, events.StreamOptions{Replicas: 3})
	})
	b := &bus{t: t, pool: pool, js: setup, smtp: smtptest.New(t)}
	b.cfg = Config{SMTPURL: b.smtp.URL(), SMTPTLS: "opportunistic", SMTPTimeout: 2 * time.Second,
		MailFrom: "Shop <shop@example.com>", StreamReplicas: 3,
		// The first email's ack goes to the lost leader: it comes again soon,
		// and must find its email sent.
		AckWait: 2 * time.Second, ClaimTimeout: 5 * time.Second}
	// The consumer is made first, to know its leader.
	cluster.Settle("consumer", func(ctx context.Context) error {
		_, err := b.newNotifier().consumer(ctx)
		return err
	})
	leader := cluster.ConsumerLeader(natstest.GlobalAccount, events.NotificationsStream, ConsumerName)
	survivor, other := (leader+1)%3, (leader+2)%3
	b.js = cluster.JetStream(survivor)
	b.n = b.newNotifier()
	lost := make(chan time.Time, 1)
	var once sync.Once
	b.n.afterSend = func() error {
		once.Do(func() {
			at := time.Now()
			cluster.Vanish(leader)
			lost <- at
		})
		return nil
	}
	b.run()

	b.publish(events.CustomerVerificationRequested, notification("first@example.com", "en"))
	at := <-lost
	pub := cluster.JetStream(other)
	data := notification("ann@example.com", "en")
	msg := b.event(time.Now(), events.CustomerVerificationRequested, data)
	for { // the stream may be electing a leader too
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := pub.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			break
		}
		if time.Since(at) > maxFailover {
			t.Fatalf("publishing after the loss: %v", err)
		}
	}
	published := time.Since(at)
	// Far past maxFailover, so that a failure says how long it took.
	for !slices.Contains(recipients(b.smtp.Mails()), data.Email) && time.Since(at) < time.Minute {
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(at)
	t.Logf("node %d, the consumer's leader, vanished: the next notification published %s after, its email sent %s after",
		leader, published.Round(time.Millisecond), took.Round(time.Millisecond))
	if took > maxFailover {
		t.Errorf("email sent %s after the consumer leader's node vanished, want within %s", took.Round(time.Millisecond), maxFailover)
	}
	b.js = pub // waitIdle asks the stream and consumer
	b.waitIdle()
	if got := recipients(b.smtp.Mails()); len(got) != 2 || got[0] != data.Email || got[1] != "first@example.com" {
		t.Errorf("mails to %v, want one to %s and one to first@example.com", got, data.Email)
	}
}
