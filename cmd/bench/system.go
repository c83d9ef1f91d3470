package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/relay"
)

// system is the command service, the relay and an event watcher, in-process,
// on a database and an embedded NATS server of their own.
type system struct {
	pool     *pgxpool.Pool
	nats     *server.Server
	nc       *nats.Conn
	storeDir string
	stop     context.CancelFunc
	done     sync.WaitGroup

	// What startCommands needs: the service, its JetStream and the
	// services' context, which close cancels.
	svc    *customers.Service
	js     jetstream.JetStream
	runCtx context.Context

	client  *client
	watcher *watcher
	// relayMetrics is the relay's registry, for how it batched.
	relayMetrics *prometheus.Registry
}

// tuning adjusts the system a case starts: its embedded NATS server (the
// sync case turns on sync_interval: always) and the command service.
type tuning struct {
	nats      func(*server.Options)
	customers func(*customers.Config)
}

// startSystem brings everything up on a fresh database; on error it tears down
// what it had started.
func startSystem(ctx context.Context, url string, poolSize, maxConcurrency int, tune ...tuning) (s *system, err error) {
	s = &system{stop: func() {}}
	defer func() {
		if err != nil {
			s.close()
			s = nil
		}
	}()
	if s.pool, err = db.Connect(ctx, url, int32(poolSize)); err != nil {
		return s, err
	}
	if err = db.Migrate(ctx, s.pool); err != nil {
		return s, err
	}
	js, err := s.startNATS(tune)
	if err != nil {
		return s, err
	}
	token, err := customers.CreateToken(ctx, s.pool, "bench", false, []string{"MANAGE_USERS", "MANAGE_SETTINGS"})
	if err != nil {
		return s, fmt.Errorf("create token: %w", err)
	}
	baseURL, err := s.startServices(ctx, js, tune)
	if err != nil {
		return s, err
	}
	if s.watcher, err = watch(ctx, js); err != nil {
		return s, err
	}
	s.client = newClient(baseURL, token, maxConcurrency)
	return s, nil
}

// startNATS starts an embedded JetStream server on a random loopback port, so
// the machine's own NATS (if any) is never touched.
func (s *system) startNATS(tune []tuning) (jetstream.JetStream, error) {
	var err error
	if s.storeDir, err = os.MkdirTemp("", "cbbench-nats-"); err != nil {
		return nil, err
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: s.storeDir, NoLog: true, NoSigs: true}
	for _, t := range tune {
		if t.nats != nil {
			t.nats(opts)
		}
	}
	s.nats, err = server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	s.nats.Start()
	if !s.nats.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("embedded nats not ready")
	}
	if s.nc, err = nats.Connect(s.nats.ClientURL()); err != nil {
		return nil, err
	}
	return jetstream.New(s.nc)
}

// startServices serves the command service on 127.0.0.1:0 and runs the relay,
// both until close. It returns the service's base URL.
func (s *system) startServices(ctx context.Context, js jetstream.JetStream, tune []tuning) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	// Detached from ctx: on Ctrl-C the services must outlive the load loops
	// until close, which stops them in order.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	s.runCtx, s.js = runCtx, js
	cfg := customers.Config{ShutdownTimeout: 5 * time.Second}
	for _, t := range tune {
		if t.customers != nil {
			t.customers(&cfg)
		}
	}
	s.svc = customers.New(s.pool, zap.NewNop(), prometheus.NewRegistry(), cfg)
	s.relayMetrics = prometheus.NewRegistry()
	rl := relay.New(s.pool, js, zap.NewNop(), s.relayMetrics, relay.Config{})
	s.done.Go(func() { _ = s.svc.Serve(runCtx, ln) })
	s.done.Go(func() { _ = rl.Run(runCtx) })
	return "http://" + ln.Addr().String(), nil
}

func (s *system) close() {
	s.stop()
	s.done.Wait()
	if s.watcher != nil {
		s.watcher.stop()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if s.storeDir != "" {
		_ = os.RemoveAll(s.storeDir)
	}
}

// eventWait is how long after a measured window its events may still arrive.
const eventWait = 10 * time.Second

type apiResult struct {
	rate             float64
	call, event      percentiles
	created, missing int
	cpu              cpuUse // during the measured window
}

// measure runs c clients creating customers over HTTP: warm-up, then the
// measured window, then it waits for the window's events.
func (s *system) measure(ctx context.Context, c int, warmup, duration time.Duration) (apiResult, error) {
	return s.measureWith(ctx, c, warmup, duration, s.client.create)
}

// measureWith is measure with another create call.
func (s *system) measureWith(ctx context.Context, c int, warmup, duration time.Duration, create func(int64) (call, error)) (apiResult, error) {
	if _, err := runWorkers(ctx, c, warmup, create); err != nil {
		return apiResult{}, err
	}
	var calls []call
	used, err := cpuDuring(ctx, s.pool, func() (err error) {
		calls, err = runWorkers(ctx, c, duration, create)
		return err
	})
	if err != nil {
		return apiResult{}, err
	}
	callLat := make([]time.Duration, len(calls))
	for i, cl := range calls {
		callLat[i] = cl.latency
	}
	eventLat := s.watcher.await(ctx, calls, eventWait)
	return apiResult{
		rate:    float64(len(calls)) / duration.Seconds(),
		call:    summarize(callLat),
		event:   summarize(eventLat),
		created: len(calls),
		missing: len(calls) - len(eventLat),
		cpu:     used,
	}, nil
}

// watcher records when each customer.created arrives, keyed by customer id,
// and, for the commands case, when each command's customer.created or
// command.rejected arrives, keyed by the command id (its causationid).
type watcher struct {
	cc jetstream.ConsumeContext

	mu       sync.Mutex
	received map[string]time.Time
	caused   map[string]time.Time // customer.created by causationid
	rejected map[string]time.Time // command.rejected by causationid
	outcomes int                  // len(caused) + len(rejected), to poll cheaply
}

// watch waits for the relay to create the stream, then follows
// customer.created and command.rejected with an ordered (ephemeral,
// flow-controlled) consumer.
func watch(ctx context.Context, js jetstream.JetStream) (*watcher, error) {
	stream, err := awaitStream(ctx, js)
	if err != nil {
		return nil, err
	}
	created, rejected := events.Subject(events.CustomerCreated), events.Subject(events.CommandRejected)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{created, rejected},
	})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer: %w", err)
	}
	w := &watcher{received: map[string]time.Time{}, caused: map[string]time.Time{}, rejected: map[string]time.Time{}}
	// The ids are the CloudEvent's subject and causationid: read from the
	// structured-mode body into just those two fields, which spares decoding
	// the whole event (its data) on the hot path.
	w.cc, err = cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		var ids struct {
			Subject     string `json:"subject"`
			CausationID string `json:"causationid"`
		}
		_ = json.Unmarshal(m.Data(), &ids)
		cause := ids.CausationID
		w.mu.Lock()
		switch {
		case m.Subject() == rejected:
			w.rejected[cause] = now
			w.outcomes++
		case cause != "":
			w.caused[cause] = now
			w.outcomes++
		default:
			w.received[ids.Subject] = now
		}
		w.mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	return w, nil
}

func awaitStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		stream, err := js.Stream(ctx, events.EventsStream)
		if err == nil {
			return stream, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("stream %s never appeared: %w", events.EventsStream, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *watcher) stop() { w.cc.Stop() }

// await returns the commit→event latency of every call whose event arrived
// within wait (or before ctx ended). A call's response is read only after its
// transaction committed, so the latency is measured from then; the clamp to 0
// covers an event that beat the response back to us.
func (w *watcher) await(ctx context.Context, calls []call, wait time.Duration) []time.Duration {
	deadline := time.Now().Add(wait)
	for {
		lat := w.latencies(calls)
		if len(lat) == len(calls) || time.Now().After(deadline) || ctx.Err() != nil {
			return lat
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *watcher) latencies(calls []call) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	lat := make([]time.Duration, 0, len(calls))
	for _, cl := range calls {
		if at, ok := w.received[cl.id]; ok {
			lat = append(lat, max(at.Sub(cl.done), 0))
		}
	}
	return lat
}

// relayBatches is how many events the relay published so far, in how many
// batches.
func (s *system) relayBatches() (events, batches uint64) {
	families, err := s.relayMetrics.Gather()
	if err != nil {
		return 0, 0
	}
	for _, f := range families {
		switch f.GetName() {
		case "customerbus_relay_published_total":
			events = uint64(f.GetMetric()[0].GetCounter().GetValue())
		case "customerbus_relay_batch_seconds":
			batches = f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return events, batches
}
