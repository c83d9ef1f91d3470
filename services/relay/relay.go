// Package relay publishes the outbox to NATS JetStream: every committed event
// at least once, in outbox order, marked sent only after JetStream acked it.
//
// The outbox has two lanes, published side by side: the bulk lane holds an
// import's events, the live lane every other. An import of a million
// customers so never delays the events of ordinary changes. A customer's
// event waits for the customer's earlier unsent events of the other lane
// (see the outbox queries), so each customer's events keep their order.
//
// Exactly one relay publishes a lane at a time (a PostgreSQL advisory lock
// per lane, held for the length of each batch's transaction), so with
// several relays running a customer's events are never interleaved out of
// order; the others stand by. A relay that hangs holding the lock (stopped,
// frozen) loses it with its transaction, which PostgreSQL ends once it sits
// idle longer than a healthy batch ever does (lock.go).
// Re-publication after a crash is harmless: the event id is the Nats-Msg-Id
// and JetStream drops duplicates within events.DuplicateWindow.
//
// A broker can lose messages it acknowledged, or have them deleted behind
// the relay's back: the reconciler (reconcile.go) publishes again every
// event of the last ReconcileWindow that its stream no longer holds.
package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
)

// Config of the relay, read from the environment.
type Config struct {
	BatchSize    int           `env:"RELAY_BATCH_SIZE" envDefault:"500"`
	PollInterval time.Duration `env:"RELAY_POLL_INTERVAL" envDefault:"1s"`
	// Linger is how long a lane waits, once a notification wakes it,
	// before it reads the outbox, so that the events committed meanwhile
	// go in the same batch: a batch costs about as much for twenty events
	// as for one (its round trips, its commit). Zero takes the default
	// (defaultLinger); a negative value reads at once.
	Linger time.Duration `env:"RELAY_LINGER" envDefault:"5ms"`
	// PublishTimeout bounds publishing a batch, sending and acks: it is how
	// long a batch's transaction may sit idle, and so, with
	// lockIdleMargin, how soon a relay that hangs holding a lock loses it.
	PublishTimeout time.Duration `env:"RELAY_PUBLISH_TIMEOUT" envDefault:"2s"`
	Retention      time.Duration `env:"OUTBOX_RETENTION" envDefault:"24h"`
	StreamMaxAge   time.Duration `env:"EVENTS_MAX_AGE" envDefault:"0s"`
	// ReconcileInterval is how often the reconciler checks that the streams
	// hold the events published in the last ReconcileWindow. The window is
	// never longer than Retention (the outbox must still hold the events)
	// nor, per stream, than its MaxAge (older events expire on purpose).
	ReconcileInterval time.Duration `env:"RELAY_RECONCILE_INTERVAL" envDefault:"30s"`
	ReconcileWindow   time.Duration `env:"RELAY_RECONCILE_WINDOW" envDefault:"1h"`
	// StreamReplicas is how many replicas the streams have at least; a
	// stream with more keeps them (events.EnsureStream).
	StreamReplicas int `env:"STREAM_REPLICAS" envDefault:"1"`
	// PublicBaseURL is the command service's address as consumers reach it;
	// each event's dataschema is its schema's URL there (events.SchemaURL).
	// Empty is the API's own address.
	PublicBaseURL string `env:"PUBLIC_BASE_URL"`
}

// lane is one of the outbox's two lanes: its advisory lock and its query.
// One lane's loop also purges the sent events of both.
type lane struct {
	name    string
	bulk    bool // the outbox rows' bulk column
	lockKey int64
	unsent  func(q *gen.Queries, ctx context.Context, batchSize int32) ([]gen.Outbox, error)
	purges  bool
}

var (
	liveLane = lane{name: "live", lockKey: 0x637573746f6d6572, unsent: (*gen.Queries).UnsentLiveOutboxEvents, purges: true} // "customer"
	bulkLane = lane{name: "bulk", bulk: true, lockKey: 0x637573746f6d6573, unsent: (*gen.Queries).UnsentBulkOutboxEvents}
)

// notifyChannel is where the outbox trigger announces new events, with an
// empty payload, and an import its bulk events, with bulkPayload
// (NotifyBulkOutbox): the bulk lane wakes only for those, so that the live
// lane's steady stream of creates does not cost a bulk batch each.
const (
	notifyChannel = "outbox"
	bulkPayload   = "bulk"
)

// Relay moves outbox events to JetStream.
type Relay struct {
	pool    *pgxpool.Pool
	q       *gen.Queries
	js      jetstream.JetStream
	log     *zap.Logger
	cfg     Config
	metrics *metrics

	// beforeMarkSent, when set, runs between the publish acks and marking
	// the batch sent. pause runs where the relay holds a lock between
	// statements: before a batch is published ("publish"), before a
	// reconciliation reads the streams ("reconcile"), before an erasure
	// deletes ("erase"). Tests use them to crash the relay, or stop it as
	// SIGSTOP would, at the worst moments.
	beforeMarkSent func() error
	pause          func(at string)
	// batchBegins, when set, runs as each lane's batch begins: tests count
	// what wakes a lane.
	batchBegins func(l lane)
	// clockSkew is how far apart the clocks of PostgreSQL, NATS and the
	// relay may be (maxClockSkew); tests set it to 0 to trust them.
	clockSkew time.Duration
	// verified is what the last whole reconciliation pass found of each
	// stream for the next (verifiedStream); only the reconcile loop uses it.
	verified map[string]verifiedStream
	// erasuresOpen is whether an erasure may be waiting for events to be
	// published: set when a customer.anonymized event is, and by the
	// erase loop after each pass. The live lane wakes the erase loop after
	// a batch only then, not for every batch of creates.
	erasuresOpen atomic.Bool
}

// New returns a relay.
func New(pool *pgxpool.Pool, js jetstream.JetStream, log *zap.Logger, reg prometheus.Registerer, cfg Config) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	switch {
	case cfg.Linger == 0:
		cfg.Linger = defaultLinger
	case cfg.Linger < 0:
		cfg.Linger = 0
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 30 * time.Second
	}
	if cfg.ReconcileWindow <= 0 {
		cfg.ReconcileWindow = time.Hour
	}
	cfg.ReconcileWindow = min(cfg.ReconcileWindow, cfg.Retention)
	q := gen.New(pool)
	return &Relay{pool: pool, q: q, js: js, log: log, cfg: cfg, metrics: newMetrics(reg, q), clockSkew: maxClockSkew}
}

// Run ensures the streams exist, then relays until ctx ends. A batch under way
// when ctx ends is finished, so its events are marked sent.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.ensureStreams(ctx); err != nil {
		return err
	}
	r.erasuresOpen.Store(true) // until the first pass counts them
	wakeLive, wakeBulk, wakeErase := make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{}, 1)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.listen(ctx, wakeLive, wakeBulk) })
	g.Go(func() error { return r.loop(ctx, liveLane, wakeLive, wakeErase) })
	g.Go(func() error { return r.loop(ctx, bulkLane, wakeBulk, nil) })
	g.Go(func() error { return r.eraseLoop(ctx, wakeErase) })
	g.Go(func() error { return r.reconcileLoop(ctx) })
	return g.Wait()
}

// ensureStreams retries while NATS is unreachable: the relay may start first.
func (r *Relay) ensureStreams(ctx context.Context) error {
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		err := r.ensureStreamsOnce(ctx)
		if err == nil {
			return nil
		}
		r.log.Warn("relay: streams not ready, retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

// ensureStreamsOnce creates the streams or updates them to the relay's
// configuration.
func (r *Relay) ensureStreamsOnce(ctx context.Context) error {
	return events.EnsureStreams(ctx, r.js, events.StreamOptions{MaxAge: r.cfg.StreamMaxAge, Replicas: r.cfg.StreamReplicas})
}

// defaultLinger is Linger's default. In the bench's create case it
// gathered about three times as many events a batch (24 against 8 at
// concurrency 32), which took about a quarter off the CPU the whole system
// spent per created customer at concurrency 1 (docs/operations.md, "Group
// commit"), for up to 5 ms more on an event's way when the relay was idle.
const defaultLinger = 5 * time.Millisecond

// maxRetryWait is the longest a lane waits before it tries a failed batch
// again, and the listener before it reconnects. A try while PostgreSQL or
// NATS is down costs a refused connection or a batch read, so trying twice
// a second is cheap, and the events flow again within half a second of
// their being back: waits of up to 5 s had them flow 4.4 s after
// PostgreSQL came back from a kill (see services/customers' outage test).
const maxRetryWait = 500 * time.Millisecond

// loop relays a lane until ctx ends, and purges sent events if the lane
// does. After each batch it publishes, it wakes published while an erasure
// may be open (the erasures wait for their events to be published).
func (r *Relay) loop(ctx context.Context, l lane, wake <-chan struct{}, published chan<- struct{}) error {
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	lastPurge := time.Time{}
	backoff := time.Duration(0)
	for {
		n, more, err := r.relayBatch(ctx, l)
		if err != nil {
			backoff = min(max(2*backoff, 50*time.Millisecond), maxRetryWait)
			r.log.Warn("relay: batch failed, retrying", zap.String("lane", l.name), zap.Error(err), zap.Int("published", n), zap.Duration("backoff", backoff))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		if n > 0 && published != nil && r.erasuresOpen.Load() {
			select {
			case published <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
		if more {
			backoff = 0
			continue
		}
		backoff = 0
		if l.purges && time.Since(lastPurge) > time.Minute {
			lastPurge = time.Now()
			if _, err := r.q.PurgeSentOutbox(ctx, time.Now().Add(-r.cfg.Retention)); err != nil && ctx.Err() == nil {
				r.log.Warn("relay: purge sent events", zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			if !r.linger(ctx, wake) {
				return nil
			}
		case <-poll.C:
		}
	}
}

// linger waits Linger after a wake-up, and drops the wake-ups that came
// meanwhile: their events were committed before they were sent, so the
// batch that follows reads them. It returns false once ctx ends.
func (r *Relay) linger(ctx context.Context, wake <-chan struct{}) bool {
	if r.cfg.Linger <= 0 {
		return true
	}
	t := time.NewTimer(r.cfg.Linger)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	select {
	case <-wake:
	default:
	}
	return true
}

// relayBatch publishes up to BatchSize unsent events of the lane and marks
// the acked ones sent. It returns how many it marked and whether more are
// waiting.
func (r *Relay) relayBatch(ctx context.Context, l lane) (published int, more bool, err error) {
	ctx, cancel := r.batchContext(ctx)
	defer cancel()
	start := time.Now()
	if r.batchBegins != nil {
		r.batchBegins(l)
	}

	tx, q, locked, err := r.beginTryLock(ctx, l.lockKey)
	if err != nil {
		return 0, false, fmt.Errorf("relay: %w", err)
	}
	if !locked {
		return 0, false, nil // another relay is publishing
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	unsent, err := l.unsent(q, ctx, int32(r.cfg.BatchSize))
	if err != nil || len(unsent) == 0 {
		return 0, false, err
	}
	read := time.Now()
	rows := firstPerPartition(unsent)
	more = len(unsent) == r.cfg.BatchSize || len(rows) < len(unsent)
	if r.pause != nil {
		r.pause("publish")
	}

	sending := time.Now()
	acked, pubErr := r.publish(ctx, rows, eventMsgID, read.Add(r.cfg.PublishTimeout))
	r.metrics.observePublish(time.Since(sending), rows[:len(acked)])
	if pubErr == nil && r.beforeMarkSent != nil {
		if err := r.beforeMarkSent(); err != nil {
			return 0, false, err
		}
	}
	if len(acked) > 0 {
		if err := q.MarkSentAndLog(ctx, logParams(rows, acked)); err != nil {
			return 0, false, fmt.Errorf("relay: mark sent: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, false, fmt.Errorf("relay: commit: %w", err)
		}
		if slices.ContainsFunc(rows[:len(acked)], startsErasure) {
			r.erasuresOpen.Store(true)
		}
	}
	r.metrics.published.Add(float64(len(acked)))
	r.metrics.batch.Observe(time.Since(start).Seconds())
	if pubErr != nil {
		r.metrics.failures.Inc()
	}
	return len(acked), more, pubErr
}

// startsErasure tells whether an outbox event is one an erasure waits for:
// the customer.anonymized its command wrote with it.
func startsErasure(row gen.Outbox) bool {
	return events.TypeOf(row.NatsSubject) == events.CustomerAnonymized
}

// batchContext is the context of publishing a batch and recording its acks.
// Shutdown does not cut a batch short: a cut batch would be published again.
func (r *Relay) batchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), r.cfg.PublishTimeout+10*time.Second)
}

// firstPerPartition keeps, of rows in outbox order, only the first event of
// each partition key (customer). With at most one unacknowledged event per
// customer, a lost publish can never be overtaken by that customer's next
// event (nats.go may deliver messages buffered during a reconnect while one
// in flight was lost); the customer's later events go in the following batches.
func firstPerPartition(rows []gen.Outbox) []gen.Outbox {
	seen := make(map[string]struct{}, len(rows))
	out := make([]gen.Outbox, 0, len(rows))
	for _, row := range rows {
		if _, dup := seen[row.PartitionKey]; dup {
			continue
		}
		seen[row.PartitionKey] = struct{}{}
		out = append(out, row)
	}
	return out
}

// ack is where JetStream keeps an outbox event it acknowledged.
type ack struct {
	ID     int64 // the outbox row
	Stream string
	Seq    uint64
}

// publish sends the batch asynchronously (one round of acks, not one per event),
// each event with the Nats-Msg-Id msgID gives it, and returns the acks of the
// leading run of events JetStream acknowledged. It stops at the first
// failure, so nothing after a failed event is marked sent: the next batch
// starts again from it.
//
// It sends and waits for acks only until deadline: PublishTimeout after the
// transaction's last statement, so that the transaction never sits idle
// longer than lockIdleTimeout. A relay that resumes after hanging for
// longer has lost its lock with its transaction, and must send nothing
// more: another relay has published the batch since.
func (r *Relay) publish(ctx context.Context, rows []gen.Outbox, msgID func(gen.Outbox) string, deadline time.Time) (acked []ack, err error) {
	futures := make([]jetstream.PubAckFuture, 0, len(rows))
	// Each event's publish is a span from its send to its ack, in the
	// event's trace; those the batch ends before acking end with its error.
	spans := make([]trace.Span, 0, len(rows))
	defer func() {
		for _, span := range spans[len(acked):] {
			tracing.End(span, err)
		}
	}()
	var sendErr error
	for _, row := range rows {
		if time.Now().After(deadline) {
			sendErr = fmt.Errorf("relay: outbox event %d: not sent within %s", row.ID, r.cfg.PublishTimeout)
			break
		}
		_, span := tracing.Publishing(ctx, row.Event, row.NatsSubject, msgID(row))
		f, err := r.publishAsync(ctx, row, msgID(row))
		if err != nil {
			tracing.End(span, err)
			sendErr = fmt.Errorf("relay: publish outbox event %d: %w", row.ID, err)
			break
		}
		futures, spans = append(futures, f), append(spans, span)
	}
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	acked = make([]ack, 0, len(futures))
	for i, f := range futures {
		select {
		case pa := <-f.Ok():
			acked = append(acked, ack{ID: rows[i].ID, Stream: pa.Stream, Seq: pa.Sequence})
			spans[i].SetAttributes(tracing.Stream.String(pa.Stream), tracing.StreamSequence.Int64(int64(pa.Sequence)))
			spans[i].End()
		case err := <-f.Err():
			return acked, errors.Join(fmt.Errorf("relay: outbox event %d not acked: %w", rows[i].ID, err), sendErr)
		case <-timeout.C:
			return acked, errors.Join(fmt.Errorf("relay: outbox event %d: no ack within %s", rows[i].ID, r.cfg.PublishTimeout), sendErr)
		}
	}
	return acked, sendErr
}

// logParams is the event log's record of the acknowledged events: what a
// history shows of each, and where its stream keeps it. acked is a leading
// run of rows.
func logParams(rows []gen.Outbox, acked []ack) gen.MarkSentAndLogParams {
	var p gen.MarkSentAndLogParams
	for i, a := range acked {
		// An event too broken to read still goes in the log: an erasure
		// must find it. (It could not have been published either.)
		e, _ := events.LogEntryOf(rows[i].Event)
		p.OutboxIds = append(p.OutboxIds, a.ID)
		p.Subjects = append(p.Subjects, e.Subject)
		p.Types = append(p.Types, cmp.Or(e.Type, events.TypeOf(rows[i].NatsSubject)))
		p.Sequences = append(p.Sequences, e.Sequence)
		p.Occurred = append(p.Occurred, cmp.Or(e.Time, rows[i].CreatedAt))
		p.ActorTypes = append(p.ActorTypes, e.Actor.Type)
		p.ActorIds = append(p.ActorIds, e.Actor.ID)
		p.Changed = append(p.Changed, strings.Join(e.Changed, ","))
		p.Streams = append(p.Streams, a.Stream)
		p.StreamSeqs = append(p.StreamSeqs, int64(a.Seq))
	}
	return p
}

// eventMsgID is an event's Nats-Msg-Id when the relay first publishes it:
// its id, so JetStream drops a re-publication after a crash.
func eventMsgID(row gen.Outbox) string { return row.EventID.String() }

// publishAsync sends one outbox event as a CloudEvent message with the
// Nats-Msg-Id msgID, without waiting for its ack.
func (r *Relay) publishAsync(ctx context.Context, row gen.Outbox, msgID string) (jetstream.PubAckFuture, error) {
	msg, err := events.StoredToMsg(ctx, row.Event, msgID, row.NatsSubject, events.SchemaURL(r.cfg.PublicBaseURL, events.TypeOf(row.NatsSubject)))
	if err != nil {
		return nil, err
	}
	// The long way (ToMsg) sets the event id.
	msg.Header.Set(nats.MsgIdHdr, msgID)
	return r.js.PublishMsgAsync(msg)
}

// listen turns outbox notifications into wake-ups of the lanes: a bulk
// notification wakes the bulk lane, any other the live one. It holds one
// connection; when that breaks it reconnects, and the poll covers the gap.
func (r *Relay) listen(ctx context.Context, live, bulk chan<- struct{}) error {
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, live, bulk)
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("relay: listen connection lost, reconnecting", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(maxRetryWait):
		}
	}
	return nil
}

func (r *Relay) listenOnce(ctx context.Context, live, bulk chan<- struct{}) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTENing connection must not go back to the pool.
	defer func() { _ = conn.Hijack().Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{notifyChannel}.Sanitize()); err != nil {
		return err
	}
	wake := func(w chan<- struct{}) {
		select {
		case w <- struct{}{}:
		default: // a wake-up is already pending; the loop will read everything
		}
	}
	wake(live) // events committed before LISTEN took effect
	wake(bulk)
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == bulkPayload {
			wake(bulk)
		} else {
			wake(live)
		}
	}
}
