package main

import (
	"context"
	"maps"
	"net/http"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/ops"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/notifier"
	"github.com/customerbus/customerbus/services/orderlinker"
	"github.com/customerbus/customerbus/services/webhooks"
)

// waits is, per service, the streams and durable consumers it waits for
// besides the database (and NATS, when the process has it): the streams it
// reads, and those it writes to that it does not make (a dead-letter
// stream). Its /readyz checks them, and its /metrics measures them.
var waits = map[string]ops.Needs{
	"customers": {
		Streams: []string{events.CommandsStream, events.CommandsDeadLetterStream, events.EventsStream},
		Consumers: []ops.Consumer{
			{Stream: events.CommandsStream, Durable: events.CommandsConsumer},
			{Stream: events.EventsStream, Durable: customers.DuplicatesConsumer},
		},
		NATSReported: true,
	},
	"relay": {Streams: []string{events.EventsStream, events.NotificationsStream}},
	"notifier": {
		Streams:   []string{events.NotificationsStream, events.NotificationsDeadLetterStream},
		Consumers: []ops.Consumer{{Stream: events.NotificationsStream, Durable: notifier.ConsumerName}},
	},
	"orderlinker": {
		Streams:   []string{events.EventsStream},
		Consumers: []ops.Consumer{{Stream: events.EventsStream, Durable: orderlinker.ConsumerName}},
	},
	"webhooks": {
		Streams:   []string{events.EventsStream},
		Consumers: []ops.Consumer{{Stream: events.EventsStream, Durable: webhooks.ConsumerName}},
	},
}

// everyService is what `run` runs.
var everyService = slices.Sorted(maps.Keys(waits))

// opsFor is the ops endpoints of a process running services on pool and
// js (nil without NATS); the metrics of what they wait for go to reg.
func opsFor(reg *prometheus.Registry, pool *pgxpool.Pool, js jetstream.JetStream, services ...string) http.Handler {
	needs := []ops.Needs{{Pool: pool, JS: js}}
	for _, s := range services {
		needs = append(needs, waits[s])
	}
	return ops.New(reg, ops.Join(needs...))
}

// withOps runs a service alone, and its ops endpoints h on OPS_ADDR beside
// it, until the service returns.
func withOps(ctx context.Context, cfg config, log *zap.Logger, h http.Handler, run func(context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	serviceCtx, serviceDone := context.WithCancel(ctx)
	g.Go(func() error { return ops.Serve(serviceCtx, cfg.OpsAddr, h, log) })
	g.Go(func() error {
		defer serviceDone()
		return run(serviceCtx)
	})
	return g.Wait()
}
