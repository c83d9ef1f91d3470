package notifier

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sent           *prometheus.CounterVec
	duplicates     prometheus.Counter
	sendFailures   prometheus.Counter
	resent         prometheus.Counter
	alreadyWritten prometheus.Counter
	deadLettered   *prometheus.CounterVec
	swept          prometheus.Counter
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
			Name: "customerbus_notifier_send_failures_total", Help: "Attempts to send an email that the SMTP server refused, could not be reached for, or broke off without saying whether it took.",
		}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_notifier_resent_total", Help: "Emails sent again, under the same Message-ID, because an attempt had stopped between claiming and confirming the send.",
		}),
		alreadyWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_notifier_already_written_total", Help: "Emails of interrupted attempts that the file mailer found written already, so it wrote no second copy.",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customerbus_notifier_deadlettered_total", Help: "Notification messages moved to the dead-letter stream, by reason.",
		}, []string{"reason"}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "customerbus_notifier_deliveries_swept_total", Help: "Records of sent emails deleted after NOTIFIER_DELIVERY_RETENTION.",
		}),
	}
	for _, r := range []string{reasonInvalid, reasonUndeliverable, reasonStale} {
		m.deadLettered.WithLabelValues(r) // shown as 0 before the first one
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.duplicates, m.sendFailures, m.resent, m.alreadyWritten, m.deadLettered, m.swept)
	}
	return m
}
