package httpapi

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/order"
)

// recordOrder records an order: 201 the first time, 200 with the stored
// order when its id was recorded before.
func (a *API) recordOrder(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in order.OrderInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	o, created, err := a.orders.RecordOrder(r.Context(), origin(r, p), in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, o.Public())
	return nil
}

func (a *API) listOrders(whose owner) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := whose(r, p)
		if err != nil {
			return err
		}
		limit, cursor, err := pageQuery(r.URL.Query())
		if err != nil {
			return err
		}
		page, err := a.orders.ListOrders(r.Context(), id, limit, cursor)
		if err != nil {
			return err
		}
		out := make([]events.Order, len(page.Orders))
		for i, o := range page.Orders {
			out[i] = o.Public()
		}
		writePage(w, "orders", out, page.NextCursor)
		return nil
	}
}

func orderID(r *http.Request) (uuid.UUID, error) { return pathUUID(r, "id", order.ErrOrderNotFound) }

// requestTransfer opens a request to move the order to another customer.
func (a *API) requestTransfer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := orderID(r)
	if err != nil {
		return err
	}
	var in order.TransferInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	t, err := a.orders.RequestTransfer(r.Context(), origin(r, p), id, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, t.Public())
	return nil
}

// cancelTransfer cancels the order's open transfer request.
func (a *API) cancelTransfer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := orderID(r)
	if err != nil {
		return err
	}
	t, err := a.orders.CancelTransfer(r.Context(), origin(r, p), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t.Public())
	return nil
}

// decideTransfer accepts or declines with the approval email's token.
func (a *API) decideTransfer(accept bool) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := orderID(r)
		if err != nil {
			return err
		}
		var in order.DecideInput
		if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
			return err
		}
		t, err := a.orders.DecideTransfer(r.Context(), origin(r, p), id, in, accept)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, t.Public())
		return nil
	}
}
