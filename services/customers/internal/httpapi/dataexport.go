package httpapi

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/jsonview"
)

// customerDataExport is GET /v1/customers/{id}/data-export (staff).
func (a *API) customerDataExport(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	return a.writeDataExport(w, r, id, true)
}

// myDataExport is GET /v1/store/me/data-export: the customer's own.
func (a *API) myDataExport(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return a.writeDataExport(w, r, p.CustomerID, false)
}

func (a *API) writeDataExport(w http.ResponseWriter, r *http.Request, id uuid.UUID, staff bool) error {
	read := a.customers.OwnDataExport
	if staff {
		read = a.customers.DataExport
	}
	d, err := read(r.Context(), id)
	if err != nil {
		return err
	}
	jsonview.WriteDataExport(w, d, staff)
	return nil
}
