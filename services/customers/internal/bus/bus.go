// Package bus is the command service's NATS adapter: the durable consumer
// of the commands integrators publish (bus.go, consumer.go), how a command
// is read and ordered (command.go), how a lane's batch is shared between
// instances (share.go) and applied once, in savepoints, with its record
// and its rejection (apply.go, run.go), and the same commands as a NATS
// micro service (rpc.go). It runs the same use cases as the HTTP adapter;
// neither adapter imports the other.
package bus

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
	"github.com/customerbus/customerbus/services/customers/internal/order"
)

// Config tunes the consumer of bus commands.
type Config struct {
	// AckWait is how long JetStream waits for an answer before it delivers
	// a command again. The instance holding a command tells JetStream it is
	// in hand every AckWait/4 (keepAlive), so AckWait does not bound how
	// long a command may take; it is how soon the commands of an instance
	// that died come back.
	AckWait time.Duration `env:"COMMANDS_ACK_WAIT" envDefault:"2s"`
	// RetryDelay is the wait before a command that failed on our side (the
	// database was down, say) is tried again, in place.
	RetryDelay time.Duration `env:"COMMANDS_RETRY_DELAY" envDefault:"2s"`
	// PinnedTTL is how long the instance that reads commands may go without
	// pulling before another instance takes over (one that stops hands over
	// at once; one that is killed or hangs cannot): with the defaults,
	// commands flow again within 4 s of the reader's death. The commands it
	// held are due again before then (see pullExpiry), so the next reader
	// gets them before newer ones and puts them in stream order
	// (readCommands); inOrder refuses any that would still undo a newer
	// command.
	PinnedTTL time.Duration `env:"COMMANDS_PINNED_TTL" envDefault:"4s"`
	// DrainTimeout bounds how long a stopping instance applies the commands
	// it holds before it gives them back (due again at once).
	DrainTimeout time.Duration `env:"COMMANDS_DRAIN_TIMEOUT" envDefault:"15s"`
	// Retention is how long a processed command's id (and an order key's
	// last sequence) is remembered: a command published again later than
	// that is applied again. Like Idempotency-Key's 24 h, but for machines
	// that may replay a stream: 30 days.
	Retention time.Duration `env:"COMMANDS_RETENTION" envDefault:"720h"`
	// DeadLetterMaxAge is how long CUSTOMERBUS_COMMANDS_DLQ keeps a command.
	DeadLetterMaxAge time.Duration `env:"DEADLETTER_MAX_AGE" envDefault:"720h"`
	// StreamReplicas is how many replicas the command streams have at
	// least; a stream with more keeps them (events.EnsureStream).
	StreamReplicas int `env:"STREAM_REPLICAS" envDefault:"1"`
}

// WithDefaults fills what is unset or out of range with the defaults.
func (c Config) WithDefaults() Config {
	if c.AckWait <= 0 {
		c.AckWait = 2 * time.Second
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 2 * time.Second
	}
	if c.PinnedTTL <= 0 {
		c.PinnedTTL = 4 * time.Second
	}
	if c.PinnedTTL < c.AckWait+2*time.Second {
		c.PinnedTTL = 2*c.AckWait + 2*time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 15 * time.Second
	}
	if c.Retention < time.Hour {
		c.Retention = 720 * time.Hour
	}
	if c.DeadLetterMaxAge <= 0 {
		c.DeadLetterMaxAge = events.DefaultDeadLetterMaxAge
	}
	return c
}

// pullExpiry is how long each pull of the reading instance waits. The pin
// is renewed with every pull, so a reader's last pull before it died is at
// most one expiry old, and its pin passes on PinnedTTL later: the room
// left after AckWait (pinMargin) is what lets the commands it held be due
// again first. Half the room between PinnedTTL and AckWait, between 1 s and
// 30 s: with PinnedTTL at least AckWait + 2 s, pinMargin is at least 1 s.
func (c Config) pullExpiry() time.Duration {
	return min(max((c.PinnedTTL-c.AckWait)/2, time.Second), 30*time.Second)
}

// pinMargin is how long after a reader's last pull the commands it holds
// may last be heard of and still be due again before its pin can pass to
// another instance.
func (c Config) pinMargin() time.Duration {
	return c.PinnedTTL - c.pullExpiry() - c.AckWait
}

// commandsGroup is the consumer's priority group: one instance at a time is
// pinned to it and reads the commands, so that one customer's commands keep
// their order (inOrder guards what a crashed reader held); all instances
// apply the batches it sends (see applySubject).
const commandsGroup = "commands"

// Dead-letter headers: why a command could not be run at all.
const (
	DeadLetterReasonHeader  = "Customerbus-Deadletter-Reason"
	DeadLetterSubjectHeader = "Customerbus-Deadletter-Subject"
	// DeadLetterTruncatedHeader says why a dead letter has no data.
	DeadLetterTruncatedHeader = "Customerbus-Deadletter-Truncated"
)

// Bus is the command service's bus adapter: it reads the commands
// integrators publish on JetStream and serves the same commands as NATS
// requests, running each through the customer use cases.
type Bus struct {
	cfg      Config
	log      *zap.Logger
	pool     *pgxpool.Pool
	useCases UseCases
	// duplicates keeps the global duplicates list current (findDuplicates).
	duplicates DuplicateFinder
	// applied counts the bus and request commands this instance ran, by
	// outcome.
	applied *prometheus.CounterVec
	// deadLettered counts the commands moved to the dead-letter stream:
	// invalid (not a command at all) or refused (no retry can run it).
	deadLettered *prometheus.CounterVec
}

// UseCases gives the use cases working in a transaction of the caller's: a
// command's changes commit together with the record of its id.
type UseCases func(tx pgx.Tx) Domain

// Domain is the use cases a command may run.
type Domain struct {
	Customers *customer.Service
	Orders    *order.Service
	Merges    *merge.Service
}

// New returns the bus adapter; its metrics go to reg.
func New(pool *pgxpool.Pool, log *zap.Logger, reg prometheus.Registerer, cfg Config, useCases UseCases, duplicates DuplicateFinder) *Bus {
	applied := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customerbus_commands_total",
		Help: "Bus commands (and their requests) this instance ran: applied, rejected, or repeated (its id was processed before).",
	}, []string{"outcome"})
	for _, o := range []string{"applied", "rejected", "repeated"} {
		applied.WithLabelValues(o) // shown as 0 before the first one
	}
	deadLettered := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "customerbus_commands_deadlettered_total",
		Help: "Bus commands moved to " + events.CommandsDeadLetterStream + ", by reason: invalid (not a command) or refused (no retry can run it).",
	}, []string{"reason"})
	for _, r := range []string{deadLetterInvalid, deadLetterRefused} {
		deadLettered.WithLabelValues(r) // shown as 0 before the first one
	}
	reg.MustRegister(applied, deadLettered)
	return &Bus{cfg: cfg.WithDefaults(), log: log, pool: pool, useCases: useCases, duplicates: duplicates,
		applied: applied, deadLettered: deadLettered}
}

// Run applies the commands integrators publish on the bus, and serves them
// as NATS requests (see serveRPC), until ctx ends. Each command runs
// through the same use cases as HTTP, in one transaction with the record
// of its id: a command delivered or published again is recognised and
// changes nothing twice. A refused command gets a command.rejected event
// with the problem HTTP would have answered; a message that cannot be a
// command at all goes to the dead-letter stream too.
func (b *Bus) Run(ctx context.Context, js jetstream.JetStream) error {
	g, ctx := errgroup.WithContext(ctx)
	// This instance keeps applying batches until its own reading is done:
	// a stopping reader drains its lanes through the queue group.
	applyCtx, stopApplying := context.WithCancel(context.WithoutCancel(ctx))
	g.Go(func() error { return b.serveRPC(ctx, js.Conn()) })
	g.Go(func() error { return b.serveApply(applyCtx, js.Conn()) })
	g.Go(func() error { return b.findDuplicates(ctx, js) })
	g.Go(func() error {
		defer stopApplying()
		return b.consumeCommands(ctx, js)
	})
	return g.Wait()
}
