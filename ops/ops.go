// Package ops answers what operators and orchestrators ask of a process:
// whether it is alive (/healthz), whether what it waits for is there
// (/readyz: the database, NATS, its streams and durable consumers, each
// checked and named), and its metrics (/metrics), among them the state of
// those same dependencies (metrics.go).
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Needs is what a process waits for before its services can work.
type Needs struct {
	Pool *pgxpool.Pool
	// JS is the process's JetStream; nil when it runs without NATS.
	JS jetstream.JetStream
	// Streams must exist: those the services read, and those they write
	// to (a dead-letter stream).
	Streams []string
	// Consumers are the durable consumers the services read through.
	Consumers []Consumer
	// NATSReported: NATS and the streams and consumers are checked and
	// reported, but do not make the process unready. The command service's
	// HTTP API works while NATS is away (its events wait in the outbox);
	// taking it out of service would turn a bus outage into an API outage.
	NATSReported bool
}

// Consumer names a durable consumer of a stream.
type Consumer struct{ Stream, Durable string }

// Join is the needs of services that run together: each stream and
// consumer once.
func Join(needs ...Needs) Needs {
	out := Needs{NATSReported: true}
	seenStream, seenConsumer := map[string]bool{}, map[Consumer]bool{}
	for _, n := range needs {
		// Reported only if no service of the process needs NATS to work.
		if len(n.Streams)+len(n.Consumers) > 0 && !n.NATSReported {
			out.NATSReported = false
		}
		if n.Pool != nil {
			out.Pool = n.Pool
		}
		if n.JS != nil {
			out.JS = n.JS
		}
		for _, s := range n.Streams {
			if !seenStream[s] {
				seenStream[s] = true
				out.Streams = append(out.Streams, s)
			}
		}
		for _, c := range n.Consumers {
			if !seenConsumer[c] {
				seenConsumer[c] = true
				out.Consumers = append(out.Consumers, c)
			}
		}
	}
	return out
}

// New registers the metrics of needs in reg (metrics.go) and returns the
// handler of the ops endpoints: the process's one, since the metrics of a
// dependency are registered once.
func New(reg *prometheus.Registry, needs Needs) http.Handler {
	registerMetrics(reg, needs)
	return Handler(reg, needs)
}

// Handler serves /healthz, /readyz (checking needs) and /metrics (from g),
// without registering any metric.
func Handler(g prometheus.Gatherer, needs Needs) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		checks, ready := Check(ctx, needs)
		if !ready {
			writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "unavailable", Checks: checks})
			return
		}
		writeJSON(w, http.StatusOK, readiness{Status: "ready", Checks: checks})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}

// Paths are the paths Handler serves, for a server that mounts it beside
// its own routes.
var Paths = []string{"GET /healthz", "GET /readyz", "GET /metrics"}

// readiness is /readyz's answer.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// checkTimeout bounds a readiness check, every dependency at once: a probe
// must be answered before the orchestrator gives up on it (Kubernetes: 1 s
// by default, often raised), and a dependency that takes longer is not
// ready for work either.
const checkTimeout = 2 * time.Second

// Check checks each of needs, at once, and returns the state of each by
// name ("ok", or what is wrong), and whether all are ok.
func Check(ctx context.Context, needs Needs) (map[string]string, bool) {
	checks := map[string]func(context.Context) error{}
	required := map[string]bool{"database": true}
	if needs.Pool != nil {
		checks["database"] = needs.Pool.Ping
	}
	if needs.JS != nil {
		nc := needs.JS.Conn()
		checks["nats"] = func(context.Context) error { return connected(nc) }
		// While the connection is down, JetStream requests would wait out
		// the timeout: the stream and consumer checks say what they wait for.
		onNATS := func(check func(context.Context) error) func(context.Context) error {
			return func(ctx context.Context) error {
				if connected(nc) != nil {
					return errors.New("waits for nats")
				}
				return check(ctx)
			}
		}
		for _, s := range needs.Streams {
			checks["stream "+s] = onNATS(func(ctx context.Context) error {
				_, err := needs.JS.Stream(ctx, s)
				if errors.Is(err, jetstream.ErrStreamNotFound) {
					return errors.New("not found") // its maker has not run yet
				}
				return err
			})
		}
		for _, c := range needs.Consumers {
			checks["consumer "+c.Durable] = onNATS(func(ctx context.Context) error {
				_, err := needs.JS.Consumer(ctx, c.Stream, c.Durable)
				switch {
				case errors.Is(err, jetstream.ErrStreamNotFound):
					return fmt.Errorf("waits for stream %s", c.Stream)
				case errors.Is(err, jetstream.ErrConsumerNotFound):
					return fmt.Errorf("not found on %s", c.Stream)
				}
				return err
			})
		}
		for name := range checks {
			required[name] = required[name] || !needs.NATSReported
		}
	}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		out   = make(map[string]string, len(checks))
		ready = true
	)
	for name, check := range checks {
		wg.Go(func() {
			state := "ok"
			if err := check(ctx); err != nil {
				state = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			out[name] = state
			ready = ready && (state == "ok" || !required[name])
		})
	}
	wg.Wait()
	return out, ready
}

// connected says whether nc is connected to a server now.
func connected(nc *nats.Conn) error {
	if s := nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("not connected: %s", s)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve serves h on addr until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ops: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		// Probes and scrapes are short; what is left of them is cut.
		shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	})
	defer stop()
	log.Info("ops endpoints listening", zap.String("url", "http://"+ln.Addr().String()))
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ops: serve: %w", err)
	}
	return nil
}
