package main

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db"
)

// baseline is the floor: a customer INSERT and an outbox INSERT in one
// transaction through pgx, with no HTTP, validation, event building or relay.
// Its database has the same schema (indexes and the outbox NOTIFY trigger
// included), so the difference is what our service adds.
type baseline struct {
	pool *pgxpool.Pool
	// sent writes the events as sent already, so that a relay on the same
	// database (the search case's) leaves them alone.
	sent bool
}

// baselineEvent is about as large as the CloudEvent the service stores.
var baselineEvent = []byte(`{"specversion":"1.0","id":"0195f0c4-0000-7000-8000-000000000000","source":"/customerbus/customers","type":"customer.created","subject":"0195f0c4-0000-7000-8000-000000000000","datacontenttype":"application/json","time":"2026-11-24T20:00:00.000000Z","sequence":"1","partitionkey":"0195f0c4-0000-7000-8000-000000000000","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","authtype":"service_account","authid":"0195f0c4-0000-7000-8000-000000000000","data":{"id":"0195f0c4-0000-7000-8000-000000000000","email":"x@bench.example","first_name":"Bench","last_name":"User","company_name":"","phone":null,"note":"","is_active":true,"language_code":"en","external_reference":null,"metadata":{"source":"bench"},"has_account":false,"is_verified":false,"version":1,"created_at":"2026-11-24T20:00:00Z","updated_at":"2026-11-24T20:00:00Z"}}`)

func newBaseline(ctx context.Context, url string, conns int) (*baseline, error) {
	pool, err := db.Connect(ctx, url, int32(conns))
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &baseline{pool: pool}, nil
}

func (b *baseline) close() { b.pool.Close() }

type baseResult struct {
	rate float64
	lat  percentiles
	cpu  cpuUse // during the measured window
	n    int
}

func (b *baseline) measure(ctx context.Context, c int, warmup, duration time.Duration) (baseResult, error) {
	op := func(n int64) (time.Duration, error) { return b.insert(ctx, n) }
	if _, err := runWorkers(ctx, c, warmup, op); err != nil {
		return baseResult{}, err
	}
	var lat []time.Duration
	used, err := cpuDuring(ctx, b.pool, func() (err error) {
		lat, err = runWorkers(ctx, c, duration, op)
		return err
	})
	if err != nil {
		return baseResult{}, err
	}
	return baseResult{rate: float64(len(lat)) / duration.Seconds(), lat: summarize(lat), cpu: used, n: len(lat)}, nil
}

// insert writes customer number n and its event in one transaction and
// returns how long that took. It ignores ctx's cancellation, like an HTTP
// request in flight: the window's end must not abort a transaction.
func (b *baseline) insert(ctx context.Context, n int64) (time.Duration, error) {
	ctx = context.WithoutCancel(ctx)
	num := strconv.FormatInt(n, 10)
	id := uuid.Must(uuid.NewV7())
	start := time.Now()
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO customers (id, email, first_name, last_name, metadata, created_at, updated_at, version)
			VALUES ($1, $2, 'Bench', $3, '{"source":"bench"}', $4, $4, 1)`,
			id, "base-"+num+"@bench.example", "User"+num, start); err != nil {
			return err
		}
		var sentAt *time.Time
		if b.sent {
			sentAt = &start
		}
		_, err := tx.Exec(ctx, `INSERT INTO outbox (event_id, nats_subject, partition_key, event, sent_at) VALUES ($1, $2, $3, $4, $5)`,
			uuid.Must(uuid.NewV7()), "customerbus.events.customer.created", id.String(), baselineEvent, sentAt)
		return err
	})
	return time.Since(start), err
}

// avgEventSize is the mean size of the events in a database's outbox, to show
// the baseline's payload is comparable with ours.
func avgEventSize(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT COALESCE(avg(octet_length(event)), 0)::int FROM outbox`).Scan(&n)
	return n, err
}
