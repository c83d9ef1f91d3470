package webhooks

import "github.com/prometheus/client_golang/prometheus"

// metricsRegisterer is where the metrics go (nil: nowhere).
type metricsRegisterer = prometheus.Registerer

// Outcomes of an attempt, the label of customerbus_webhook_deliveries_total.
const (
	outcomeDelivered = "delivered" // a 2xx
	outcomeRetrying  = "retrying"  // failed; tried again later
	outcomeFailed    = "failed"    // failed the last time: given up
	outcomeGone      = "gone"      // a 410: the endpoint is disabled
)

type metrics struct {
	deliveries *prometheus.CounterVec
	latency    prometheus.Histogram
	queueDepth *prometheus.GaugeVec
	fannedOut  prometheus.Counter
	disabled   *prometheus.CounterVec
	swept      prometheus.Counter
	gaps       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customerbus_webhook_deliveries_total", Help: "Webhook delivery attempts, by outcome: delivered, retrying, failed (given up), gone (410).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "customerbus_webhook_delivery_seconds", Help: "How long an endpoint took to answer an attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "customerbus_webhook_queue_depth", Help: "Deliveries waiting, per endpoint (updated every 10 s).",
		}, []string{"webhook_id"}),
		fannedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_webhook_deliveries_created_total", Help: "Deliveries created from events, one per matching endpoint.",
		}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customerbus_webhook_endpoints_disabled_total", Help: "Endpoints the service disabled, by reason: gone (410) or failing.",
		}, []string{"reason"}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_webhook_events_swept_total", Help: "Events deleted with their delivery log after WEBHOOKS_DELIVERY_RETENTION.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_webhook_sequence_gaps_total", Help: "Public events whose sequence jumped past the next of their resource: the endpoints did not get the events between.",
		}),
	}
	for _, o := range []string{outcomeDelivered, outcomeRetrying, outcomeFailed, outcomeGone} {
		m.deliveries.WithLabelValues(o) // shown as 0 before the first one
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.latency, m.queueDepth, m.fannedOut, m.disabled, m.swept, m.gaps)
	}
	return m
}
