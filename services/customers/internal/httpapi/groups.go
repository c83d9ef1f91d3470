package httpapi

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

func groupID(r *http.Request) (uuid.UUID, error) {
	return pathUUID(r, "id", customer.ErrGroupNotFound)
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in customer.GroupInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	g, err := a.customers.CreateGroup(r.Context(), origin(r, p), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/customer-groups/"+g.ID.String())
	writeJSON(w, http.StatusCreated, g.Public())
	return nil
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	qs := r.URL.Query()
	limit, cursor, err := pageQuery(qs, "q")
	if err != nil {
		return err
	}
	page, err := a.customers.ListGroups(r.Context(), qs.Get("q"), limit, cursor)
	if err != nil {
		return err
	}
	out := make([]events.CustomerGroup, len(page.Groups))
	for i, g := range page.Groups {
		out[i] = g.Public()
	}
	writePage(w, "customer_groups", out, page.NextCursor)
	return nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := groupID(r)
	if err != nil {
		return err
	}
	g, err := a.customers.GetGroup(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g.Public())
	return nil
}

func (a *API) updateGroup(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := groupID(r)
	if err != nil {
		return err
	}
	var in customer.GroupInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	g, err := a.customers.UpdateGroup(r.Context(), origin(r, p), id, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g.Public())
	return nil
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := groupID(r)
	if err != nil {
		return err
	}
	if err := a.customers.DeleteGroup(r.Context(), origin(r, p), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) changeGroupMembers(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := groupID(r)
	if err != nil {
		return err
	}
	var in customer.MembersInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	ch, err := a.customers.ChangeMembers(r.Context(), origin(r, p), id, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ch.View())
	return nil
}
