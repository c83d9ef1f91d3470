package notifier

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/notifier/smtptest"
)

// TestDeployNATSConfigLetsTheNotifierWorkAndKeepsAppsOut runs the NATS
// configuration shipped in deploy/ and proves its users' permissions: the
// notifier user can consume notifications and dead-letter them, and the app
// user can read neither notifications nor dead letters.
func TestDeployNATSConfigLetsTheNotifierWorkAndKeepsAppsOut(t *testing.T) {
	srv := natstest.Deploy(t, "../../deploy/nats/nats.conf")
	connect := srv.JetStreamAs
	ctx := context.Background()

	relayJS := connect("relay")
	if err := events.EnsureStreams(ctx, relayJS, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	pool, _ := dbtest.New(t)
	smtpSrv := smtptest.New(t)
	n, err := New(pool, connect("notifier"), zaptest.NewLogger(t), prometheus.NewRegistry(), Config{
		SMTPURL: smtpSrv.URL(), SMTPTLS: "opportunistic", MailFrom: "shop@example.com", RetryBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &bus{t: t, js: relayJS, smtp: smtpSrv, n: n}
	b.run()
	b.publish(events.CustomerVerificationRequested, notification("ann@example.com", "en"))
	b.publishMsg(&nats.Msg{Subject: events.NotificationsSubjectPrefix + "customer.nonsense", Data: []byte("{}")})
	smtpSrv.WaitMails(1)
	deadline := time.Now().Add(10 * time.Second)
	for b.counter(reasonInvalid) != 1 { // counted once JetStream stored the dead letter
		if time.Now().After(deadline) {
			t.Fatal("the notifier user could not dead-letter")
		}
		time.Sleep(10 * time.Millisecond)
	}

	appJS := connect("app")
	for _, stream := range []string{events.NotificationsStream, DeadLetterStream} {
		// A refused request gets no answer, so a short wait is enough.
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := appJS.CreateOrUpdateConsumer(short, stream, jetstream.ConsumerConfig{Durable: "app"})
		cancel()
		if err == nil {
			t.Errorf("the app user made a consumer on %s", stream)
		}
	}
	for _, subject := range []string{events.NotificationsSubjectPrefix + ">", DeadLetterSubjectPrefix + ">"} {
		if _, err := appJS.Conn().SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
	}
	if err := appJS.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the server's refusals arrive asynchronously
	violations := 0
	for _, r := range srv.Refusals("app") {
		if strings.Contains(r, "for Subscription") {
			violations++
		}
	}
	if violations != 2 {
		t.Errorf("app subscriptions to notifications and dead letters: %d refused, want 2 (refusals %v)", violations, srv.Refusals("app"))
	}
}
