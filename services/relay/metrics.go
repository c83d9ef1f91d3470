package relay

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	published prometheus.Counter
	failures  prometheus.Counter
	batch     prometheus.Histogram
	// erased counts messages erased from the streams; erasureFailures
	// the erasures that failed (and are retried).
	erased          prometheus.Counter
	erasureFailures prometheus.Counter
	// reconciled counts, per stream, the events the reconciler found lost
	// and published again; reconcileFailures its passes that failed.
	reconciled        *prometheus.CounterVec
	reconcileFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
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
		reg.MustRegister(m.published, m.failures, m.batch, m.erased, m.erasureFailures, m.reconciled, m.reconcileFailures)
	}
	return m
}
