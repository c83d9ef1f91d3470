package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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

// poolSize is the database pool of the service and of the baseline alike; on 2
// cores a larger pool only adds contention inside PostgreSQL (16 measured worse).
const poolSize = 8

// system is the command service, the relay and an event watcher, in-process.
type system struct {
	pool     *pgxpool.Pool
	poolSize int
	nats     *server.Server
	nc       *nats.Conn
	storeDir string
	baseURL  string
	token    string
	client   *http.Client
	stop     context.CancelFunc
	done     sync.WaitGroup

	mu       sync.Mutex
	received map[string]time.Time // customer id → when its customer.created arrived
}

func startSystem(ctx context.Context, url string) (*system, error) {
	s := &system{poolSize: poolSize, received: map[string]time.Time{}}
	var err error
	if s.pool, err = db.Connect(ctx, url, poolSize); err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, s.pool); err != nil {
		return nil, err
	}
	if s.storeDir, err = os.MkdirTemp("", "cbbench-nats-"); err != nil {
		return nil, err
	}
	s.nats, err = server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: s.storeDir, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	s.nats.Start()
	if !s.nats.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("embedded nats not ready")
	}
	if s.nc, err = nats.Connect(s.nats.ClientURL()); err != nil {
		return nil, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, err
	}
	if s.token, err = customers.CreateToken(ctx, s.pool, "bench", false, []string{"MANAGE_USERS"}); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.baseURL = "http://" + ln.Addr().String()
	svc := customers.New(s.pool, zap.NewNop(), prometheus.NewRegistry(), customers.Config{ShutdownTimeout: 5 * time.Second})
	rl := relay.New(s.pool, js, zap.NewNop(), prometheus.NewRegistry(), relay.Config{})
	s.done.Add(2)
	go func() { defer s.done.Done(); _ = svc.Serve(runCtx, ln) }()
	go func() { defer s.done.Done(); _ = rl.Run(runCtx) }()

	// The relay creates the stream; wait for it, then watch customer.created.
	var stream jetstream.Stream
	for deadline := time.Now().Add(10 * time.Second); ; {
		if stream, err = js.Stream(ctx, events.EventsStream); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("stream never appeared: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.Subject(events.CustomerCreated)}})
	if err != nil {
		return nil, err
	}
	if _, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		id := m.Headers().Get("ce-subject")
		s.mu.Lock()
		s.received[id] = now
		s.mu.Unlock()
	}); err != nil {
		return nil, err
	}
	s.client = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	return s, nil
}

func (s *system) close() {
	s.stop()
	s.done.Wait()
	s.nc.Close()
	s.nats.Shutdown()
	s.pool.Close()
	os.RemoveAll(s.storeDir)
}

type apiResult struct {
	rate             float64
	call, event      percentiles
	created, missing int
}

// measure runs c clients creating customers over HTTP: warm-up, then the
// measured window, then it waits for the window's events.
func (s *system) measure(ctx context.Context, c int, warmup, duration time.Duration) (apiResult, error) {
	if _, err := s.load(ctx, c, warmup); err != nil {
		return apiResult{}, err
	}
	calls, err := s.load(ctx, c, duration)
	if err != nil {
		return apiResult{}, err
	}
	res := apiResult{rate: float64(len(calls)) / duration.Seconds(), created: len(calls)}
	callLat := make([]time.Duration, len(calls))
	for i, cl := range calls {
		callLat[i] = cl.latency
	}
	res.call = summarize(callLat)

	var eventLat []time.Duration
	deadline := time.Now().Add(10 * time.Second)
	for {
		eventLat = eventLat[:0]
		s.mu.Lock()
		for _, cl := range calls {
			if at, ok := s.received[cl.id]; ok {
				eventLat = append(eventLat, max(at.Sub(cl.done), 0))
			}
		}
		s.mu.Unlock()
		if len(eventLat) == len(calls) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.missing = len(calls) - len(eventLat)
	res.event = summarize(eventLat)
	return res, nil
}

type call struct {
	id      string
	done    time.Time // response read: the transaction has committed
	latency time.Duration
}

func (s *system) load(ctx context.Context, c int, d time.Duration) ([]call, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	results := make([][]call, c)
	errs := make([]error, c)
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				cl, err := s.create(fmt.Sprintf("%s-%d-%d", randomHex(6), w, n))
				if err != nil {
					errs[w] = err
					return
				}
				if ctx.Err() == nil { // only calls that finished inside the window count
					results[w] = append(results[w], cl)
				}
			}
		})
	}
	wg.Wait()
	var all []call
	for w := range c {
		if errs[w] != nil {
			return nil, errs[w]
		}
		all = append(all, results[w]...)
	}
	return all, nil
}

func (s *system) create(key string) (call, error) {
	body, _ := json.Marshal(map[string]any{
		"email": key + "@bench.example", "first_name": "Bench", "last_name": "User " + key,
		"metadata": map[string]string{"source": "bench"},
	})
	req, _ := http.NewRequest(http.MethodPost, s.baseURL+"/v1/customers", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return call{}, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	done := time.Now()
	if err != nil {
		return call{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return call{}, fmt.Errorf("create: status %d: %s", resp.StatusCode, raw)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return call{}, err
	}
	return call{id: out.ID, done: done, latency: done.Sub(start)}, nil
}
