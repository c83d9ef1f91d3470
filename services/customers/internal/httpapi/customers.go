package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
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

var listParams = map[string]bool{
	"q": true, "email": true, "is_active": true, "has_account": true, "is_verified": true,
	"created_after": true, "created_before": true, "updated_after": true,
	"order": true, "limit": true, "cursor": true, "count": true, "count_limit": true, "group_id": true,
	"number_of_orders_min": true, "number_of_orders_max": true, "placed_orders_after": true, "placed_orders_before": true,
	"email_marketing_consent": true, "sms_marketing_consent": true,
}

func (a *API) listCustomers(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	qs := r.URL.Query()
	in, err := parseListInput(qs)
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

func parseListInput(qs url.Values) (customer.ListInput, error) {
	in := customer.ListInput{
		Query: qs.Get("q"), Email: qs.Get("email"), Order: qs.Get("order"),
		Cursor: qs.Get("cursor"), WithCount: true,
	}
	for k := range qs {
		if key, ok := metadataParam(k); ok {
			if in.Metadata == nil {
				in.Metadata = map[string]string{}
			}
			in.Metadata[key] = qs.Get(k)
		} else if !listParams[k] {
			return in, problem.Input(http.StatusBadRequest, k, problem.CodeUnknownField, "%s is not a known query parameter", k)
		}
	}
	limit, err := parseLimit(qs)
	if err != nil {
		return in, err
	}
	in.Limit = limit
	if v := qs.Get("count_limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return in, problem.Input(http.StatusBadRequest, "count_limit", customer.CodeInvalid, "count_limit must be a positive integer")
		}
		in.CountLimit = n
	}
	withCount := &in.WithCount
	for name, dst := range map[string]**bool{"is_active": &in.IsActive, "has_account": &in.HasAccount, "is_verified": &in.IsVerified, "count": nil} {
		v := qs.Get(name)
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return in, problem.Input(http.StatusBadRequest, name, customer.CodeInvalid, "%s must be true or false", name)
		}
		if dst == nil {
			*withCount = b
		} else {
			*dst = &b
		}
	}
	in.EmailMarketingConsent, in.SMSMarketingConsent = qs.Get("email_marketing_consent"), qs.Get("sms_marketing_consent")
	if v := qs.Get("group_id"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			return in, problem.Input(http.StatusBadRequest, "group_id", customer.CodeInvalid, "group_id must be a UUID")
		}
		in.GroupID = &id
	}
	for name, dst := range map[string]**int{"number_of_orders_min": &in.NumberOfOrdersMin, "number_of_orders_max": &in.NumberOfOrdersMax} {
		v := qs.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return in, problem.Input(http.StatusBadRequest, name, customer.CodeInvalid, "%s must be an integer of 0 or more", name)
		}
		*dst = &n
	}
	for name, dst := range map[string]**time.Time{
		"created_after": &in.CreatedAfter, "created_before": &in.CreatedBefore, "updated_after": &in.UpdatedAfter,
		"placed_orders_after": &in.PlacedOrdersAfter, "placed_orders_before": &in.PlacedOrdersBefore,
	} {
		v := qs.Get(name)
		if v == "" {
			continue
		}
		t, err := customer.ParseTime(v)
		if err != nil {
			return in, problem.Input(http.StatusBadRequest, name, customer.CodeInvalid, "%s must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z", name)
		}
		*dst = &t
	}
	return in, nil
}

// metadataParam reads the key of a metadata[key] query parameter.
func metadataParam(name string) (string, bool) {
	key, ok := strings.CutPrefix(name, "metadata[")
	if !ok || !strings.HasSuffix(key, "]") || len(key) < 2 {
		return "", false
	}
	return strings.TrimSuffix(key, "]"), true
}

// parseLimit reads the limit query parameter: 0 when absent (the default
// applies), an error when given but not a whole number from 1 to MaxLimit.
func parseLimit(qs url.Values) (int, error) {
	v, given := qs["limit"]
	if !given {
		return 0, nil
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 1 || n > customer.MaxLimit {
		return 0, problem.Input(http.StatusBadRequest, "limit", customer.CodeInvalid, "limit must be an integer between 1 and %d", customer.MaxLimit)
	}
	return n, nil
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
	limit, err = parseLimit(qs)
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
