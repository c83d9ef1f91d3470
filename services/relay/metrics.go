package relay

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	published prometheus.Counter
	failures  prometheus.Counter
	batch     prometheus.Histogram
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
	}
	if reg != nil {
		reg.MustRegister(m.published, m.failures, m.batch)
	}
	return m
}
