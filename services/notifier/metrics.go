package notifier

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sent         *prometheus.CounterVec
	duplicates   prometheus.Counter
	sendFailures prometheus.Counter
	deadLettered *prometheus.CounterVec
	swept        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customerbus_notifier_sent_total", Help: "Notification emails accepted by the SMTP server (or written to the mail directory).",
		}, []string{"type"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_notifier_duplicates_total", Help: "Notification messages whose email had been sent already.",
		}),
		sendFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_notifier_send_failures_total", Help: "Attempts to send an email that the SMTP server refused or could not be reached for.",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customerbus_notifier_deadlettered_total", Help: "Notification messages moved to the dead-letter stream, by reason.",
		}, []string{"reason"}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_notifier_deliveries_swept_total", Help: "Records of sent emails deleted after NOTIFIER_DELIVERY_RETENTION.",
		}),
	}
	for _, r := range []string{reasonInvalid, reasonUndeliverable, reasonUnknownOutcome, reasonStale} {
		m.deadLettered.WithLabelValues(r) // shown as 0 before the first one
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.duplicates, m.sendFailures, m.deadLettered, m.swept)
	}
	return m
}
