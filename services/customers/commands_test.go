package customers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/customers/internal/bus"
)

// runCommands runs the system's command consumer until the test ends.
func (s *system) runCommands() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.svc.RunCommands(ctx, s.js) }()
	s.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("commands: %v", err)
		}
	})
}

// command publishes a command as an integrator would (CloudEvents NATS
// binding) and returns its id ("" makes a new one). Each publication has
// its own Nats-Msg-Id: a re-publication, not a JetStream duplicate.
func (s *system) command(id, typ string, data any) string {
	s.t.Helper()
	msg := commandMsg(s.t, typ, data)
	if id != "" {
		msg.Header.Set("ce-id", id)
	}
	if _, err := s.js.PublishMsg(context.Background(), msg); err != nil {
		s.t.Fatal(err)
	}
	return msg.Header.Get("ce-id")
}

// commandMsg is a command's CloudEvent as a NATS message on its subject.
func commandMsg(t testing.TB, typ string, data any) *nats.Msg {
	t.Helper()
	e := cloudevents.NewEvent()
	e.SetID(uuid.NewString())
	e.SetType(typ)
	e.SetSource("/erp")
	e.SetTime(time.Now())
	if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
		t.Fatal(err)
	}
	// Binary mode, as the Go example of docs/integrators.md writes commands with sdk-go's
	// JetStream binding (structured mode is read as well).
	var body bytes.Buffer
	header, err := cejs.WriteMsg(context.Background(), binding.ToMessage(&e), &body)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: events.CommandSubject(typ), Header: header, Data: body.Bytes()}
	msg.Header.Set(nats.MsgIdHdr, uuid.NewString())
	return msg
}

// commandReply waits until the command is applied and decodes its reply
// into out.
func (s *system) commandReply(id string, out any) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var outcome string
		var reply []byte
		err := s.pool.QueryRow(context.Background(),
			`SELECT outcome, reply FROM processed_commands WHERE command_id = $1`, id).Scan(&outcome, &reply)
		switch {
		case err == nil && outcome != "applied":
			s.t.Fatalf("command %s: %s: %s", id, outcome, reply)
		case err == nil:
			if err := json.Unmarshal(reply, out); err != nil {
				s.t.Fatalf("command %s: decode reply %q: %v", id, reply, err)
			}
			return
		case !errors.Is(err, pgx.ErrNoRows):
			s.t.Fatal(err)
		case time.Now().After(deadline):
			s.t.Fatalf("command %s was not applied within 20s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countRows runs a counting query.
func countRows(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Each command kind applied from the bus, through the same use cases as
// HTTP: its event carries causationid = the command's id.
func TestBusCommandsAreAppliedWithTheirEvents(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, retainOnDelete) // its deletion's event carries the email
	s.runCommands()
	g := s.createGroup("vip-" + randomSuffix())                                                    // event 1
	dup := s.createCustomer(map[string]any{"email": "bus-dup-" + randomSuffix() + "@example.com"}) // event 2: merged below
	email := "bus-" + randomSuffix() + "@example.com"
	steps := []struct {
		typ  string
		data func(customerID string) any
		want string // the public event; "" for none
	}{
		{events.CmdCustomerCreate, func(string) any { return map[string]any{"email": email, "first_name": "Ann"} }, events.CustomerCreated},
		{events.CmdCustomerUpdate, func(id string) any { return map[string]any{"id": id, "last_name": "Lee"} }, events.CustomerUpdated},
		{events.CmdCustomerMetadataUpdate, func(id string) any { return map[string]any{"id": id, "set": map[string]string{"tier": "gold"}} }, events.CustomerMetadataUpdated},
		{events.CmdCustomerPrivateMetadataUpdate, func(id string) any { return map[string]any{"id": id, "set": map[string]string{"risk": "low"}} }, ""},
		{events.CmdCustomerAddressCreate, func(id string) any { a := validAddress(); a["customer_id"] = id; return a }, events.CustomerAddressCreated},
		{events.CmdCustomerAddressUpdate, func(id string) any {
			var page struct{ Addresses []struct{ ID string } }
			s.do(http.MethodGet, "/v1/customers/"+id+"/addresses", nil, &page)
			return map[string]any{"customer_id": id, "address_id": page.Addresses[0].ID, "city": "Hamburg"}
		}, events.CustomerAddressUpdated},
		{events.CmdCustomerAddressDelete, func(id string) any {
			var page struct{ Addresses []struct{ ID string } }
			s.do(http.MethodGet, "/v1/customers/"+id+"/addresses", nil, &page)
			return map[string]any{"customer_id": id, "address_id": page.Addresses[0].ID}
		}, events.CustomerAddressDeleted},
		{events.CmdGroupCustomersAdd, func(id string) any { return map[string]any{"group_id": g.ID, "customer_ids": []string{id}} }, events.CustomerGroupCustomersAdded},
		{events.CmdGroupCustomersRemove, func(id string) any { return map[string]any{"group_id": g.ID, "customer_ids": []string{id}} }, events.CustomerGroupCustomersRemoved},
		{events.CmdOrderRecord, func(id string) any { return orderBody(&id, time.Now()) }, events.OrderRecorded},
		{events.CmdCustomerMerge, func(id string) any { return map[string]any{"id": id, "source_id": dup.ID} }, events.CustomerMerged},
		{events.CmdCustomerDelete, func(id string) any { return map[string]any{"id": id} }, events.CustomerDeleted},
	}
	if len(steps) != len(events.Commands) {
		t.Fatalf("%d steps for %d commands", len(steps), len(events.Commands))
	}
	n := 2
	var customerID string
	for _, st := range steps {
		cmd := s.command("", st.typ, st.data(customerID))
		if st.want != "" {
			n++
		}
		evs, _ := s.streamEvents(n)
		last := evs[n-1]
		if st.want == "" {
			if n := s.count(`SELECT count(*) FROM processed_commands WHERE command_id = $1 AND outcome = 'applied'`, cmd); n != 1 {
				t.Errorf("%s: not applied", st.typ)
			}
			continue
		}
		if last.Type() != st.want || ext(last, "causationid") != cmd || ext(last, "authid") != "/erp" {
			t.Errorf("%s: event %s causationid %q authid %q, want %s caused by %s", st.typ, last.Type(), ext(last, "causationid"), ext(last, "authid"), st.want, cmd)
		}
		if st.typ == events.CmdCustomerCreate {
			customerID = last.Subject()
		}
	}
}

// A command published twice changes nothing twice; a refused one gets
// command.rejected with the field errors HTTP gives; input that cannot be
// a command is dead-lettered and the consumer goes on.
func TestBusCommandsOnceRejectedOrDeadLettered(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	email := "twice-" + randomSuffix() + "@example.com"
	id := s.command("", events.CmdCustomerCreate, map[string]any{"email": email})
	s.command(id, events.CmdCustomerCreate, map[string]any{"email": email})
	evs, _ := s.streamEvents(1)
	if evs[0].Type() != events.CustomerCreated {
		t.Fatalf("event %s", evs[0].Type())
	}

	bad := s.command("", events.CmdCustomerCreate, map[string]any{"email": "not an email", "phone": "x"})
	evs, _ = s.streamEvents(2)
	rejected := evs[1]
	var d events.CommandRejectedData
	if err := rejected.DataAs(&d); err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, f := range d.Error.Errors {
		fields[f.Field] = f.Code
	}
	if rejected.Type() != events.CommandRejected || d.CommandID != bad || d.Command != events.CmdCustomerCreate || d.Error.Status != 400 ||
		fields["email"] != "invalid" || fields["phone"] != "invalid" || ext(rejected, "causationid") != bad {
		t.Errorf("rejection %s %+v", rejected.Type(), d)
	}
	if n := s.count(`SELECT count(*) FROM customers WHERE email = 'not an email'`); n != 0 {
		t.Errorf("a rejected command stored a customer")
	}

	// Poison: not a CloudEvent, an unknown command, data of the wrong shape.
	if _, err := s.js.Publish(context.Background(), events.CommandSubject(events.CmdCustomerCreate), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	unknown := s.command("", "customer.explode", map[string]any{})
	shape := s.command("", events.CmdCustomerUpdate, map[string]any{"id": 7})
	// Not a CloudEvent (no ce-type) but with an id: its sender hears of it.
	noType := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": "no-type-" + randomSuffix() + "@example.com"})
	noType.Header.Del("ce-type")
	if _, err := s.js.PublishMsg(context.Background(), noType); err != nil {
		t.Fatal(err)
	}
	// A type that cannot be part of the dead-letter subject.
	wildMsg := commandMsg(t, "customer.* >", map[string]any{})
	wildMsg.Subject = events.CommandSubject(events.CmdCustomerCreate)
	if _, err := s.js.PublishMsg(context.Background(), wildMsg); err != nil {
		t.Fatal(err)
	}
	wild := wildMsg.Header.Get("ce-id")
	// An id too long to keep: dead-lettered, with no one to answer; a
	// source too long to repeat in events: rejected.
	longID := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": "long-id-" + randomSuffix() + "@example.com"})
	longID.Header.Set("ce-id", strings.Repeat("i", 10_000))
	longSource := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": "long-source-" + randomSuffix() + "@example.com"})
	longSource.Header.Set("ce-source", "/"+strings.Repeat("s", 10_000))
	for _, m := range []*nats.Msg{longID, longSource} {
		if _, err := s.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	after := s.command("", events.CmdCustomerCreate, map[string]any{"email": "after-" + randomSuffix() + "@example.com"})
	evs, _ = s.streamEvents(8) // + 5 rejections and the created customer
	got := map[string]string{}
	for _, e := range evs[2:] {
		got[ext(e, "causationid")] = e.Type()
	}
	for _, id := range []string{unknown, shape, noType.Header.Get("ce-id"), wild, longSource.Header.Get("ce-id")} {
		if got[id] != events.CommandRejected {
			t.Errorf("command %s: %q, want command.rejected", id, got[id])
		}
	}
	if got[after] != events.CustomerCreated {
		t.Errorf("after the poison: %v", got)
	}
	reasons := s.deadLetters(7)
	if st, err := s.js.Stream(context.Background(), events.CommandsDeadLetterStream); err != nil || st.CachedInfo().Config.MaxAge != events.DefaultDeadLetterMaxAge {
		t.Errorf("dead-letter stream: %v, want max age %s", err, events.DefaultDeadLetterMaxAge)
	}
	for _, want := range []string{"not a CloudEvent", "unknown_command", "invalid_type", "malformed: not a CloudEvent"} {
		if !strings.Contains(strings.Join(reasons, "\n"), want) {
			t.Errorf("dead letters %q lack %q", reasons, want)
		}
	}
}

// A command too big to pass between instances (its data is sent base64 in
// JSON) is applied by the instance that read it: rejected here, not stuck.
func TestBusCommandTooBigToShareIsAppliedWhereRead(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	big := s.command("", events.CmdCustomerCreate, map[string]any{
		"email": "big-" + randomSuffix() + "@example.com", "note": strings.Repeat("n", 900_000),
	})
	evs, _ := s.streamEvents(1)
	var d events.CommandRejectedData
	if err := evs[0].DataAs(&d); err != nil || d.CommandID != big || len(d.Error.Errors) != 1 || d.Error.Errors[0].Field != "note" {
		t.Errorf("event %s %+v, want the rejection of the note", evs[0].Type(), d)
	}
}

// A message as big as NATS allows is still dead-lettered, without its
// data, which the dead-letter headers would push over the limit.
func TestBusCommandAtTheSizeLimitIsDeadLettered(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	retry(t, func() error { // until the service has made the stream
		_, err := s.js.Stream(context.Background(), events.CommandsStream)
		return err
	})
	limit := int(s.js.Conn().MaxPayload())
	msg := nats.NewMsg(events.CommandSubject(events.CmdCustomerCreate))
	msg.Data = []byte(strings.Repeat("x", limit-200))
	if _, err := s.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if reasons := s.deadLetters(1); !strings.Contains(reasons[0], "not a CloudEvent") {
		t.Errorf("dead letter %q", reasons[0])
	}
}

// deadLetters waits for n dead-lettered commands and returns their reasons.
func (s *system) deadLetters(n int) []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		st, err := s.js.Stream(ctx, events.CommandsDeadLetterStream)
		if err == nil {
			if info, err := st.Info(ctx); err == nil && info.State.Msgs >= uint64(n) {
				cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
				if err != nil {
					s.t.Fatal(err)
				}
				batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					s.t.Fatal(err)
				}
				var out []string
				for m := range batch.Messages() {
					out = append(out, m.Headers().Get(bus.DeadLetterReasonHeader))
				}
				return out
			}
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("fewer than %d dead letters after 10 s", n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// The commands as a NATS service: a request returns the created customer,
// a repeat returns the same reply, a refusal an error reply with the
// problem; the service is discoverable like any nats.go micro service.
func TestCommandsAsNATSService(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	nc := s.nats.Connect()
	request := func(id string, data any) *nats.Msg {
		t.Helper()
		e := cloudevents.NewEvent()
		e.SetID(id)
		e.SetType(events.CmdCustomerCreate)
		e.SetSource("/crm")
		if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
			t.Fatal(err)
		}
		msg, err := events.ToMsg(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		msg.Subject = bus.RPCSubjectPrefix + events.CmdCustomerCreate
		var reply *nats.Msg
		for range 50 { // the service may still be starting
			if reply, err = nc.RequestMsg(msg, 2*time.Second); err == nil {
				return reply
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("request: %v", err)
		return nil
	}
	email := "rpc-" + randomSuffix() + "@example.com"
	id := uuid.NewString()
	first := request(id, map[string]any{"email": email})
	var c customerJSON
	if err := json.Unmarshal(first.Data, &c); err != nil || c.Email != email || c.ID == "" || first.Header.Get("Nats-Service-Error-Code") != "" {
		t.Fatalf("reply %s (%v), want the created customer", first.Data, err)
	}
	if again := request(id, map[string]any{"email": email}); string(again.Data) != string(first.Data) {
		t.Errorf("repeated request got %s, want the first reply", again.Data)
	}
	if n := s.count(`SELECT count(*) FROM customers WHERE email = $1`, email); n != 1 {
		t.Errorf("%d customers, want 1", n)
	}
	bad := request(uuid.NewString(), map[string]any{"email": "nope"})
	var p problemJSON
	if err := json.Unmarshal(bad.Data, &p); err != nil || bad.Header.Get("Nats-Service-Error-Code") != "400" || len(p.Errors) == 0 || p.Errors[0].Field != "email" {
		t.Errorf("refusal: code %q body %s", bad.Header.Get("Nats-Service-Error-Code"), bad.Data)
	}

	info, err := nc.Request("$SRV.INFO."+bus.RPCServiceName, nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var svc struct {
		Name      string `json:"name"`
		Endpoints []struct {
			Subject string `json:"subject"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(info.Data, &svc); err != nil {
		t.Fatal(err)
	}
	subjects := map[string]bool{}
	for _, ep := range svc.Endpoints {
		subjects[ep.Subject] = true
	}
	for _, cmd := range events.Commands {
		if !subjects[bus.RPCSubjectPrefix+cmd] {
			t.Errorf("service %q lacks the endpoint for %s", svc.Name, cmd)
		}
	}

	// `nats micro stats customerbus`: the create endpoint counted the three
	// requests, one of them an error reply.
	reply, err := nc.Request("$SRV.STATS."+bus.RPCServiceName, nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats struct {
		Endpoints []struct {
			Subject  string `json:"subject"`
			Requests int    `json:"num_requests"`
			Errors   int    `json:"num_errors"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(reply.Data, &stats); err != nil {
		t.Fatal(err)
	}
	requests, errs := -1, -1
	for _, ep := range stats.Endpoints {
		if ep.Subject == bus.RPCSubjectPrefix+events.CmdCustomerCreate {
			requests, errs = ep.Requests, ep.Errors
		}
	}
	if requests != 3 || errs != 1 {
		t.Errorf("stats of the create endpoint: %d requests, %d errors; want 3 and 1", requests, errs)
	}
}

// Commands about one customer are applied in the order they were published,
// while commands about others run beside them.
func TestBusCommandsForOneCustomerKeepTheirOrder(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{"email": "ordered-" + randomSuffix() + "@example.com"})
	if err := events.EnsureCommandStreams(context.Background(), s.js, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		s.command("", events.CmdCustomerUpdate, map[string]any{"id": c.ID, "first_name": fmt.Sprintf("n%02d", i)})
		s.command("", events.CmdCustomerCreate, map[string]any{"email": fmt.Sprintf("other-%d-%s@example.com", i, randomSuffix())})
	}
	s.runCommands() // everything is waiting in the stream: the lanes run at once
	evs, _ := s.streamEvents(1 + 2*n)
	var names []string
	for _, e := range evs {
		if e.Type() != events.CustomerUpdated || e.Subject() != c.ID {
			continue
		}
		var d struct {
			FirstName string `json:"first_name"`
			Version   int64  `json:"version"`
		}
		if err := e.DataAs(&d); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("n%02d", len(names)); d.FirstName != want || d.Version != int64(len(names)+2) {
			t.Errorf("update %d: first_name %s version %d, want %s version %d", len(names), d.FirstName, d.Version, want, len(names)+2)
		}
		names = append(names, d.FirstName)
	}
	if len(names) != n {
		t.Errorf("%d updates, want %d", len(names), n)
	}
}

// instance is an instance of the command service on a NATS connection of
// its own.
type instance struct {
	reg     *prometheus.Registry
	nc      *nats.Conn
	stop    func() // stops it as a shutdown does: it drains and hands over
	crashed atomic.Bool
}

// startInstance runs an instance until the test ends.
func (s *system) startInstance() *instance {
	s.t.Helper()
	in := &instance{reg: prometheus.NewRegistry(), nc: s.nats.Connect()}
	js, err := jetstream.New(in.nc)
	if err != nil {
		s.t.Fatal(err)
	}
	// The pin is renewed every (8-2)/2 = 3 s, well within its 8 s even on
	// a loaded machine.
	cfg := customers.Config{Commands: bus.Config{AckWait: 2 * time.Second, PinnedTTL: 8 * time.Second, DrainTimeout: time.Second}}
	svc := customers.New(s.pool, zaptest.NewLogger(s.t), in.reg, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.RunCommands(ctx, js) }()
	var once sync.Once
	in.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !in.crashed.Load() {
				s.t.Errorf("instance: %v", err)
			}
		})
	}
	s.t.Cleanup(in.stop)
	return in
}

// crash cuts the instance off from NATS at once, as a killed process is:
// no drain, no hand-over; the commands it held come back after AckWait.
func (in *instance) crash() {
	in.crashed.Store(true)
	in.nc.Close()
}

// updatesInOrder publishes updates of one customer, each followed by a
// create of another, and checks that the updates were applied in order.
type updatesInOrder struct {
	s          *system
	customerID string
	published  int
	// mayRefuse lets an update be refused as out_of_order instead of
	// applied (after a crash), never applied out of order.
	mayRefuse bool
}

func (u *updatesInOrder) publish(n int) {
	for range n {
		u.s.command("", events.CmdCustomerUpdate, map[string]any{"id": u.customerID, "first_name": fmt.Sprintf("n%02d", u.published)})
		u.s.command("", events.CmdCustomerCreate, map[string]any{"email": fmt.Sprintf("other-%d-%s@example.com", u.published, randomSuffix())})
		u.published++
	}
}

// check waits for every event (the customer's creation first) and checks
// the updates' order.
func (u *updatesInOrder) check() {
	u.s.t.Helper()
	evs, _ := u.s.streamEvents(1 + 2*u.published)
	var names []string
	refused := 0
	for _, e := range evs {
		switch {
		case e.Type() == events.CustomerUpdated && e.Subject() == u.customerID:
			var d struct {
				FirstName string `json:"first_name"`
			}
			if err := e.DataAs(&d); err != nil {
				u.s.t.Fatal(err)
			}
			names = append(names, d.FirstName)
		case e.Type() == events.CommandRejected:
			var d events.CommandRejectedData
			if err := e.DataAs(&d); err != nil || len(d.Error.Errors) != 1 || d.Error.Errors[0].Code != bus.CodeOutOfOrder || !u.mayRefuse {
				u.s.t.Fatalf("unexpected rejection %+v", d)
			}
			refused++
		}
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		u.s.t.Fatalf("updates applied out of order: %v", names)
	}
	if len(names)+refused != u.published || (!u.mayRefuse && names[0] != "n00") {
		u.s.t.Errorf("%d updates applied and %d refused, want %d in all: %v", len(names), refused, u.published, names)
	}
}

// With two instances, one reads the commands (the pinned consumer) and both
// apply them, and one customer's commands keep their order; when the
// reading one stops, it hands over to the other at once.
func TestBusCommandsWithTwoInstances(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	u := &updatesInOrder{s: s, customerID: s.createCustomer(map[string]any{"email": "two-" + randomSuffix() + "@example.com"}).ID}
	first := s.startInstance()
	u.publish(10)
	u.check() // the first, alone, applied them
	second := s.startInstance()
	before := applied(t, first.reg)
	u.publish(30)
	u.check()
	if a, b := applied(t, first.reg)-before, applied(t, second.reg); a == 0 || b == 0 || a+b != 60 {
		t.Errorf("the first instance applied %d commands and the second %d, want both some of 60", a, b)
	}
	u.publish(5) // while the first stops
	first.stop()
	u.publish(5)
	u.check()
}

// When the reading instance crashes with commands in hand, JetStream
// delivers them again after AckWait, not always before newer ones: a
// command that comes back after a newer one about its customer was
// applied is refused as out_of_order, never applied out of order.
func TestBusCommandsKeepTheirOrderWhenTheReaderCrashes(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	u := &updatesInOrder{s: s, customerID: s.createCustomer(map[string]any{"email": "crash-" + randomSuffix() + "@example.com"}).ID, mayRefuse: true}
	first := s.startInstance()
	u.publish(5)
	u.check() // the first reads
	s.startInstance()
	u.publish(20)
	first.crash() // with some of them delivered to it, not yet applied
	u.publish(10)
	u.check()
}

// applied is how many commands an instance applied, from its metrics.
func applied(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "customerbus_commands_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "applied" {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	t.Fatal("no customerbus_commands_total{outcome=applied}")
	return 0
}

// A refusal raised by the database (a taken email) is a rejection like any
// other, not a failure retried forever.
func TestBusCommandRefusedByTheDatabaseIsRejected(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	taken := s.createCustomer(map[string]any{"email": "taken-" + randomSuffix() + "@example.com"})
	id := s.command("", events.CmdCustomerCreate, map[string]any{"email": taken.Email})
	evs, _ := s.streamEvents(2)
	var d events.CommandRejectedData
	if err := evs[1].DataAs(&d); err != nil {
		t.Fatal(err)
	}
	if evs[1].Type() != events.CommandRejected || d.CommandID != id || d.Error.Status != 409 || len(d.Error.Errors) == 0 || d.Error.Errors[0].Code != "unique" {
		t.Errorf("%s %+v, want command.rejected 409 unique", evs[1].Type(), d)
	}
}

// createOnLane publishes customer.create commands that all take one lane
// (the same partitionkey), and returns the command's id.
func (s *system) createOnLane(email string) string {
	s.t.Helper()
	msg := commandMsg(s.t, events.CmdCustomerCreate, map[string]any{"email": email})
	msg.Header.Set("ce-partitionkey", "one-lane")
	if _, err := s.js.PublishMsg(context.Background(), msg); err != nil {
		s.t.Fatal(err)
	}
	return msg.Header.Get("ce-id")
}

// A command whose data the database refuses in a way no rule foresaw (here
// a trigger raises a data exception) fails the same way however often it is
// tried: it is rejected with the server error HTTP would answer and
// dead-lettered, and the commands behind it on its lane go on.
func TestBusCommandTheDatabaseAlwaysFailsDoesNotHoldUpItsLane(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	if _, err := s.pool.Exec(context.Background(), `
		CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.email LIKE 'boom-%' THEN RAISE EXCEPTION 'boom' USING ERRCODE = '22023'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_boom BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION refuse_boom();`); err != nil {
		t.Fatal(err)
	}
	s.runCommands()
	boom := s.createOnLane("boom-" + randomSuffix() + "@example.com")
	next := s.createOnLane("next-" + randomSuffix() + "@example.com")
	evs, _ := s.streamEvents(2)
	var d events.CommandRejectedData
	if err := evs[0].DataAs(&d); err != nil || evs[0].Type() != events.CommandRejected || d.CommandID != boom || d.Error.Status != 500 {
		t.Errorf("first event %s %+v, want the rejection of %s with status 500", evs[0].Type(), d, boom)
	}
	if evs[1].Type() != events.CustomerCreated || ext(evs[1], "causationid") != next {
		t.Errorf("second event %s caused by %s, want customer.created by %s", evs[1].Type(), ext(evs[1], "causationid"), next)
	}
	if reasons := s.deadLetters(1); !strings.Contains(reasons[0], "the database refused it") {
		t.Errorf("dead letter %q", reasons[0])
	}
}

// A command whose id or partition key the database cannot store
// (invalid UTF-8, a NUL) is malformed: rejected when its id can be
// recorded, else dead-lettered only, and the commands behind it on its
// lane go on (found by FuzzReadCommand: the command's record failed its
// lane's transaction at every retry). The instance that applies it reads
// it as the one that read it from the stream did, invalid UTF-8 included.
func TestBusCommandWithUnstorableAttributesDoesNotHoldUpItsLane(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	var ids []string
	for _, attr := range []struct{ name, value string }{
		{"ce-id", "bad-\x00"}, {"ce-partitionkey", "one-lane\x00"}, {"ce-partitionkey", "one-lane\xe3"},
	} {
		msg := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": "bad-" + randomSuffix() + "@example.com"})
		msg.Header.Set("ce-partitionkey", "one-lane")
		msg.Header.Set(attr.name, attr.value)
		if _, err := s.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, msg.Header.Get("ce-id"))
	}
	next := s.createOnLane("next-" + randomSuffix() + "@example.com")
	evs, _ := s.streamEvents(3)
	got := map[string]string{}
	for _, e := range evs {
		got[ext(e, "causationid")] = e.Type()
	}
	if got[ids[1]] != events.CommandRejected || got[ids[2]] != events.CommandRejected || got[next] != events.CustomerCreated {
		t.Errorf("events by cause %v, want the rejections of %s and the creation by %s", got, ids[1:], next)
	}
	for _, reason := range s.deadLetters(3) {
		if !strings.Contains(reason, "valid UTF-8 without NUL") {
			t.Errorf("dead letter %q", reason)
		}
	}
}

// A failure that may pass (here the database drops the connection of a
// command's transaction) is retried in place: the command is applied once,
// and the command behind it on its lane does not overtake it.
func TestBusCommandRetriedInPlaceAfterALostConnection(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, func(c *customers.Config) { c.Commands.RetryDelay = 100 * time.Millisecond })
	s.slowCreates(time.Second)
	s.runCommands()
	slow := s.createOnLane("slow-" + randomSuffix() + "@example.com")
	// Once its insert sleeps, the connection running it is dropped.
	deadline := time.Now().Add(10 * time.Second)
	for s.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%INSERT INTO customers%' AND state = 'active' AND pid <> pg_backend_pid()`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow insert never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	next := s.createOnLane("next-" + randomSuffix() + "@example.com")
	if n := s.count(`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE '%INSERT INTO customers%' AND state = 'active' AND pid <> pg_backend_pid()) AS t`); n != 1 {
		t.Fatalf("%d connections dropped, want the slow one", n)
	}
	evs, _ := s.streamEvents(2)
	if ext(evs[0], "causationid") != slow || ext(evs[1], "causationid") != next {
		t.Errorf("events caused by %s then %s, want %s then %s", ext(evs[0], "causationid"), ext(evs[1], "causationid"), slow, next)
	}
	if n := s.count(`SELECT count(*) FROM customers`); n != 2 {
		t.Errorf("%d customers, want 2", n)
	}
}

// A command that takes longer than AckWait (its insert sleeps, as on a
// slow database) is kept in hand: JetStream delivers it once.
func TestBusCommandSlowerThanAckWaitIsDeliveredOnce(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, func(c *customers.Config) { c.Commands.AckWait = time.Second })
	s.slowCreates(1500 * time.Millisecond) // within the 2 s a lane waits for its batch
	s.runCommands()
	slow := s.createOnLane("slow-" + randomSuffix() + "@example.com")
	evs, _ := s.streamEvents(1)
	if ext(evs[0], "causationid") != slow {
		t.Errorf("event caused by %s, want %s", ext(evs[0], "causationid"), slow)
	}
	cons, err := s.js.Consumer(context.Background(), events.CommandsStream, events.CommandsConsumer)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.ConsumerInfo
	for deadline := time.Now().Add(10 * time.Second); info == nil || info.NumAckPending > 0; time.Sleep(20 * time.Millisecond) {
		if info, err = cons.Info(context.Background()); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the command was not acknowledged within 10 s")
		}
	}
	if info.Delivered.Consumer != 1 {
		t.Errorf("delivered %d times, want once", info.Delivered.Consumer)
	}
}

// A command's id is remembered for COMMANDS_RETENTION: the sweep forgets
// older ones (and their order keys), so a command published again after
// that is applied again, while a recent one is still recognised.
func TestSweepForgetsCommandsPastTheirRetention(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	c := s.createCustomer(map[string]any{"email": "swept-" + randomSuffix() + "@example.com"})
	old := s.command("", events.CmdCustomerUpdate, map[string]any{"id": c.ID, "first_name": "Old"})
	recent := s.command("", events.CmdCustomerUpdate, map[string]any{"id": c.ID, "first_name": "Recent"})
	s.streamEvents(3)
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `UPDATE processed_commands SET processed_at = now() - interval '31 days' WHERE command_id = $1`, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE command_order SET updated_at = now() - interval '31 days'`); err != nil {
		t.Fatal(err)
	}
	n, err := s.svc.SweepCommands(ctx)
	if err != nil || n != 1 {
		t.Fatalf("swept %d commands (%v), want 1", n, err)
	}
	s.command(old, events.CmdCustomerUpdate, map[string]any{"id": c.ID, "first_name": "Old"})
	s.command(recent, events.CmdCustomerUpdate, map[string]any{"id": c.ID, "first_name": "Recent"})
	evs, _ := s.streamEvents(4)
	if ext(evs[3], "causationid") != old {
		t.Errorf("fourth event caused by %s, want the forgotten command %s", ext(evs[3], "causationid"), old)
	}
	time.Sleep(300 * time.Millisecond) // the recent one, recognised, adds nothing
	if n := s.count(`SELECT count(*) FROM outbox`); n != 4 {
		t.Errorf("%d events, want 4", n)
	}
}

// A command that carries no trace context starts a trace, so every event it
// causes (its rejection too, and the events of a request) carries a W3C
// traceparent; a command that carries one keeps it.
func TestBusCommandsWithoutATraceStartOne(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	created := s.command("", events.CmdCustomerCreate, map[string]any{"email": "trace-" + randomSuffix() + "@example.com"})
	evs, _ := s.streamEvents(1)
	id := evs[0].Subject()

	traced := commandMsg(t, events.CmdCustomerUpdate, map[string]any{"id": id, "first_name": "Ann"})
	traced.Header.Set("ce-traceparent", trace)
	if _, err := s.js.PublishMsg(t.Context(), traced); err != nil {
		t.Fatal(err)
	}
	rejected := s.command("", events.CmdCustomerCreate, map[string]any{"email": "not an email"})
	rpc := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": "trace-rpc-" + randomSuffix() + "@example.com"})
	rpc.Subject = bus.RPCSubjectPrefix + events.CmdCustomerCreate
	retry(t, func() error { _, err := s.nats.Connect().RequestMsg(rpc, 2*time.Second); return err })

	evs, _ = s.streamEvents(4)
	byCause := map[string]string{}
	for _, e := range evs {
		byCause[ext(e, "causationid")] = ext(e, "traceparent")
	}
	for name, cause := range map[string]string{"create": created, "rejected": rejected, "request": rpc.Header.Get("ce-id")} {
		if tp := byCause[cause]; !events.ValidTraceParent(tp) || tp == trace {
			t.Errorf("%s: traceparent %q, want a new W3C trace", name, tp)
		}
	}
	if tp := byCause[traced.Header.Get("ce-id")]; tp != trace {
		t.Errorf("traced update: traceparent %q, want the command's %q", tp, trace)
	}
	if byCause[created] == byCause[rejected] {
		t.Errorf("two commands share the trace %s", byCause[created])
	}
}
