package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/db/outbox"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/webhooks"
)

// Aims of the webhooks case.
const (
	aimWebhookRate = 5000                  // deliveries a second
	aimWebhookP99  = 50 * time.Millisecond // commit to delivered, at half of the peak
)

// webhookDeliveries is about how many deliveries each peak run makes.
const webhookDeliveries = 30_000

// webhookCustomers is how many customers (partition keys, so lines) the
// events are spread over.
const webhookCustomers = 2000

// webhookReceiver is a local endpoint that answers 204 at once, counting
// deliveries and, for events whose commit time it was told, their latency.
type webhookReceiver struct {
	srv       *http.Server
	url       string
	received  atomic.Int64
	mu        sync.Mutex
	committed map[string]time.Time // by event id
	latencies []time.Duration
}

func newWebhookReceiver() (*webhookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &webhookReceiver{url: "http://" + ln.Addr().String(), committed: map[string]time.Time{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		r.received.Add(1)
		id := req.Header.Get(webhooks.HeaderID)
		r.mu.Lock()
		if c, ok := r.committed[id]; ok {
			r.latencies = append(r.latencies, at.Sub(c))
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// runWebhooks measures delivery through the whole path (outbox commit,
// relay, fan-out, dispatch, HTTP) to a local receiver: the peak rate at 1,
// 10 and 100 endpoints, then commit → delivered at half of each peak.
func runWebhooks(ctx context.Context, adminURL, name string, opt options) error {
	sys, _, stop, err := freshSystem(ctx, adminURL, name, opt)
	if err != nil {
		return err
	}
	defer stop()
	rcv, err := newWebhookReceiver()
	if err != nil {
		return err
	}
	defer rcv.srv.Close()
	svc := webhooks.New(sys.pool, sys.js, zap.NewNop(), prometheus.NewRegistry(), webhooks.Config{AllowPrivateAddresses: true})
	sys.done.Go(func() { _ = svc.Run(sys.runCtx) })
	time.Sleep(500 * time.Millisecond) // its consumer starts at new events

	fmt.Printf("webhooks: %d customers' events through outbox, relay, fan-out and HTTP to a local receiver (204 at once)\n", webhookCustomers)
	customers := make([]uuid.UUID, webhookCustomers)
	for i := range customers {
		customers[i] = uuid.Must(uuid.NewV7())
	}
	version := make([]int64, len(customers))
	// emit commits n events round-robin over the customers, in
	// transactions of at most 500, telling the receiver their commit time
	// when track.
	next := 0
	emit := func(n int, track bool) error {
		for n > 0 {
			batch := min(n, 500)
			evs := make([]cloudevents.Event, batch)
			for i := range evs {
				c := next % len(customers)
				next++
				version[c]++
				e, err := events.New(events.Meta{
					Type: events.CustomerUpdated, Source: events.SourceCustomers, Subject: customers[c].String(),
					PartitionKey: customers[c].String(), Sequence: version[c], Time: time.Now(), TraceParent: events.NewTraceParent(),
					Actor: events.Actor{Type: events.AuthServiceAccount, ID: "bench"},
				}, map[string]any{"id": customers[c], "version": version[c], "changed": []string{"note"}})
				if err != nil {
					return err
				}
				evs[i] = e
			}
			if err := pgx.BeginFunc(ctx, sys.pool, func(tx pgx.Tx) error { return outbox.Write(ctx, gen.New(tx), evs) }); err != nil {
				return err
			}
			if track {
				at := time.Now()
				rcv.mu.Lock()
				for _, e := range evs {
					rcv.committed[e.ID()] = at
				}
				rcv.mu.Unlock()
			}
			n -= batch
		}
		return nil
	}
	wait := func(want int64, limit time.Duration) error {
		for deadline := time.Now().Add(limit); rcv.received.Load() < want; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d deliveries after %s", rcv.received.Load(), want, limit)
			}
		}
		return nil
	}

	for _, endpoints := range []int{1, 10, 100} {
		if _, err := sys.pool.Exec(ctx, `DELETE FROM webhooks`); err != nil {
			return err
		}
		for i := range endpoints {
			if _, err := sys.pool.Exec(ctx, `
				INSERT INTO webhooks (id, url, event_types, secret, created_at, updated_at)
				VALUES (gen_random_uuid(), $1, '{*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now(), now())`,
				fmt.Sprintf("%s/endpoint/%d", rcv.url, i)); err != nil {
				return err
			}
		}
		// Peak: a burst of events, timed from the first commit to the last delivery.
		n := webhookDeliveries / endpoints
		rcv.received.Store(0)
		start := time.Now()
		if err := emit(n, false); err != nil {
			return err
		}
		if err := wait(int64(n*endpoints), 2*time.Minute); err != nil {
			return err
		}
		peak := float64(n*endpoints) / time.Since(start).Seconds()

		// Latency at half of that, paced every 10 ms for -duration.
		rcv.mu.Lock()
		rcv.latencies, rcv.committed = nil, map[string]time.Time{}
		rcv.mu.Unlock()
		rcv.received.Store(0)
		perTick := peak / 2 / float64(endpoints) / 100
		var sent float64
		emitted := 0
		tick := time.NewTicker(10 * time.Millisecond)
		for end := time.Now().Add(opt.duration); time.Now().Before(end); <-tick.C {
			sent += perTick
			if k := int(sent) - emitted; k > 0 {
				if err := emit(k, true); err != nil {
					tick.Stop()
					return err
				}
				emitted += k
			}
		}
		tick.Stop()
		if err := wait(int64(emitted*endpoints), time.Minute); err != nil {
			return err
		}
		rcv.mu.Lock()
		p := summarize(rcv.latencies)
		rcv.mu.Unlock()
		fmt.Printf("  %3d endpoints: peak %.0f deliveries/s (%d in a burst); at half of it (%.0f/s) commit → delivered p50 %s, p99 %s\n",
			endpoints, peak, n*endpoints, peak/2, ms(p.p50), ms(p.p99))
		fmt.Printf("       aim: >= %d deliveries/s: %s; p99 <= %s: %s\n", aimWebhookRate, verdict(peak >= aimWebhookRate), aimWebhookP99, verdict(p.p99 <= aimWebhookP99))
	}
	return nil
}
