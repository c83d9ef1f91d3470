package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db"
)

// baseline is the floor: a customer INSERT and an outbox INSERT in one
// transaction through pgx, with no HTTP, validation, events or relay.
type baseline struct{ pool *pgxpool.Pool }

// baselineEvent is about as large as the CloudEvent the service stores.
var baselineEvent = []byte(`{"specversion":"1.0","id":"0195f0c4-0000-7000-8000-000000000000","source":"/customerbus/customers","type":"customer.created","subject":"0195f0c4-0000-7000-8000-000000000000","datacontenttype":"application/json","dataschema":"https://customerbus.dev/schemas/events/customer.created.json","time":"2026-11-24T20:00:00.000000Z","sequence":"1","partitionkey":"0195f0c4-0000-7000-8000-000000000000","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","authtype":"service_account","authid":"0195f0c4-0000-7000-8000-000000000000","data":{"id":"0195f0c4-0000-7000-8000-000000000000","email":"x@bench.example","first_name":"Bench","last_name":"User","company_name":"","phone":null,"note":"","is_active":true,"language_code":"en","external_reference":null,"metadata":{"source":"bench"},"has_account":false,"is_verified":false,"version":1,"created_at":"2026-11-24T20:00:00Z","updated_at":"2026-11-24T20:00:00Z"}}`)

func newBaseline(ctx context.Context, url string, conns int) (*baseline, error) {
	pool, err := db.Connect(ctx, url, int32(conns))
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	return &baseline{pool: pool}, nil
}

func (b *baseline) close() { b.pool.Close() }

type baseResult struct {
	rate float64
	lat  percentiles
}

func (b *baseline) measure(ctx context.Context, c int, warmup, duration time.Duration) (baseResult, error) {
	if _, err := b.load(ctx, c, warmup); err != nil {
		return baseResult{}, err
	}
	lat, err := b.load(ctx, c, duration)
	if err != nil {
		return baseResult{}, err
	}
	return baseResult{rate: float64(len(lat)) / duration.Seconds(), lat: summarize(lat)}, nil
}

func (b *baseline) load(ctx context.Context, c int, d time.Duration) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	results := make([][]time.Duration, c)
	errs := make([]error, c)
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				start := time.Now()
				err := b.insert(context.WithoutCancel(ctx), fmt.Sprintf("%s-%d-%d", randomHex(6), w, n))
				if err != nil {
					errs[w] = err
					return
				}
				if ctx.Err() == nil {
					results[w] = append(results[w], time.Since(start))
				}
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	for w := range c {
		if errs[w] != nil {
			return nil, errs[w]
		}
		all = append(all, results[w]...)
	}
	return all, nil
}

func (b *baseline) insert(ctx context.Context, key string) error {
	id := uuid.Must(uuid.NewV7())
	now := time.Now()
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO customers (id, email, first_name, last_name, metadata, created_at, updated_at)
			VALUES ($1, $2, 'Bench', $3, '{"source":"bench"}', $4, $4)`, id, strings.ToLower(key)+"@bench.example", "User "+key, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO outbox (event_id, nats_subject, partition_key, event) VALUES ($1, $2, $3, $4)`,
			uuid.Must(uuid.NewV7()), "customerbus.events.customer.created", id.String(), baselineEvent)
		return err
	})
}
