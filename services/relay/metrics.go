package relay

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/customerbus/customerbus/db/gen"
)

type metrics struct {
	published prometheus.Counter
	failures  prometheus.Counter
	batch     prometheus.Histogram
	// publish is how long JetStream took to ack a batch's events; delay,
	// per event, how long after its write to the outbox it was acked.
	publish prometheus.Histogram
	delay   prometheus.Histogram
	// erased counts messages erased from the streams; erasureFailures
	// the erasures that failed (and are retried).
	erased          prometheus.Counter
	erasureFailures prometheus.Counter
	// reconciled counts, per stream, the events the reconciler found lost
	// and published again; reconcileFailures its passes that failed.
	reconciled        *prometheus.CounterVec
	reconcileFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, q *gen.Queries) *metrics {
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_relay_published_total", Help: "Outbox events published and acked by JetStream.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_relay_failures_total", Help: "Relay batches that could not publish every event.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "customerbus_relay_batch_seconds", Help: "Time to publish and mark one batch.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5},
		}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "customerbus_relay_publish_duration_seconds", Help: "Time from sending a batch's events to JetStream's acks of them.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "customerbus_relay_publish_delay_seconds", Help: "Time from an event's write to the outbox (its transaction's start) to JetStream's ack of it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		erased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_relay_erased_messages_total", Help: "Messages about erased customers removed from the streams.",
		}),
		erasureFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_relay_erasure_failures_total", Help: "Erasures of the event log that failed and will be retried.",
		}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customerbus_relay_reconciled_total", Help: "Published events their stream lost, found by the reconciler and published again.",
		}, []string{"stream"}),
		reconcileFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_relay_reconcile_failures_total", Help: "Reconciliation passes that failed and will be retried.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.failures, m.batch, m.publish, m.delay, m.erased, m.erasureFailures,
			m.reconciled, m.reconcileFailures, outboxCollector{q})
	}
	return m
}

// observePublish records a batch that took took to be acked, of which
// acked were.
func (m *metrics) observePublish(took time.Duration, acked []gen.Outbox) {
	m.publish.Observe(took.Seconds())
	for _, row := range acked {
		m.delay.Observe(time.Since(row.CreatedAt).Seconds())
	}
}

var (
	outboxUnsent = prometheus.NewDesc("customerbus_outbox_unsent_events",
		"Events in the outbox not published yet, per lane (live, bulk: an import's).", []string{"lane"}, nil)
	outboxOldestAge = prometheus.NewDesc("customerbus_outbox_oldest_unsent_age_seconds",
		"How long ago the lane's first unsent event was written; 0 when none waits.", []string{"lane"}, nil)
)

// outboxCollector reads the outbox's backlog when Prometheus scrapes; a
// database that does not answer in time leaves it out of the scrape.
type outboxCollector struct{ q *gen.Queries }

func (c outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxUnsent
	ch <- outboxOldestAge
}

func (c outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, l := range []lane{liveLane, bulkLane} {
		b, err := c.q.OutboxBacklog(ctx, l.bulk)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(outboxUnsent, prometheus.GaugeValue, float64(b.Unsent), l.name)
		ch <- prometheus.MustNewConstMetric(outboxOldestAge, prometheus.GaugeValue, b.OldestAgeSeconds, l.name)
	}
}
