package httpapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// historyEntry is one entry of GET /v1/customers/{id}/history.
type historyEntry struct {
	ID         uuid.UUID `json:"id"` // the event's
	Kind       string    `json:"kind"`
	Type       string    `json:"type"`
	ResourceID string    `json:"resource_id"`
	Sequence   int64     `json:"sequence"`
	OccurredAt time.Time `json:"occurred_at"`
	Actor      struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"actor"`
	Changed     []string   `json:"changed"`
	EmailSentAt *time.Time `json:"email_sent_at"`
}

// Kinds of history entries.
const (
	historyChange = "change"
	historyEmail  = "email"
)

func toHistoryEntry(e customer.HistoryEntry) historyEntry {
	h := historyEntry{
		ID: e.EventID, Kind: historyChange, Type: e.Type, ResourceID: e.Subject, Sequence: e.Sequence,
		OccurredAt: e.At, Changed: e.Changed, EmailSentAt: e.SentAt,
	}
	if e.Email {
		h.Kind = historyEmail
	}
	if h.Changed == nil {
		h.Changed = []string{}
	}
	h.Actor.Type, h.Actor.ID = e.Actor.Type, e.Actor.ID
	return h
}

func (a *API) customerHistory(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	limit, cursor, err := pageQuery(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := a.customers.History(r.Context(), id, limit, cursor)
	if err != nil {
		return err
	}
	out := make([]historyEntry, len(page.Entries))
	for i, e := range page.Entries {
		out[i] = toHistoryEntry(e)
	}
	writePage(w, "entries", out, page.NextCursor)
	return nil
}
