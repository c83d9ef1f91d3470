package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// History reads a page of the customer's history, newest first: the event
// log's entries, and the entries of its events not published yet, read
// from the events themselves.
func (s *Store) History(ctx context.Context, customerID uuid.UUID, before int64, limit int) ([]customer.HistoryEntry, error) {
	// A deleted customer's entries stay in the log, but it has no history
	// to show, as it has nothing else.
	exists, err := s.q.CustomerExists(ctx, customerID)
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	if !exists {
		return nil, notFound(ctx, s.q, customerID)
	}
	rows, err := s.q.CustomerHistory(ctx, gen.CustomerHistoryParams{CustomerID: customerID.String(), Before: before, RowLimit: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	out := make([]customer.HistoryEntry, len(rows))
	for i, r := range rows {
		e := events.LogEntry{Subject: r.Subject, Type: r.Type, Sequence: r.Sequence, Time: r.OccurredAt,
			Actor: events.Actor{Type: r.ActorType, ID: r.ActorID}, Changed: r.Changed}
		if r.Event != nil { // not published yet
			if e, err = events.LogEntryOf(r.Event); err != nil {
				return nil, fmt.Errorf("store: history: outbox event %d: %w", r.OutboxID, err)
			}
		}
		out[i] = customer.HistoryEntry{
			Position: r.OutboxID, EventID: r.EventID, Type: e.Type, Subject: e.Subject, Sequence: e.Sequence,
			At: e.Time.UTC(), Actor: e.Actor, Changed: e.Changed, Email: events.IsNotification(e.Type), SentAt: utcPtr(r.DeliveredAt),
		}
	}
	return out, nil
}
