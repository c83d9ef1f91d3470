package httpapi

import (
	"net/http"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/jsonview"
)

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
	writeJSON(w, http.StatusCreated, jsonview.NewNote(n))
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
	out := make([]jsonview.Note, len(page.Notes))
	for i, n := range page.Notes {
		out[i] = jsonview.NewNote(n)
	}
	writePage(w, "notes", out, page.NextCursor)
	return nil
}
