package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
)

// maxFanOutBatch is how many waiting events are stored in one statement.
const maxFanOutBatch = 256

// storeTimeout bounds storing a batch, which stopping does not cut short.
const storeTimeout = 15 * time.Second

// fanOut consumes the public events and turns each into its deliveries.
// The consumer starts at new events: an endpoint gets the events published
// after it was registered.
func (s *Service) fanOut(ctx context.Context) error {
	cons, err := events.DurableConsumer(ctx, s.js, events.EventsStream, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "fans the public events out into webhook deliveries",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		FilterSubject: events.EventsSubjectPrefix + ">",
		MaxAckPending: 4 * maxFanOutBatch,
	}, nil, func(err error, backoff time.Duration) {
		s.log.Warn("events stream or consumer not ready, retrying", zap.Error(err), zap.Duration("backoff", backoff))
	})
	if err != nil || ctx.Err() != nil {
		return err
	}
	it, err := events.Messages(cons, events.PullExpiry, jetstream.PullMaxMessages(2*maxFanOutBatch))
	if err != nil {
		return fmt.Errorf("webhooks: consume: %w", err)
	}
	// Stopping, the fan-out drains: the events already pulled are stored
	// too. Stopped outright, they would wait out AckWait before another
	// instance got them.
	defer context.AfterFunc(ctx, it.Drain)()
	storeCtx := context.WithoutCancel(ctx)
	return events.EachBatch(it, maxFanOutBatch, func(batch []jetstream.Msg) { s.store(storeCtx, batch) },
		func(err error) { s.log.Warn("consume", zap.Error(err)) })
}

// store writes a batch's events and deliveries, then acknowledges them; on
// a failure it leaves them to JetStream to deliver again.
func (s *Service) store(ctx context.Context, batch []jetstream.Msg) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	var p gen.FanOutWebhookEventsParams
	var kept []jetstream.Msg
	// Each event's handling is a span in its trace; the batch's statement
	// stores them all, so they end together, with its outcome.
	var spans []trace.Span
	for _, msg := range batch {
		meta, err := msg.Metadata()
		var e cloudevents.Event
		if err == nil {
			e, err = events.FromMsg(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		}
		var payload []byte
		if err == nil {
			payload, err = json.Marshal(e) // structured mode, whatever the message's
		}
		if err != nil {
			// No retry can fix it; the publisher's contract tests would catch it.
			s.log.Error("dropping unusable event", zap.String("subject", msg.Subject()), zap.Error(err))
			_ = msg.Term()
			continue
		}
		_, span := tracing.Handling(ctx, "webhooks handle", e)
		spans = append(spans, span)
		pk, _ := e.Extensions()[events.ExtPartitionKey].(string)
		p.Ids, p.Types, p.PartitionKeys = append(p.Ids, e.ID()), append(p.Types, e.Type()), append(p.PartitionKeys, pk)
		p.Seqs, p.Payloads = append(p.Seqs, int64(meta.Sequence.Stream)), append(p.Payloads, payload)
		p.Times = append(p.Times, e.Time())
		kept = append(kept, msg)
	}
	if len(kept) == 0 {
		return
	}
	n, err := s.q.FanOutWebhookEvents(ctx, p)
	for _, span := range spans {
		tracing.End(span, err)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("storing deliveries failed; JetStream delivers the events again", zap.Int("events", len(kept)), zap.Error(err))
		}
		for _, msg := range kept {
			_ = msg.NakWithDelay(time.Second)
		}
		return
	}
	s.m.fannedOut.Add(float64(n))
	if n > 0 {
		s.poke()
	}
	for _, msg := range kept {
		_ = msg.Ack()
	}
}
