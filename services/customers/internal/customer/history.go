package customer

import (
	"context"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// HistoryEntry is one change of a customer, or one email to it, as its
// history lists it: built from the event log (see the relay), so it holds
// what happened, when and by whom, never a value. An erasure keeps it.
type HistoryEntry struct {
	// Position orders the history: the event's place in the outbox.
	Position int64
	EventID  uuid.UUID
	Type     string
	// Subject is the resource the event is about: the customer, one of its
	// orders, or a transfer request of one.
	Subject  string
	Sequence int64
	At       time.Time
	Actor    events.Actor
	// Changed names the fields an update changed.
	Changed []string
	// Email is true for a notification: an email to the customer. SentAt
	// is when the notifier sent it; nil while it has not (or when no
	// notifier works on this database).
	Email  bool
	SentAt *time.Time
}

// HistoryPage is one page of a customer's history, newest first.
type HistoryPage struct {
	Entries    []HistoryEntry
	NextCursor string
}

// historyOrder names the history cursor's order (newest first).
const historyOrder = "-history"

// History reads a page of the customer's history, newest first. The
// customer's own events are in it (its orders' and their transfers' while
// it owns them, the emails to it) as soon as they commit.
func (s *Service) History(ctx context.Context, customerID uuid.UUID, limit int, cursor string) (HistoryPage, error) {
	var r rules
	limit = r.limit(limit)
	after := r.cursor(cursor, historyOrder)
	if err := r.err(); err != nil {
		return HistoryPage{}, err
	}
	before := int64(math.MaxInt64)
	if after != nil {
		before = int64(after.Int)
	}
	entries, err := s.store.History(ctx, customerID, before, limit+1)
	if err != nil {
		return HistoryPage{}, err
	}
	page := HistoryPage{Entries: entries}
	if len(entries) > limit {
		page.Entries = entries[:limit]
		last := entries[limit-1]
		page.NextCursor = Cursor{Order: historyOrder, ID: last.EventID, Int: int(last.Position)}.Encode()
	}
	return page, nil
}
