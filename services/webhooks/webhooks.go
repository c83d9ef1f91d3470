// Package webhooks delivers the public events over HTTP to the endpoints
// staff registered (POST /v1/webhooks), for apps that cannot hold a NATS
// connection.
//
// It works in two steps, both idempotent:
//   - fan-out: a durable consumer on CUSTOMERBUS_EVENTS stores each event
//     once (webhook_events) with one delivery per active endpoint whose
//     types match (webhook_deliveries), then acknowledges it; an event
//     delivered again by JetStream finds its rows and adds nothing;
//   - delivery: a dispatcher claims the deliveries due and POSTs each,
//     signed per the Standard Webhooks spec (webhook-id is the event id on
//     every attempt, so receivers deduplicate), and records the outcome. A
//     claim holds a delivery for the timeout and a margin; an instance that
//     dies mid-attempt leaves it to be tried again after that: at least once.
//
// Deliveries to one endpoint with the same partition key (one customer's
// events) form a line: only its first pending delivery is tried, so a
// receiver sees a customer's events in order. Lines do not wait on each
// other, and an endpoint has a bound on its requests in flight, so one slow
// customer or one failing endpoint holds up no one else.
//
// A 2xx answer delivers; anything else (a timeout, a redirect, an address
// the guard refuses) is tried again after the next of WEBHOOKS_RETRY_DELAYS,
// with jitter, and given up after the last. A 410 disables the endpoint at
// once; an endpoint whose every attempt failed for WEBHOOKS_DISABLE_AFTER is
// disabled too, each time with a webhook.disabled event through the outbox.
package webhooks

import (
	"context"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
)

// Config of the webhooks service, read from the environment.
type Config struct {
	// Timeout bounds one attempt: connecting, sending, and the answer.
	Timeout time.Duration `env:"WEBHOOKS_TIMEOUT" envDefault:"10s"`
	// RetryDelays are the waits after each failed attempt; after the last,
	// the delivery is given up. About 5 s to 10 h, for nearly 3 days.
	RetryDelays []time.Duration `env:"WEBHOOKS_RETRY_DELAYS" envDefault:"5s,5m,30m,2h,5h,10h,10h,10h,10h,10h,10h" envSeparator:","`
	// DisableAfter is how long every attempt to an endpoint may fail
	// before it is disabled.
	DisableAfter time.Duration `env:"WEBHOOKS_DISABLE_AFTER" envDefault:"72h"`
	// AllowPrivateAddresses lets deliveries reach loopback, private,
	// link-local and metadata addresses: for local development and tests.
	AllowPrivateAddresses bool `env:"WEBHOOKS_ALLOW_PRIVATE_ADDRESSES" envDefault:"false"`
	// Concurrency bounds the requests in flight of this instance, and
	// PerEndpoint those to one endpoint.
	Concurrency int `env:"WEBHOOKS_CONCURRENCY" envDefault:"256"`
	PerEndpoint int `env:"WEBHOOKS_PER_ENDPOINT_CONCURRENCY" envDefault:"32"`
	// PollInterval is how often the dispatcher looks for deliveries due
	// (retries, other instances' fan-out); its own fan-out wakes it at once.
	PollInterval time.Duration `env:"WEBHOOKS_POLL_INTERVAL" envDefault:"1s"`
	// DeliveryRetention is how long the delivery log (and the events, for
	// retries) is kept.
	DeliveryRetention time.Duration `env:"WEBHOOKS_DELIVERY_RETENTION" envDefault:"168h"`
	// AckWait is how long JetStream waits before delivering an event to
	// the fan-out again.
	AckWait time.Duration `env:"WEBHOOKS_ACK_WAIT" envDefault:"30s"`
}

// withDefaults fills what a caller left zero (tests, the bench) with the
// defaults.
func (c Config) withDefaults() Config {
	def := Config{Timeout: 10 * time.Second, DisableAfter: 72 * time.Hour, Concurrency: 256, PerEndpoint: 32,
		PollInterval: time.Second, DeliveryRetention: 168 * time.Hour, AckWait: 30 * time.Second,
		RetryDelays: []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
			10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour}}
	for _, f := range []struct{ v, d *time.Duration }{
		{&c.Timeout, &def.Timeout}, {&c.DisableAfter, &def.DisableAfter}, {&c.PollInterval, &def.PollInterval},
		{&c.DeliveryRetention, &def.DeliveryRetention}, {&c.AckWait, &def.AckWait},
	} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = def.Concurrency
	}
	if c.PerEndpoint <= 0 {
		c.PerEndpoint = def.PerEndpoint
	}
	if len(c.RetryDelays) == 0 {
		c.RetryDelays = def.RetryDelays
	}
	return c
}

// ConsumerName is the durable consumer every instance shares.
const ConsumerName = "webhooks"

// Service is the webhooks service.
type Service struct {
	pool   *pgxpool.Pool
	q      *gen.Queries
	js     jetstream.JetStream
	log    *zap.Logger
	cfg    Config
	m      *metrics
	sender *sender
	// wake tells the dispatcher that the fan-out added deliveries.
	wake chan struct{}
}

// New returns the service; its metrics go to reg.
func New(pool *pgxpool.Pool, js jetstream.JetStream, log *zap.Logger, reg metricsRegisterer, cfg Config) *Service {
	cfg = cfg.withDefaults()
	return &Service{pool: pool, q: gen.New(pool), js: js, log: log.Named("webhooks"), cfg: cfg,
		m: newMetrics(reg), sender: newSender(cfg), wake: make(chan struct{}, 1)}
}

// Run fans events out and delivers them until ctx ends; attempts in flight
// then finish (within the timeout) and are recorded.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.fanOut(ctx) })
	g.Go(func() error { return s.watchSequences(ctx) })
	g.Go(func() error { return s.dispatch(ctx) })
	g.Go(func() error { s.housekeep(ctx); return nil })
	return g.Wait()
}

// sequenceMemory is how many resources the sequence watch remembers: the
// most recently changed. At about 100 bytes each, 10 MB at most.
const sequenceMemory = 100_000

// watchSequences logs and counts each public event that jumps past the
// next sequence of its resource (events.WatchSequences): the endpoints
// did not get the events between. The relay's reconciler publishes an
// event the stream lost again, later, and it is delivered then, out of
// its order; an erased customer's are gone on purpose.
func (s *Service) watchSequences(ctx context.Context) error {
	return events.WatchSequences(ctx, s.js, []string{events.EventsSubjectPrefix + ">"}, sequenceMemory, s.log,
		func(e cloudevents.Event, expected int64) {
			s.m.gaps.Inc()
			events.LogGap(s.log, e, expected)
		})
}

// poke wakes the dispatcher, if it is not awake already.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// housekeep sweeps the log past its retention and reports queue depths.
func (s *Service) housekeep(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		for {
			n, err := s.q.SweepWebhookEvents(ctx, gen.SweepWebhookEventsParams{RetentionMs: s.cfg.DeliveryRetention.Milliseconds(), BatchSize: 1000})
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("sweep the delivery log", zap.Error(err))
				}
				break
			}
			s.m.swept.Add(float64(n))
			if n < 1000 {
				break
			}
		}
		if depths, err := s.q.WebhookQueueDepths(ctx); err == nil {
			s.m.queueDepth.Reset()
			for _, d := range depths {
				s.m.queueDepth.WithLabelValues(d.WebhookID.String()).Set(float64(d.Pending))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
