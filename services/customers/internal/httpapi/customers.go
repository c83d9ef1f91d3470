package httpapi

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/listquery"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

type listResponse struct {
	Customers []customer.StaffView `json:"customers"`
	Count     *int64               `json:"count"`
	// CountPrecision is "exact", or "at_least" when more than count_limit
	// customers match (as Shopify's customersCount says it).
	CountPrecision *string `json:"count_precision"`
	NextCursor     *string `json:"next_cursor"`
}

func origin(r *http.Request, p auth.Principal) customer.Origin {
	return customer.Origin{Actor: p.Actor(), ActorName: p.Name, TraceParent: traceParent(r.Context())}
}

func (a *API) createCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in customer.CreateInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	c, err := a.customers.Create(r.Context(), origin(r, p), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/customers/"+c.ID.String())
	writeJSON(w, http.StatusCreated, c.Staff())
	return nil
}

func (a *API) getCustomer(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	c, err := a.customers.Get(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.Staff())
	return nil
}

func (a *API) updateCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in customer.UpdateInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	c, err := a.customers.Update(r.Context(), origin(r, p), id, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.Staff())
	return nil
}

func (a *API) updateMetadata(private bool) func(http.ResponseWriter, *http.Request, auth.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		var in customer.MetadataInput
		if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
			return err
		}
		c, err := a.customers.UpdateMetadata(r.Context(), origin(r, p), id, private, in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, c.Staff())
		return nil
	}
}

func (a *API) deleteCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := a.customers.Delete(r.Context(), origin(r, p), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// anonymizeCustomer erases the customer's personal data; the stream's
// copies go right after, in the relay.
func (a *API) anonymizeCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	c, err := a.customers.Anonymize(r.Context(), origin(r, p), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.Staff())
	return nil
}

func (a *API) listCustomers(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	qs := r.URL.Query()
	in, err := listquery.Customers(qs)
	if err != nil {
		return err
	}
	page, err := a.customers.List(r.Context(), in)
	if err != nil {
		return err
	}
	resp := listResponse{Customers: make([]customer.StaffView, len(page.Customers)), Count: page.Count}
	if page.Count != nil {
		precision := "at_least"
		if page.CountExact {
			precision = "exact"
		}
		resp.CountPrecision = &precision
	}
	for i, c := range page.Customers {
		resp.Customers[i] = c.Staff()
	}
	if page.NextCursor != "" {
		resp.NextCursor = &page.NextCursor
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func pathID(r *http.Request) (uuid.UUID, error) { return pathUUID(r, "id", customer.ErrNotFound) }

// pathUUID reads a UUID path segment; one that cannot be a UUID is simply not
// found (notFound), as for any unknown id.
func pathUUID(r *http.Request, name string, notFound error) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		return uuid.Nil, notFound
	}
	return id, nil
}

// pageQuery reads limit and cursor, refusing any other query parameter.
func pageQuery(qs url.Values, extra ...string) (limit int, cursor string, err error) {
	for k := range qs {
		if k != "limit" && k != "cursor" && !slices.Contains(extra, k) {
			return 0, "", problem.Input(http.StatusBadRequest, k, problem.CodeUnknownField, "%s is not a known query parameter", k)
		}
	}
	limit, err = listquery.Limit(qs)
	return limit, qs.Get("cursor"), err
}

// bulkDelete deletes many customers, all or none.
func (a *API) bulkDelete(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in customer.BulkDeleteInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	ids, err := a.customers.BulkDelete(r.Context(), origin(r, p), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]uuid.UUID{"deleted": ids})
	return nil
}

// bulkUpdate applies one change to many customers, all or none.
func (a *API) bulkUpdate(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in customer.BulkUpdateInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	cs, changed, err := a.customers.BulkUpdate(r.Context(), origin(r, p), in)
	if err != nil {
		return err
	}
	resp := struct {
		Customers []customer.StaffView `json:"customers"`
		Changed   []uuid.UUID          `json:"changed"`
	}{Customers: make([]customer.StaffView, len(cs)), Changed: changed}
	for i, c := range cs {
		resp.Customers[i] = c.Staff()
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
