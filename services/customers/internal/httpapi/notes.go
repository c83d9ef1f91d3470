package httpapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

type noteResponse struct {
	ID         uuid.UUID         `json:"id"`
	CustomerID uuid.UUID         `json:"customer_id"`
	Author     events.NoteAuthor `json:"author"`
	Text       string            `json:"text"`
	CreatedAt  time.Time         `json:"created_at"`
}

func toNoteResponse(n customer.Note) noteResponse {
	return noteResponse{ID: n.ID, CustomerID: n.CustomerID, Author: n.Author, Text: n.Text, CreatedAt: n.CreatedAt}
}

func (a *API) addNote(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in customer.NoteInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	n, err := a.customers.AddNote(r.Context(), origin(r, p), id, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toNoteResponse(n))
	return nil
}

func (a *API) listNotes(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	limit, cursor, err := pageQuery(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := a.customers.ListNotes(r.Context(), id, limit, cursor)
	if err != nil {
		return err
	}
	out := make([]noteResponse, len(page.Notes))
	for i, n := range page.Notes {
		out[i] = toNoteResponse(n)
	}
	writePage(w, "notes", out, page.NextCursor)
	return nil
}
