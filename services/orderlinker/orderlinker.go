// Package orderlinker attaches guest orders to the customer account that
// proves their email. It reacts to public events: an account's email
// becoming verified (customer.verified, customer.password_changed after a
// set-password email, customer.email_changed) and a guest order being
// recorded (order.recorded).
//
// It links only to verified accounts: otherwise anyone registering with
// someone else's address would see that person's orders. Linking is
// idempotent by construction: it moves guest orders only, so a redelivered
// event finds none left and emits nothing.
//
// Each instance also reads every event of the customers and orders, to say
// when one of them is missing: a gap in a resource's sequence (see
// watchSequences).
package orderlinker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/db/outbox"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
)

// Config of the order linker, read from the environment.
type Config struct {
	// AckWait is how long JetStream waits before delivering a message again.
	AckWait time.Duration `env:"ORDERLINKER_ACK_WAIT" envDefault:"30s"`
	// RetryDelay is the wait before a message that failed (the database was
	// down, say) is tried again.
	RetryDelay time.Duration `env:"ORDERLINKER_RETRY_DELAY" envDefault:"5s"`
}

// ConsumerName is the durable consumer every instance shares.
const ConsumerName = "orderlinker"

// Source is the CloudEvents source of the events the linker emits.
const Source = "/customerbus/orderlinker"

// triggers are the event types the linker reacts to.
var triggers = []string{events.CustomerVerified, events.CustomerPasswordChanged, events.CustomerEmailChanged, events.OrderRecorded}

// watched are the subjects of the events whose sequences the linker
// watches: those of the customers and of the orders (with the transfer
// requests, whose events share the prefix), the resources of its triggers.
var watched = []string{events.EventsSubjectPrefix + "customer.>", events.EventsSubjectPrefix + "order.>"}

// sequenceMemory is how many resources the linker remembers the sequence
// of: the most recently changed. At about 100 bytes each, 10 MB at most.
const sequenceMemory = 100_000

// Linker links guest orders.
type Linker struct {
	pool *pgxpool.Pool
	q    *gen.Queries
	js   jetstream.JetStream
	log  *zap.Logger
	cfg  Config
	gaps prometheus.Counter
}

// New returns a linker.
func New(pool *pgxpool.Pool, js jetstream.JetStream, log *zap.Logger, reg prometheus.Registerer, cfg Config) *Linker {
	gaps := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "customerbus_orderlinker_sequence_gaps_total",
		Help: "Events of a customer or order whose sequence jumped past the next of their resource: the events between had not come.",
	})
	reg.MustRegister(gaps)
	return &Linker{pool: pool, q: gen.New(pool), js: js, log: log.Named("orderlinker"), cfg: cfg, gaps: gaps}
}

// Run consumes events, and watches the sequences, until ctx ends.
func (l *Linker) Run(ctx context.Context) error {
	cons, err := l.consumer(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return l.watchSequences(ctx) })
	g.Go(func() error {
		it, err := events.Messages(cons, events.PullExpiry)
		if err != nil {
			return fmt.Errorf("orderlinker: consume: %w", err)
		}
		// Stopping drains: the events already pulled are given back (a
		// Nak) rather than left to wait out AckWait.
		defer context.AfterFunc(ctx, it.Drain)()
		return events.EachMessage(it, func(msg jetstream.Msg) { l.handle(ctx, msg) },
			func(err error) { l.log.Warn("consume", zap.Error(err)) })
	})
	return g.Wait()
}

// watchSequences logs and counts each event of the watched resources that
// jumps past the next sequence of its resource (events.WatchSequences). A
// gap is only said: an event the stream lost is published again by the
// relay's reconciler (within the hour by default), and linked then; an
// erased one is gone on purpose.
func (l *Linker) watchSequences(ctx context.Context) error {
	return events.WatchSequences(ctx, l.js, watched, sequenceMemory, l.log, func(e cloudevents.Event, expected int64) {
		l.gaps.Inc()
		events.LogGap(l.log, e, expected)
	})
}

// consumer creates the durable consumer, retrying while the events stream
// (the relay creates it) is not there yet.
func (l *Linker) consumer(ctx context.Context) (jetstream.Consumer, error) {
	subjects := make([]string, len(triggers))
	for i, t := range triggers {
		subjects[i] = events.Subject(t)
	}
	return events.DurableConsumer(ctx, l.js, events.EventsStream, jetstream.ConsumerConfig{
		Durable:        ConsumerName,
		Description:    "links guest orders to verified customers",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        l.cfg.AckWait,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: subjects,
	}, nil, func(err error, backoff time.Duration) {
		l.log.Warn("stream or consumer not ready, retrying", zap.Error(err), zap.Duration("backoff", backoff))
	})
}

func (l *Linker) handle(ctx context.Context, msg jetstream.Msg) {
	log := l.log
	e, err := events.FromMsg(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
	if err == nil {
		var span trace.Span
		ctx, span = tracing.Handling(ctx, "orderlinker handle", e)
		log = tracing.Logger(ctx, log)
		err = l.apply(ctx, e)
		tracing.End(span, err)
	}
	switch {
	case errors.Is(err, errPoison), errors.Is(err, events.ErrInvalidEvent):
		// No retry can fix it; the publisher's contract test would catch it.
		log.Error("dropping unusable event", zap.String("subject", msg.Subject()), zap.Error(err))
		_ = msg.Term()
	case err != nil:
		log.Warn("link failed; will retry", zap.String("event", e.ID()), zap.Error(err))
		_ = msg.NakWithDelay(l.cfg.RetryDelay)
	default:
		_ = msg.Ack()
	}
}

var errPoison = errors.New("orderlinker: unusable event")

// apply links the guest orders an event may have made linkable.
func (l *Linker) apply(ctx context.Context, e cloudevents.Event) error {
	if e.Type() == events.OrderRecorded {
		var o events.Order
		if err := e.DataAs(&o); err != nil {
			return fmt.Errorf("%w: %v", errPoison, err)
		}
		if o.CustomerID != nil {
			return nil
		}
		c, err := l.q.GetCustomerByEmail(ctx, o.Email)
		if errors.Is(err, pgx.ErrNoRows) {
			// Or the email of a verified customer merged into another.
			c, err = l.q.GetCustomerByMergedEmail(ctx, gen.GetCustomerByMergedEmailParams{Email: &o.Email, OnlyVerified: true})
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // a guest without an account
		}
		if err != nil {
			return err
		}
		return l.Link(ctx, c.ID, e)
	}
	id, err := uuid.Parse(e.Subject())
	if err != nil {
		return fmt.Errorf("%w: subject %q: %v", errPoison, e.Subject(), err)
	}
	return l.Link(ctx, id, e)
}

// Link attaches every guest order carrying the customer's email (or the
// verified email of a customer merged into it) to it, if its email is
// verified, and emits one order.linked per order, about the
// order (subject, and its new version as sequence) with causationid = the
// event that caused it; linking is no change of the customer, whose
// version stays. The customer row is locked, so a concurrent email change
// or deletion cannot slip between the check and the link.
func (l *Linker) Link(ctx context.Context, customerID uuid.UUID, cause cloudevents.Event) error {
	return pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		q := l.q.WithTx(tx)
		rows, err := q.GetCustomersForUpdate(ctx, []uuid.UUID{customerID})
		if err != nil {
			return err
		}
		if len(rows) == 0 || !rows[0].IsVerified {
			return nil // deleted meanwhile, or not proven to own the email
		}
		c := rows[0]
		now := time.Now().UTC().Truncate(time.Microsecond)
		// Its email, and the verified ones of the customers merged into it.
		merged, err := q.VerifiedMergedEmails(ctx, c.ID)
		if err != nil {
			return err
		}
		linked, err := q.LinkGuestOrders(ctx, gen.LinkGuestOrdersParams{CustomerID: &c.ID, Emails: append(merged, c.Email), Now: now})
		if err != nil || len(linked) == 0 {
			return err
		}
		// Oldest first, so the events come in the order the orders were placed.
		slices.SortFunc(linked, func(a, b gen.LinkGuestOrdersRow) int {
			return cmp.Or(a.PlacedAt.Compare(b.PlacedAt), slices.Compare(a.ID[:], b.ID[:]))
		})
		evs := make([]cloudevents.Event, len(linked))
		for i, r := range linked {
			o, err := publicOrder(r)
			if err != nil {
				return err
			}
			evs[i], err = events.New(events.Meta{
				Type: events.OrderLinked, Source: Source, Subject: o.ID.String(), PartitionKey: c.ID.String(),
				Sequence: o.Version, Time: now, TraceParent: traceParent(cause), CausationID: cause.ID(),
				Actor: events.Actor{Type: events.AuthServiceAccount, ID: ConsumerName},
			}, events.OrderLinkedData{Order: o, OrderIDs: []uuid.UUID{o.ID}})
			if err != nil {
				return err
			}
		}
		first, last := linked[0].PlacedAt, linked[len(linked)-1].PlacedAt
		if err := q.AddCustomerOrders(ctx, gen.AddCustomerOrdersParams{ID: c.ID, Orders: int32(len(linked)), FirstPlacedAt: first, LastPlacedAt: last}); err != nil {
			return err
		}
		tracing.Logger(ctx, l.log).Info("linked guest orders", zap.Stringer("customer", c.ID), zap.Int("orders", len(linked)))
		return outbox.Write(ctx, q, evs)
	})
}

// publicOrder is a linked order as events carry it.
func publicOrder(r gen.LinkGuestOrdersRow) (events.Order, error) {
	o := events.Order{
		ID: r.ID, Number: r.Number, Email: r.Email, CustomerID: r.CustomerID, Channel: r.Channel, Total: r.Total,
		Currency: r.Currency, Status: r.Status, PlacedAt: r.PlacedAt.UTC(),
		Version: r.Version, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if err := json.Unmarshal(r.Metadata, &o.Metadata); err != nil {
		return o, fmt.Errorf("orderlinker: order %s metadata: %w", r.ID, err)
	}
	return o, nil
}

// traceParent continues the cause's trace (or starts one, for an event
// published before every event carried one).
func traceParent(e cloudevents.Event) string {
	s, _ := e.Extensions()[events.ExtTraceParent].(string)
	return events.TraceParentFor(s, e.ID())
}
