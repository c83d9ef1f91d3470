package orderlinker

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/customerbus/customerbus/db/dbtest"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/natstest"
)

// Events are published straight onto the stream, behind the relay's back,
// with a customer's and an order's sequence jumping; an event published
// again (as the reconciler does) and one that comes late are among them.
// Each jump is logged and counted once, naming the resource and the
// sequences; a repeat, a late event, and a resource's first event seen are
// no gaps. It runs on deploy/'s NATS configuration as user orderlinker.
func TestAJumpInAResourcesSequenceIsLoggedAndCountedAndARepeatIsNot(t *testing.T) {
	srv := natstest.Deploy(t, "../../deploy/nats/nats.conf")
	ctx := context.Background()
	relay := srv.JetStreamAs("relay")
	if err := events.EnsureStreams(ctx, relay, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	pool, _ := dbtest.New(t)
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.WarnLevel)
	l := New(pool, srv.JetStreamAs("orderlinker"), zap.New(core), reg, Config{AckWait: 5 * time.Second, RetryDelay: 100 * time.Millisecond})
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.Run(runCtx); err != nil {
			t.Errorf("order linker: %v", err)
		}
	})
	defer func() { stop(); wg.Wait() }()
	// It watches the events published once its ordered consumer is there,
	// beside the durable one.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, err := relay.Stream(ctx, events.EventsStream)
		if err == nil && st.CachedInfo().State.Consumers == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the linker made no ordered consumer within 10 s")
		}
	}

	customer, order, other := uuid.NewString(), uuid.NewString(), uuid.NewString()
	publish := func(typ, subject string, seq int64) *nats.Msg {
		t.Helper()
		e, err := events.New(events.Meta{Type: typ, Source: events.SourceCustomers, Subject: subject, PartitionKey: subject,
			Sequence: seq, Time: time.Now(), Actor: events.Actor{Type: events.AuthServiceAccount, ID: "test"}},
			map[string]string{"id": subject})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := events.ToMsg(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		publishMsg(t, relay, msg)
		return msg
	}
	publish(events.CustomerUpdated, customer, 1)
	second := publish(events.CustomerUpdated, customer, 2)
	publish(events.CustomerNoteAdded, customer, 4) // 3 missing
	// The reconciler's way: the same event under another Nats-Msg-Id.
	again := &nats.Msg{Subject: second.Subject, Header: nats.Header(http.Header(second.Header).Clone()), Data: second.Data}
	again.Header.Set(nats.MsgIdHdr, second.Header.Get(nats.MsgIdHdr)+":r2")
	publishMsg(t, relay, again)
	publish(events.CustomerUpdated, customer, 3) // late
	publish(events.CustomerUpdated, customer, 5)
	publish(events.OrderTransferred, order, 7) // first seen
	publish(events.OrderTransferred, order, 9) // 8 missing
	// Groups are not watched, even one with a customer's id.
	publish(events.CustomerGroupCreated, other, 1)
	publish(events.CustomerGroupUpdated, other, 3)
	publish(events.CustomerVerified, other, 2)
	publish(events.CustomerVerified, other, 5) // 3 and 4 missing, last

	// Read from the registry, as /metrics would.
	gaps := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "customerbus_orderlinker_sequence_gaps_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no customerbus_orderlinker_sequence_gaps_total on the registry")
		return 0
	}
	for deadline := time.Now().Add(10 * time.Second); gaps() < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v gaps counted after 10 s, want 3", gaps())
		}
	}
	type gap struct {
		subject       string
		expected, got int64
	}
	want := []gap{{customer, 3, 4}, {order, 8, 9}, {other, 3, 5}}
	var got []gap
	for _, e := range logs.FilterMessageSnippet("sequence gap").All() {
		f := e.ContextMap()
		got = append(got, gap{f["subject"].(string), f["expected"].(int64), f["got"].(int64)})
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("gaps logged %+v, want %+v", got, want)
	}
	if g := gaps(); g != 3 {
		t.Errorf("gaps counted %v, want 3", g)
	}
}

func publishMsg(t *testing.T, js jetstream.JetStream, msg *nats.Msg) {
	t.Helper()
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}
