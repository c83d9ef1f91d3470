package main

import (
	"context"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/db/outbox"
	"github.com/customerbus/customerbus/events"
)

// syncBurst is how many events the sync case commits at once to time the
// relay's publishing.
const syncBurst = 20_000

// syncResult is one run of the sync case on one setting.
type syncResult struct {
	creates    apiResult
	publishing float64 // events a second, commit of a burst to its last ack
}

// runSync measures what deploy/nats's `sync_interval: always` costs: with
// it, JetStream fsyncs every message before acknowledging it (Jepsen's NATS
// 2.12.1 analysis lost acknowledged writes under the default, which syncs
// every two minutes). Each setting runs twice, alternating, on a system of
// its own: HTTP creates at concurrency 32 with commit → event latency, and
// the relay's publishing rate for a burst of syncBurst committed events.
func runSync(ctx context.Context, adminURL, name string, opt options) error {
	settings := []struct {
		name string
		tune func(*server.Options)
	}{
		{"default (sync every 2 min)", func(*server.Options) {}},
		{"sync_interval: always", func(o *server.Options) { o.SyncAlways = true }},
	}
	fmt.Printf("sync: what JetStream's sync_interval: always costs, one embedded node, each setting twice, alternating\n")
	fmt.Printf("  %-28s %12s %14s %14s %16s\n", "setting", "creates/s", "event p50", "event p99", "relay events/s")
	results := make([][]syncResult, len(settings))
	for round := range 2 {
		for i, s := range settings {
			r, err := syncRun(ctx, adminURL, fmt.Sprintf("%s_%d_%d", name, i, round), opt, s.tune)
			if err != nil {
				return fmt.Errorf("sync (%s): %w", s.name, err)
			}
			results[i] = append(results[i], r)
			fmt.Printf("  %-28s %12.0f %14s %14s %16.0f\n", s.name, r.creates.rate, ms(r.creates.event.p50), ms(r.creates.event.p99), r.publishing)
		}
	}
	for round := range 2 {
		def, always := results[0][round], results[1][round]
		fmt.Printf("  round %d, always ÷ default: creates %.2f, event p99 %.2f, relay publishing %.2f\n", round+1,
			always.creates.rate/def.creates.rate, always.creates.event.p99.Seconds()/def.creates.event.p99.Seconds(), always.publishing/def.publishing)
	}
	return nil
}

// syncRun is one measurement of the sync case on a fresh system whose NATS
// server tune adjusts.
func syncRun(ctx context.Context, adminURL, name string, opt options, tune func(*server.Options)) (syncResult, error) {
	dbURL, drop, err := freshDatabase(ctx, adminURL, name)
	if err != nil {
		return syncResult{}, err
	}
	defer drop()
	sys, err := startSystem(ctx, dbURL, opt.dbConns, aimConcurrency, tuning{nats: tune})
	if err != nil {
		return syncResult{}, err
	}
	defer sys.close()
	creates, err := sys.measure(ctx, aimConcurrency, opt.warmup, opt.duration)
	if err != nil {
		return syncResult{}, err
	}
	rate, err := relayBurst(ctx, sys)
	return syncResult{creates: creates, publishing: rate}, err
}

// relayBurst commits syncBurst events, one per customer so that every relay
// batch is full, and returns how many a second the relay published, from
// the commit to the last one marked sent.
func relayBurst(ctx context.Context, sys *system) (float64, error) {
	evs := make([]cloudevents.Event, syncBurst)
	for i := range evs {
		id := uuid.Must(uuid.NewV7())
		e, err := events.New(events.Meta{
			Type: events.CustomerUpdated, Source: events.SourceCustomers, Subject: id.String(), PartitionKey: id.String(),
			Sequence: 1, Time: time.Now(), TraceParent: events.NewTraceParent(),
			Actor: events.Actor{Type: events.AuthServiceAccount, ID: "bench"},
		}, map[string]any{"id": id, "version": 1, "changed": []string{"note"}})
		if err != nil {
			return 0, err
		}
		evs[i] = e
	}
	if err := pgx.BeginFunc(ctx, sys.pool, func(tx pgx.Tx) error { return outbox.Write(ctx, gen.New(tx), evs) }); err != nil {
		return 0, err
	}
	start := time.Now()
	for deadline := start.Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		var unsent int
		if err := sys.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&unsent); err != nil {
			return 0, err
		}
		if unsent == 0 {
			return float64(syncBurst) / time.Since(start).Seconds(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d events unsent after 5 min", unsent, syncBurst)
		}
	}
}
