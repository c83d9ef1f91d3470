package customers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/customers/internal/bus"
	"github.com/customerbus/customerbus/services/relay"
)

// The NATS configuration shipped in deploy/, run with the whole loop: the
// integrator ERP (an account of its own) publishes commands and calls one,
// and reads the results from its durable consumer on the events. The
// events name the account NATS proved as the actor, whatever the
// integrator claims; an app may not publish commands and the integrator
// may not read notifications or make consumers of its own.
func TestDeployNATSConfigForCommands(t *testing.T) {
	srv := natstest.Deploy(t, "../../deploy/nats/nats.conf")
	connect, jsAs := srv.ConnectAs, srv.JetStreamAs
	ctx := context.Background()
	pool, _ := dbtest.New(t) // closed after the services below stop
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(runCtx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	log := zaptest.NewLogger(t)
	rl := relay.New(pool, jsAs("relay"), log, prometheus.NewRegistry(), relay.Config{PollInterval: 50 * time.Millisecond, PublishTimeout: time.Second})
	run("relay", rl.Run)
	svc := customers.New(pool, log, prometheus.NewRegistry(), customers.Config{})
	commandsJS := jsAs("customers")
	run("commands", func(ctx context.Context) error { return svc.RunCommands(ctx, commandsJS) })

	// An operator makes the integrator's consumer, named after its account.
	admin := jsAs("admin")
	retry(t, func() error {
		_, err := admin.CreateOrUpdateConsumer(ctx, events.EventsStream, jetstream.ConsumerConfig{
			Durable: "ERP", AckPolicy: jetstream.AckExplicitPolicy,
		})
		return err // until the relay has made the stream
	})

	erp := connect("erp")
	erpJS, err := jetstream.New(erp)
	if err != nil {
		t.Fatal(err)
	}
	// The commands: one as the contract says, one on a subject claiming
	// another integrator's account, one request claiming another account in
	// the header the server sets.
	createdEmail := "erp-" + randomSuffix() + "@example.com"
	created := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": createdEmail})
	retry(t, func() error { _, err := erpJS.PublishMsg(ctx, created); return err }) // until the stream is made
	forged := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": "crm-" + randomSuffix() + "@example.com"})
	forged.Subject = events.CommandsFromPrefix + "CRM." + events.CmdCustomerCreate
	if _, err := erpJS.PublishMsg(ctx, forged); err != nil {
		t.Fatal(err)
	}
	rpc := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": "erp-rpc-" + randomSuffix() + "@example.com"})
	rpc.Subject = bus.RPCSubjectPrefix + events.CmdCustomerCreate
	rpc.Header.Set("Nats-Request-Info", `{"acc":"CRM"}`)
	reply, err := erp.RequestMsg(rpc, 5*time.Second)
	if err != nil || reply.Header.Get("Nats-Service-Error-Code") != "" {
		t.Fatalf("the integrator's request: %v %v", err, reply)
	}

	// It can see the service as `nats micro info customerbus` does.
	info, err := erp.Request("$SRV.INFO."+bus.RPCServiceName, nil, 5*time.Second)
	if err != nil || !strings.Contains(string(info.Data), bus.RPCSubjectPrefix+events.CmdCustomerCreate) {
		t.Errorf("the integrator's $SRV.INFO: %v %v", err, info)
	}

	// The integrator reads the results from its consumer.
	erpEvents, err := jetstream.NewWithAPIPrefix(erp, "customerbus.jsapi")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := erpEvents.Consumer(ctx, events.EventsStream, "ERP")
	if err != nil {
		t.Fatalf("the integrator's consumer: %v", err)
	}
	results := map[string]cloudevents.Event{} // by causationid
	deadline := time.Now().Add(10 * time.Second)
	for len(results) < 3 && time.Now().Before(deadline) {
		batch, err := cons.Fetch(3, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			e, err := events.FromMsg(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			if err != nil {
				t.Fatal(err)
			}
			results[ext(e, "causationid")] = e
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("the integrator's ack: %v", err)
			}
		}
	}
	for _, c := range []struct {
		msg  *nats.Msg
		want string
	}{{created, events.CustomerCreated}, {rpc, events.CustomerCreated}, {forged, events.CommandRejected}} {
		e, ok := results[c.msg.Header.Get("ce-id")]
		if !ok {
			t.Errorf("no result for the command on %s", c.msg.Subject)
			continue
		}
		if e.Type() != c.want || ext(e, "authtype") != "service_account" || ext(e, "authid") != "ERP" {
			t.Errorf("command on %s: %s by %s %q, want %s by service_account ERP", c.msg.Subject, e.Type(), ext(e, "authtype"), ext(e, "authid"), c.want)
		}
	}
	if e, ok := results[forged.Header.Get("ce-id")]; ok {
		var data events.CommandRejectedData
		if err := json.Unmarshal(e.Data(), &data); err != nil || len(data.Error.Errors) != 1 || data.Error.Errors[0].Field != "subject" {
			t.Errorf("the forged command's rejection: %s", e.Data())
		}
	}
	if n := countRows(t, pool, `SELECT count(*) FROM customers`); n != 2 {
		t.Errorf("%d customers, want the 2 of the commands that named no other account", n)
	}

	// An erasure under these permissions: the command service moves a broken
	// command to its dead-letter stream, and the relay erases the customer's
	// messages from every stream, that one included.
	var id string
	if err := pool.QueryRow(ctx, `SELECT id::text FROM customers WHERE email = $1`, createdEmail).Scan(&id); err != nil {
		t.Fatal(err)
	}
	broken := nats.NewMsg(events.CommandSubject(events.CmdCustomerUpdate))
	broken.Header.Set("ce-id", randomSuffix())
	broken.Data = []byte(`{"id": "` + id + `"`)
	if _, err := erpJS.PublishMsg(ctx, broken); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); countRows(t, pool, `SELECT count(*) FROM processed_commands`) < 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the broken command was not processed")
		}
	}
	api := httptest.NewServer(svc.Handler())
	defer api.Close()
	token, err := customers.CreateToken(ctx, pool, "staff", false, customers.Permissions)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, api.URL+"/v1/customers/"+id+"/anonymize", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("anonymize: %v %v", err, resp)
	}
	var erased int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := pool.QueryRow(ctx, `SELECT messages_erased FROM erasures WHERE customer_id = $1 AND erased_at IS NOT NULL`, id).Scan(&erased)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not erase the customer: %v", err)
		}
	}
	// customer.created, the command that made it, the broken one's dead letter.
	if erased < 3 {
		t.Errorf("the relay erased %d messages, want at least 3", erased)
	}

	// The command service's duplicate finder reads the events as its own
	// consumer: the anonymization's event, at least, was handled.
	retry(t, func() error {
		info, err := admin.Consumer(ctx, events.EventsStream, bus.DuplicatesConsumer)
		if err == nil && info.CachedInfo().AckFloor.Consumer == 0 {
			err = fmt.Errorf("the duplicate finder acknowledged nothing: %+v", info.CachedInfo())
		}
		return err
	})

	// What the integrator and the app may not do. (The consumer API beyond
	// its own consumer has no responders in the integrator's account.)
	if _, err := erpEvents.CreateOrUpdateConsumer(ctx, events.EventsStream, jetstream.ConsumerConfig{Durable: "ERP2"}); err == nil {
		t.Error("the integrator made a consumer")
	}
	if _, err := erpEvents.Consumer(ctx, events.EventsStream, "OTHER"); err == nil {
		t.Error("the integrator read another consumer")
	}
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
	if r := srv.Refusals("app"); len(r) != 1 || !strings.Contains(r[0], "Publish") {
		t.Errorf("the app's command: refusals %v, want one for the publish", r)
	}
	if r := srv.Refusals("erp"); len(r) != 1 || !strings.Contains(r[0], "Subscription") {
		t.Errorf("the integrator's subscription to notifications: refusals %v, want one", r)
	}
	for _, user := range []string{"relay", "customers", "admin"} {
		if r := srv.Refusals(user); len(r) != 0 {
			t.Errorf("%s was refused: %v", user, r)
		}
	}
}

// retry calls f until it succeeds, for at most 10 s.
func retry(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
