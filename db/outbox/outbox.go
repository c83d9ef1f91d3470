// Package outbox writes events to the transactional outbox: in the caller's
// transaction, so that they exist exactly when the change they describe
// does. The relay publishes them.
package outbox

import (
	"context"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
)

// Write appends the events to the outbox, in order.
func Write(ctx context.Context, q *gen.Queries, evs []cloudevents.Event) error {
	if len(evs) == 0 {
		return nil
	}
	p, err := Rows(evs)
	if err != nil {
		return err
	}
	if err := q.InsertOutboxEvents(ctx, p); err != nil {
		return fmt.Errorf("outbox: write: %w", err)
	}
	return nil
}

// Rows turns events into the column arrays that outbox inserts take, for
// statements that write a row and its events at once.
func Rows(evs []cloudevents.Event) (gen.InsertOutboxEventsParams, error) {
	var p gen.InsertOutboxEventsParams
	for _, e := range evs {
		b, err := events.Marshal(e)
		if err != nil {
			return p, fmt.Errorf("outbox: encode event: %w", err)
		}
		id, err := uuid.Parse(e.ID())
		if err != nil {
			return p, fmt.Errorf("outbox: event id: %w", err)
		}
		key, _ := e.Extensions()[events.ExtPartitionKey].(string)
		p.EventIds = append(p.EventIds, id)
		p.NatsSubjects = append(p.NatsSubjects, events.Subject(e.Type()))
		p.PartitionKeys = append(p.PartitionKeys, key)
		p.Events = append(p.Events, b)
	}
	return p, nil
}
