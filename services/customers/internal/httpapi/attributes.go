package httpapi

import (
	"net/http"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

func (a *API) listAttributeDefinitions(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	defs, err := a.customers.AttributeDefinitions(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]customer.AttributeDefinition{"attributes": defs})
	return nil
}

func (a *API) getAttributeDefinition(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	d, err := a.customers.AttributeDefinition(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (a *API) defineAttribute() handler {
	return bodyRoute(a, http.StatusCreated, func(r *http.Request, p auth.Principal, in customer.AttributeDefinitionInput) (any, error) {
		return a.customers.DefineAttribute(r.Context(), origin(r, p), in)
	})
}

func (a *API) updateAttribute() handler {
	return bodyRoute(a, http.StatusOK, func(r *http.Request, p auth.Principal, in customer.AttributeDefinitionInput) (any, error) {
		return a.customers.UpdateAttribute(r.Context(), origin(r, p), r.PathValue("key"), in)
	})
}

func (a *API) deleteAttribute(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := a.customers.DeleteAttribute(r.Context(), origin(r, p), r.PathValue("key")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
