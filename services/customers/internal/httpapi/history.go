package httpapi

import (
	"net/http"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/jsonview"
)

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
	out := make([]jsonview.HistoryEntry, len(page.Entries))
	for i, e := range page.Entries {
		out[i] = jsonview.NewHistoryEntry(e)
	}
	writePage(w, "entries", out, page.NextCursor)
	return nil
}
