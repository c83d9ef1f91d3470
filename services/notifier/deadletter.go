package notifier

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customerbus/customerbus/events"
)

// The dead-letter stream keeps notification messages the notifier gave up on,
// unchanged (headers and body) plus headers saying why. It holds one-time
// tokens like the notifications stream, so only the notifier and operators
// may read it.
const (
	DeadLetterStream        = events.NotificationsDeadLetterStream
	DeadLetterSubjectPrefix = "customerbus.deadletter.notifications."

	// HeaderReason is the error that made the notifier give up.
	HeaderReason = "Customerbus-Deadletter-Reason"
	// HeaderReasonKind is one of the reason* words, as the metric counts them.
	HeaderReasonKind = "Customerbus-Deadletter-Kind"
	// HeaderDeliveries is how many times the message had been delivered.
	HeaderDeliveries = "Customerbus-Deadletter-Deliveries"
	// HeaderStreamSequence is the message's sequence in the notifications stream.
	HeaderStreamSequence = "Customerbus-Deadletter-Stream-Sequence"
)

// Why a message was dead-lettered.
const (
	reasonInvalid       = "invalid"       // not a notification CloudEvent the notifier can render
	reasonUndeliverable = "undeliverable" // the SMTP server refused it, was unreachable or broke off, every try
	reasonStale         = "stale"         // older than the delivery records are kept: it may have been sent, its record swept
)

func deadLetterStreamConfig(maxAge time.Duration, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		MaxAge:      maxAge,
		Replicas:    replicas,
		Name:        DeadLetterStream,
		Description: "customerbus notification messages the notifier gave up on; they carry one-time tokens",
		Subjects:    []string{DeadLetterSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  events.DuplicateWindow,
	}
}

// deadLetter copies msg to the dead-letter stream and, once JetStream has it,
// terminates msg so it is never delivered again. The copy's Nats-Msg-Id is the
// original's stream sequence: a notifier that dies between the two steps
// copies it again on redelivery, and JetStream drops the second copy.
func (n *Notifier) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, kind string, why error) error {
	suffix := strings.TrimPrefix(msg.Subject(), events.NotificationsSubjectPrefix)
	out := nats.NewMsg(DeadLetterSubjectPrefix + suffix)
	for k, vs := range msg.Headers() {
		out.Header[k] = append([]string(nil), vs...)
	}
	seq := strconv.FormatUint(meta.Sequence.Stream, 10)
	out.Header.Set(nats.MsgIdHdr, events.NotificationsStream+"-"+seq)
	out.Header.Set(HeaderReason, oneLine(why.Error()))
	out.Header.Set(HeaderReasonKind, kind)
	out.Header.Set(HeaderDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
	out.Header.Set(HeaderStreamSequence, seq)
	out.Data = msg.Data()
	if _, err := n.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("notifier: dead-letter: %w", err)
	}
	n.metrics.deadLettered.WithLabelValues(kind).Inc()
	if err := msg.TermWithReason(kind); err != nil {
		return fmt.Errorf("notifier: terminate after dead-letter: %w", err)
	}
	return nil
}

// oneLine makes an error fit a NATS header, which cannot hold line breaks.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
