package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
)

// mergeCustomer is POST /v1/customers/{id}/merge.
func (a *API) mergeCustomer(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in merge.Input
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	c, err := a.merges.Merge(r.Context(), origin(r, p), id, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.Staff())
	return nil
}

// mergePreviewResponse is GET /v1/customers/{id}/merge-preview.
type mergePreviewResponse struct {
	Customer customer.StaffView `json:"customer"`
	Moves    struct {
		Orders    []uuid.UUID `json:"orders"`
		Addresses []uuid.UUID `json:"addresses"`
		Notes     []uuid.UUID `json:"notes"`
		Groups    []uuid.UUID `json:"groups"`
	} `json:"moves"`
	Events []string `json:"events"`
}

// mergePreview is GET /v1/customers/{id}/merge-preview?source_id=…&override=email,phone
// (the fields to take from the source).
func (a *API) mergePreview(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	qs := r.URL.Query()
	for k := range qs {
		if k != "source_id" && k != "override" {
			return customer.FieldErr(k, "unknown_field", "merge-preview takes source_id and override")
		}
	}
	in := merge.Input{SourceID: qs.Get("source_id"), Override: map[string]string{}}
	for _, f := range strings.Split(qs.Get("override"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			in.Override[f] = in.SourceID
		}
	}
	pv, err := a.merges.Preview(r.Context(), origin(r, p), id, in)
	if err != nil {
		return err
	}
	var out mergePreviewResponse
	out.Customer = pv.Customer.Staff()
	out.Moves.Orders, out.Moves.Addresses, out.Moves.Notes = []uuid.UUID{}, nonNilIDs(pv.Parties.AddressIDs), nonNilIDs(pv.Parties.NoteIDs)
	for _, o := range pv.Parties.Orders {
		out.Moves.Orders = append(out.Moves.Orders, o.ID)
	}
	out.Moves.Groups = []uuid.UUID{}
	for _, g := range pv.Parties.JoinGroups {
		out.Moves.Groups = append(out.Moves.Groups, g.ID)
	}
	out.Events = []string{}
	if pv.Plan != nil {
		for _, e := range pv.Plan.Events {
			out.Events = append(out.Events, e.Type())
		}
		for _, g := range pv.Plan.Groups {
			for _, e := range g.Events {
				out.Events = append(out.Events, e.Type())
			}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}

func nonNilIDs(ids []uuid.UUID) []uuid.UUID {
	if ids == nil {
		return []uuid.UUID{}
	}
	return ids
}

// duplicateResponse is one entry of GET /v1/customers/{id}/duplicates.
type duplicateResponse struct {
	Customer customer.StaffView `json:"customer"`
	Score    float64            `json:"score"`
	Reasons  []string           `json:"reasons"`
}

// duplicatesQuery reads the query of both duplicates lists: reason,
// min_score, limit and cursor.
func duplicatesQuery(r *http.Request) (merge.DuplicatesInput, error) {
	qs := r.URL.Query()
	limit, cursor, err := pageQuery(qs, "reason", "min_score")
	if err != nil {
		return merge.DuplicatesInput{}, err
	}
	in := merge.DuplicatesInput{Reason: qs.Get("reason"), Limit: limit, Cursor: cursor}
	if v := qs.Get("min_score"); v != "" {
		if in.MinScore, err = strconv.ParseFloat(v, 64); err != nil {
			return in, customer.FieldErr("min_score", customer.CodeInvalid, "min_score is a number between 0 and 1")
		}
	}
	return in, nil
}

// customerDuplicates is GET /v1/customers/{id}/duplicates.
func (a *API) customerDuplicates(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	in, err := duplicatesQuery(r)
	if err != nil {
		return err
	}
	page, err := a.merges.Duplicates(r.Context(), id, in)
	if err != nil {
		return err
	}
	out := make([]duplicateResponse, len(page.Duplicates))
	for i, d := range page.Duplicates {
		out[i] = duplicateResponse{Customer: d.Customer.Staff(), Score: d.Score, Reasons: d.Reasons}
	}
	writePage(w, "duplicates", out, page.NextCursor)
	return nil
}

// dismissDuplicate is POST /v1/customer-duplicates/dismissals.
func (a *API) dismissDuplicate(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in merge.DismissInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	if err := a.merges.Dismiss(r.Context(), origin(r, p), in); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pairResponse is one entry of GET /v1/customer-duplicates.
type pairResponse struct {
	Customers [2]customer.StaffView `json:"customers"`
	Score     float64               `json:"score"`
	Reasons   []string              `json:"reasons"`
}

// allDuplicates is GET /v1/customer-duplicates.
func (a *API) allDuplicates(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	in, err := duplicatesQuery(r)
	if err != nil {
		return err
	}
	page, err := a.merges.AllDuplicates(r.Context(), in)
	if err != nil {
		return err
	}
	out := make([]pairResponse, len(page.Pairs))
	for i, p := range page.Pairs {
		out[i] = pairResponse{Customers: [2]customer.StaffView{p.A.Staff(), p.B.Staff()}, Score: p.Score, Reasons: p.Reasons}
	}
	writePage(w, "pairs", out, page.NextCursor)
	return nil
}
