package customers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/customers"
)

// The NATS configuration shipped in deploy/: the command service's user can
// consume commands and serve them as requests; an integrator may publish
// commands and call them, but not read notifications; an app may not
// publish commands.
func TestDeployNATSConfigForCommands(t *testing.T) {
	srv := natstest.Deploy(t, "../../deploy/nats/nats.conf")
	var mu sync.Mutex
	violations := map[string][]string{}
	connect := func(user string) *nats.Conn {
		return srv.ConnectAs(user, func(err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				mu.Lock()
				violations[user] = append(violations[user], err.Error())
				mu.Unlock()
			}
		})
	}
	ctx := context.Background()
	relay, err := jetstream.New(connect("relay"))
	if err != nil {
		t.Fatal(err)
	}
	if err := events.EnsureStreams(ctx, relay, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}

	pool, _ := dbtest.New(t)
	svc := customers.New(pool, zaptest.NewLogger(t), prometheus.NewRegistry(), customers.Config{})
	js, err := jetstream.New(connect("customers"))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.RunCommands(runCtx, js) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("commands: %v", err)
		}
	})

	// The integrator publishes a command to the stream and calls one.
	erp := connect("erp")
	erpJS, err := jetstream.New(erp)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(js jetstream.JetStream, email string) error {
		msg := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": email})
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		for { // the stream appears when the command service has started
			_, err := js.PublishMsg(short, msg)
			if err == nil || short.Err() != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := publish(erpJS, "erp-"+randomSuffix()+"@example.com"); err != nil {
		t.Fatalf("the integrator could not publish a command: %v", err)
	}
	rpc := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": "erp-rpc-" + randomSuffix() + "@example.com"})
	rpc.Subject = customers.RPCSubjectPrefix + events.CmdCustomerCreate
	reply, err := erp.RequestMsg(rpc, 5*time.Second)
	if err != nil || reply.Header.Get("Nats-Service-Error-Code") != "" {
		t.Fatalf("the integrator's request: %v %v", err, reply)
	}
	deadline := time.Now().Add(10 * time.Second)
	for countRows(t, pool, `SELECT count(*) FROM customers`) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the command service user did not apply the integrator's commands")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// An app may not publish commands; the integrator may not read
	// notifications.
	app := connect("app")
	if err := app.Publish(events.CommandSubject(events.CmdCustomerCreate), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := erp.SubscribeSync(events.NotificationsSubjectPrefix + ">"); err != nil {
		t.Fatal(err)
	}
	_ = app.Flush()
	_ = erp.Flush()
	time.Sleep(100 * time.Millisecond) // refusals arrive asynchronously
	mu.Lock()
	defer mu.Unlock()
	if len(violations["app"]) != 1 || !strings.Contains(violations["app"][0], "Publish") {
		t.Errorf("the app's command: refusals %v, want one for the publish", violations["app"])
	}
	if len(violations["erp"]) != 1 || !strings.Contains(violations["erp"][0], "Subscription") {
		t.Errorf("the integrator's subscription to notifications: refusals %v, want one", violations["erp"])
	}
	if len(violations["customers"]) != 0 {
		t.Errorf("the command service was refused: %v", violations["customers"])
	}
}
