package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/relay"
)

// The fault tests run the real binary as child processes, on a database,
// a NATS server and a relay of the test's own, and kill them as the kernel
// does (SIGKILL: no drain, no hand-over, connections cut mid-way).

// takeoverGoal is how soon after an instance dies new work must flow again
// (issue 19).
const takeoverGoal = 5 * time.Second

// waitLimit is how long a test waits for what should come within
// takeoverGoal: beyond that, the figure of a failure says enough.
const waitLimit = 3 * takeoverGoal

// When the instance reading the bus commands is killed, another takes the
// reading over within takeoverGoal: the outcomes of the commands published
// after the kill are on the stream by then, and every command, those the
// killed one held included, is applied once, in order, with nothing lost
// or repeated.
func TestBusCommandsFlowAgainSoonAfterTheReaderIsKilled(t *testing.T) {
	s := newFaultSystem(t)
	a := s.startCustomers("A")
	cmds := &publishedCommands{s: s, customerID: s.createCustomer(a, "x-"+uuid.NewString()+"@example.com")}
	s.waitOutcomes(cmds.publish(5)) // A, alone, reads: it holds the pin
	s.startCustomers("B")
	s.waitConsumerWaiting(2) // B is waiting for the pin
	cmds.publish(10)
	held := s.commandsInHand()
	killed := time.Now()
	a.kill()
	if held == 0 {
		t.Fatal("A held no command when it was killed")
	}
	after := cmds.publish(5)

	took := s.waitOutcomes(after).Sub(killed)
	if took > takeoverGoal {
		t.Errorf("the outcomes of the commands published after the kill came %.1f s after it, want within %s", took.Seconds(), takeoverGoal)
	}
	t.Logf("A was killed holding %d commands; the outcomes of those published after came %.1f s after the kill", held, took.Seconds())
	cmds.checkAppliedOnce()
}

// When an instance is killed with creates in flight, each client's retry
// with the same Idempotency-Key on another instance is answered at once:
// with the first answer when the create had committed, else with a create
// made now, never 409 idempotency_key_in_use (the key's record commits with
// the change or not at all). Every customer exists once, with one
// customer.created.
func TestCreatesInFlightWhenAnInstanceIsKilledAreRetriedOnAnotherAtOnce(t *testing.T) {
	s := newFaultSystem(t)
	a, b := s.startCustomers("A"), s.startCustomers("B")
	type create struct {
		key, email string
		status     int
		answer     []byte
		err        error
	}
	var (
		mu      sync.Mutex
		creates []*create
		wg      sync.WaitGroup
	)
	answered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(creates)
	}
	// Clients create customers on A, each one after the other, until A is
	// gone: when it is killed, nearly every client has a create in flight.
	for range 8 {
		wg.Go(func() {
			for {
				c := &create{key: uuid.NewString(), email: "k-" + uuid.NewString() + "@example.com"}
				c.status, _, c.answer, c.err = a.post(s.token, "/v1/customers", c.key, map[string]any{"email": c.email})
				mu.Lock()
				creates = append(creates, c)
				mu.Unlock()
				if c.err != nil {
					return
				}
			}
		})
	}
	eventually(t, "40 creates answered", func(context.Context) bool { return answered() >= 40 })
	a.kill()
	wg.Wait()

	inFlight, committed := 0, 0
	var slowest time.Duration
	for _, c := range creates {
		if c.err == nil && c.status != http.StatusCreated {
			t.Fatalf("create on A: %d %s", c.status, c.answer)
		}
		if c.err != nil && !errors.Is(c.err, syscall.ECONNREFUSED) {
			inFlight++
		}
		start := time.Now()
		status, header, answer, err := b.post(s.token, "/v1/customers", c.key, map[string]any{"email": c.email})
		slowest = max(slowest, time.Since(start))
		switch {
		case err != nil || status != http.StatusCreated:
			t.Errorf("retry of %s on B: %d %s %v, want 201", c.key, status, answer, err)
		case c.err == nil && (header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(answer, c.answer)):
			t.Errorf("retry of %s on B: %s (replayed %q), want A's answer %s", c.key, answer, header.Get("Idempotent-Replayed"), c.answer)
		case c.err != nil && header.Get("Idempotent-Replayed") == "true":
			committed++ // A committed it, and died before it answered
		}
		if n := s.count(`SELECT count(*) FROM customers WHERE email = $1`, c.email); n != 1 {
			t.Errorf("%d customers with %s, want 1", n, c.email)
		}
	}
	if inFlight == 0 {
		t.Fatal("no create was in flight when A was killed")
	}
	t.Logf("%d creates, %d in flight when A was killed (%d of them committed); the slowest retry took %s", len(creates), inFlight, committed, slowest)
	if slowest > takeoverGoal {
		t.Errorf("the slowest retry took %s, want within %s", slowest, takeoverGoal)
	}
	created := map[string]int{}
	for _, e := range s.events.settled(t, len(creates)) {
		if e.Type() == events.CustomerCreated {
			created[e.Subject()]++
		}
	}
	if n := s.count(`SELECT count(*) FROM customers`); len(created) != n || n != len(creates) {
		t.Errorf("%d customers, %d with customer.created; want %d", n, len(created), len(creates))
	}
	for id, n := range created {
		if n != 1 {
			t.Errorf("customer %s: %d customer.created, want 1", id, n)
		}
	}
}

// faultSystem is what the command service's processes run against.
type faultSystem struct {
	t      *testing.T
	pool   *pgxpool.Pool
	dbURL  string
	nats   *natstest.Server
	js     jetstream.JetStream
	token  string
	events *eventLog
}

// newFaultSystem starts a database, NATS and the relay, for this test only.
func newFaultSystem(t *testing.T) *faultSystem {
	t.Helper()
	pool, dbURL := dbtest.New(t)
	ns := natstest.New(t)
	js, err := jetstream.New(ns.Connect())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	rl := relay.New(pool, js, zaptest.NewLogger(t), prometheus.NewRegistry(), relay.Config{PollInterval: 200 * time.Millisecond, PublishTimeout: time.Second})
	go func() { done <- rl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	token, err := customers.CreateToken(context.Background(), pool, "faults", false, customers.Permissions)
	if err != nil {
		t.Fatal(err)
	}
	s := &faultSystem{t: t, pool: pool, dbURL: dbURL, nats: ns, js: js, token: token}
	s.events = watchEvents(t, js)
	return s
}

// startCustomers starts `customerbus customers` on the system, and waits
// until its API is ready.
func (s *faultSystem) startCustomers(name string, env ...string) *child {
	s.t.Helper()
	return startChild(s.t, name, append([]string{"DATABASE_URL=" + s.dbURL, "NATS_URL=" + s.nats.URL()}, env...), "customers")
}

// count runs a counting query.
func (s *faultSystem) count(query string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// createCustomer creates a customer through an instance's API and returns
// its id.
func (s *faultSystem) createCustomer(via *child, email string) string {
	s.t.Helper()
	status, _, body, err := via.post(s.token, "/v1/customers", "", map[string]any{"email": email})
	if err != nil || status != http.StatusCreated {
		s.t.Fatalf("create customer: %d %s %v", status, body, err)
	}
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		s.t.Fatal(err)
	}
	return c.ID
}

// waitConsumerWaiting waits until n pulls wait on the commands consumer.
func (s *faultSystem) waitConsumerWaiting(n int) {
	s.t.Helper()
	eventually(s.t, fmt.Sprintf("%d pulls wait on %s", n, events.CommandsConsumer), func(ctx context.Context) bool {
		cons, err := s.js.Consumer(ctx, events.CommandsStream, events.CommandsConsumer)
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.NumWaiting >= n
	})
}

// commandsInHand is how many commands were delivered and not answered.
func (s *faultSystem) commandsInHand() int {
	s.t.Helper()
	ctx := context.Background()
	cons, err := s.js.Consumer(ctx, events.CommandsStream, events.CommandsConsumer)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	return info.NumAckPending
}

// busCommand is a command published on the bus.
type busCommand struct {
	id   string
	typ  string
	data map[string]any
}

// publish publishes the command as an integrator does (docs/integrators.md).
func (c busCommand) publish(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	e := cloudevents.NewEvent()
	e.SetID(c.id)
	e.SetType(c.typ)
	e.SetSource("/erp")
	e.SetTime(time.Now())
	if err := e.SetData(cloudevents.ApplicationJSON, c.data); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	header, err := cejs.WriteMsg(context.Background(), binding.ToMessage(&e), &body)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: events.CommandSubject(c.typ), Header: header, Data: body.Bytes()}
	msg.Header.Set(jetstream.MsgIDHeader, e.ID())
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// publishedCommands publishes, in turns, an update of one customer and the
// create of another, so that the test sees both the order of one
// customer's commands and commands about many.
type publishedCommands struct {
	s          *faultSystem
	customerID string
	updates    int
	cmds       []busCommand
}

// publish publishes n updates and n creates, and returns them.
func (p *publishedCommands) publish(n int) []busCommand {
	p.s.t.Helper()
	var out []busCommand
	for range n {
		update := busCommand{id: uuid.NewString(), typ: events.CmdCustomerUpdate,
			data: map[string]any{"id": p.customerID, "first_name": updateName(p.updates)}}
		create := busCommand{id: uuid.NewString(), typ: events.CmdCustomerCreate,
			data: map[string]any{"email": "c-" + uuid.NewString() + "@example.com"}}
		p.updates++
		for _, c := range []busCommand{update, create} {
			c.publish(p.s.t, p.s.js)
			out = append(out, c)
		}
	}
	p.cmds = append(p.cmds, out...)
	return out
}

// updateName is the first name update i sets.
func updateName(i int) string { return fmt.Sprintf("n%03d", i) }

// checkAppliedOnce checks that every command was applied once: one event
// each on the stream and no other, none a rejection; one row per create;
// and the customer's updates applied in the order published, at versions
// without a gap, the last one on its row.
func (p *publishedCommands) checkAppliedOnce() {
	s, t := p.s, p.s.t
	t.Helper()
	evs := s.events.settled(t, 1+len(p.cmds)) // the customer's creation first
	byCause := map[string]int{}
	var names []string
	var versions []int64
	for _, e := range evs {
		cause, _ := e.Extensions()[events.ExtCausationID].(string)
		byCause[cause]++
		switch {
		case e.Type() == events.CommandRejected:
			t.Errorf("command %s refused: %s", cause, e.Data())
		case e.Type() == events.CustomerUpdated && e.Subject() == p.customerID:
			var d struct {
				FirstName string `json:"first_name"`
			}
			if err := e.DataAs(&d); err != nil {
				t.Fatal(err)
			}
			names = append(names, d.FirstName)
			versions = append(versions, events.Sequence(e))
		}
	}
	for _, c := range p.cmds {
		if byCause[c.id] != 1 {
			t.Errorf("command %s (%s): %d events, want 1", c.id, c.typ, byCause[c.id])
		}
		if c.typ == events.CmdCustomerCreate {
			if n := s.count(`SELECT count(*) FROM customers WHERE email = $1`, c.data["email"]); n != 1 {
				t.Errorf("command %s: %d customers with its email, want 1", c.id, n)
			}
		}
	}
	for i := range p.updates {
		// The customer was created at version 1; update i makes it i+2.
		if i >= len(names) || names[i] != updateName(i) || versions[i] != int64(i+2) {
			t.Fatalf("the customer's updates, in stream order: names %v at versions %v; want n000, n001, … at 2, 3, …", names, versions)
		}
	}
	var name string
	var version int
	if err := s.pool.QueryRow(context.Background(), `SELECT first_name, version FROM customers WHERE id = $1`, p.customerID).Scan(&name, &version); err != nil {
		t.Fatal(err)
	}
	if want := updateName(p.updates - 1); name != want || version != p.updates+1 {
		t.Errorf("the customer's row: %s at version %d, want %s at %d", name, version, want, p.updates+1)
	}
}

// waitOutcomes waits until the stream holds the outcome of every command
// (the event it caused, or its rejection), and returns when it saw the
// last. It gives up after waitLimit.
func (s *faultSystem) waitOutcomes(cmds []busCommand) time.Time {
	s.t.Helper()
	pending := slices.Clone(cmds)
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(20 * time.Millisecond) {
		pending = slices.DeleteFunc(pending, func(c busCommand) bool { return s.events.has(c.id) })
		if len(pending) == 0 {
			return time.Now()
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d commands without an outcome on the stream after %s", len(pending), len(cmds), waitLimit)
		}
	}
}

// eventLog is every event on the events stream, in stream order.
type eventLog struct {
	mu     sync.Mutex
	evs    []cloudevents.Event
	causes map[string]bool
}

// watchEvents reads the events stream from its start until the test ends.
func watchEvents(t *testing.T, js jetstream.JetStream) *eventLog {
	t.Helper()
	l := &eventLog{causes: map[string]bool{}}
	var cons jetstream.Consumer
	eventually(t, "the relay made "+events.EventsStream, func(ctx context.Context) bool {
		var err error
		cons, err = js.OrderedConsumer(ctx, events.EventsStream, jetstream.OrderedConsumerConfig{})
		return err == nil
	})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		e, err := events.FromMsg(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if err != nil {
			t.Errorf("message on %s is not a CloudEvent: %v", m.Subject(), err)
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.evs = append(l.evs, e)
		if cause, ok := e.Extensions()[events.ExtCausationID].(string); ok {
			l.causes[cause] = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return l
}

// has reports whether an event caused by the command is on the stream.
func (l *eventLog) has(commandID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.causes[commandID]
}

// settled returns the events once there are want of them and a moment
// passed without more, for a duplicate to show.
func (l *eventLog) settled(t *testing.T, want int) []cloudevents.Event {
	t.Helper()
	count := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.evs)
	}
	eventually(t, fmt.Sprintf("%d events on the stream", want), func(context.Context) bool { return count() >= want })
	time.Sleep(300 * time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.evs) != want {
		t.Fatalf("%d events on the stream, want exactly %d", len(l.evs), want)
	}
	return slices.Clone(l.evs)
}

// child is a customerbus process the test started.
type child struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	url  string        // its API, or its ops endpoints
	done chan struct{} // closed once it exited
}

// startChild runs the binary with args and the environment env (and a
// free address as HTTP_ADDR and OPS_ADDR: a service alone serves no API,
// and the command service no ops endpoints of their own; JSON logs) until
// the test ends, and waits until it is ready. Its output is logged when
// the test fails.
func startChild(t *testing.T, name string, env []string, args ...string) *child {
	t.Helper()
	addr := freeAddr(t)
	c := &child{out: &lockedBuffer{}, url: "http://" + addr, done: make(chan struct{})}
	c.cmd = exec.Command(customerbusBinary(t), args...)
	c.cmd.Env = append([]string{"HTTP_ADDR=" + addr, "OPS_ADDR=" + addr, "LOG_FORMAT=json"}, env...)
	c.cmd.Dir = t.TempDir()
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("%s (customerbus %s) wrote:\n%s", name, strings.Join(args, " "), c.out)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-c.done:
			t.Fatalf("%s exited as it started: %s", name, c.out)
		default:
		}
		resp, err := faultClient.Get(c.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready within 30 s", name)
		}
	}
}

// kill kills the process with SIGKILL, and waits until it is gone.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// post sends a POST with a JSON body to the child's API, with an
// Idempotency-Key unless key is "".
func (c *child) post(token, path, key string, body any) (status int, header http.Header, answer []byte, err error) {
	buf, err := json.Marshal(body)
	if err != nil {
		return 0, nil, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, c.url+path, bytes.NewReader(buf))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := faultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(resp.Body); err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, out.Bytes(), nil
}

// faultClient is the fault tests' HTTP client. Each request has a
// connection of its own: net/http sends a request with an Idempotency-Key
// again by itself when a kept-alive connection breaks, and the test would
// not see which were in flight when an instance died. A hung request fails
// the test instead of stalling it.
var faultClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// freeAddr is a local address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer is a child's output, written by its pipes' goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// build is the binary the fault tests run, built once per test run.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func customerbusBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "customerbus-faults-"); build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "customerbus")
		if out, err := exec.Command("go", "build", "-o", build.path, ".").CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// TestMain removes the binary the fault tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}
