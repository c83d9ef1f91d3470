package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/events"
)

// DuplicatesConsumer is the durable consumer the command service's
// instances share to keep the global duplicates list current.
const DuplicatesConsumer = "duplicates"

// duplicateTriggers are the events that can change whom a customer looks
// like: its email, phone, names, company, metadata or addresses. A deleted
// customer's pairs go with its row.
var duplicateTriggers = []string{
	events.CustomerCreated, events.CustomerUpdated, events.CustomerEmailChanged, events.CustomerMetadataUpdated,
	events.CustomerAddressCreated, events.CustomerAddressUpdated, events.CustomerAddressDeleted,
	events.CustomerMerged, events.CustomerAnonymized,
}

// Tuning of the duplicate finder: these are no settings, as its work is
// idempotent and catches up by itself.
const (
	duplicatesAckWait    = 30 * time.Second
	duplicatesRetryDelay = 5 * time.Second
	// maxDuplicatesBatch is how many waiting events are rescored together:
	// an import's thousands of creates cost one write per batch.
	maxDuplicatesBatch = 100
)

// DuplicateFinder rescores customers' duplicate pairs.
type DuplicateFinder interface {
	// RefreshDuplicates scores the pairs of these customers afresh.
	RefreshDuplicates(ctx context.Context, ids []uuid.UUID) error
	// BuildDuplicates scores every pair, once per database unless again.
	BuildDuplicates(ctx context.Context, again bool) (bool, error)
}

// findDuplicates keeps the global duplicates list current: it consumes the
// customers' public events and rescores the pairs of each customer they
// are about. Rescoring reads the customer as it is now, so redelivered or
// reordered events do no harm. Pairs of customers that were there before
// the consumer are built once, after it exists, so nothing falls between.
func (b *Bus) findDuplicates(ctx context.Context, js jetstream.JetStream) error {
	subjects := make([]string, len(duplicateTriggers))
	for i, t := range duplicateTriggers {
		subjects[i] = events.Subject(t)
	}
	cons, err := events.DurableConsumer(ctx, js, events.EventsStream, jetstream.ConsumerConfig{
		Durable:        DuplicatesConsumer,
		Description:    "rescores the duplicate pairs of changed customers",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        duplicatesAckWait,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		FilterSubjects: subjects,
		MaxAckPending:  4 * maxDuplicatesBatch,
	}, nil, func(err error, backoff time.Duration) {
		b.log.Warn("duplicates: events stream or consumer not ready, retrying", zap.Error(err), zap.Duration("backoff", backoff))
	})
	if err != nil || ctx.Err() != nil {
		return err
	}
	for backoff := time.Second; ; backoff = min(2*backoff, time.Minute) {
		built, err := b.duplicates.BuildDuplicates(ctx, false)
		if err == nil {
			if built {
				b.log.Info("duplicates: every pair built")
			}
			break
		}
		b.log.Warn("duplicates: building every pair failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	it, err := events.Messages(cons, events.PullExpiry, jetstream.PullMaxMessages(2*maxDuplicatesBatch))
	if err != nil {
		return fmt.Errorf("bus: consume events for duplicates: %w", err)
	}
	// Stopping drains: the events already pulled are given back (a Nak)
	// rather than left to wait out AckWait.
	defer context.AfterFunc(ctx, it.Drain)()
	return events.EachBatch(it, maxDuplicatesBatch, func(batch []jetstream.Msg) { b.rescore(ctx, batch) },
		func(err error) { b.log.Warn("duplicates: consume", zap.Error(err)) })
}

// rescore refreshes the pairs of the batch's customers, acknowledging the
// batch when that is done, and leaving it for a retry when it failed.
func (b *Bus) rescore(ctx context.Context, batch []jetstream.Msg) {
	var ids []uuid.UUID
	seen := map[uuid.UUID]bool{}
	var kept []jetstream.Msg
	for _, msg := range batch {
		e, err := events.FromMsg(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		var id uuid.UUID
		if err == nil {
			id, err = uuid.Parse(e.Subject())
		}
		if err != nil {
			// No retry can fix it; the publisher's contract tests would catch it.
			b.log.Error("duplicates: dropping unusable event", zap.String("subject", msg.Subject()), zap.Error(err))
			_ = msg.Term()
			continue
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		kept = append(kept, msg)
	}
	if len(ids) == 0 {
		return
	}
	if err := b.duplicates.RefreshDuplicates(ctx, ids); err != nil {
		if !errors.Is(err, context.Canceled) {
			b.log.Warn("duplicates: rescoring failed; will retry", zap.Int("customers", len(ids)), zap.Error(err))
		}
		for _, msg := range kept {
			_ = msg.NakWithDelay(duplicatesRetryDelay)
		}
		return
	}
	for _, msg := range kept {
		_ = msg.Ack()
	}
}
