package httpapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// owner finds the customer whose data a route serves: the one in the path
// (staff routes) or the caller (customer routes).
type owner func(r *http.Request, p auth.Principal) (uuid.UUID, error)

func pathOwner(r *http.Request, _ auth.Principal) (uuid.UUID, error) { return pathID(r) }

func selfOwner(_ *http.Request, p auth.Principal) (uuid.UUID, error) { return p.CustomerID, nil }

func addressIDs(r *http.Request, p auth.Principal, whose owner) (customerID, addressID uuid.UUID, err error) {
	if customerID, err = whose(r, p); err != nil {
		return
	}
	addressID, err = pathUUID(r, "aid", customer.ErrAddressNotFound)
	return
}

func (a *API) listAddresses(whose owner) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := whose(r, p)
		if err != nil {
			return err
		}
		limit, cursor, err := pageQuery(r.URL.Query())
		if err != nil {
			return err
		}
		page, err := a.customers.ListAddresses(r.Context(), id, limit, cursor)
		if err != nil {
			return err
		}
		out := make([]events.Address, len(page.Addresses))
		for i, ad := range page.Addresses {
			out[i] = ad.Public(page.Customer)
		}
		writePage(w, "addresses", out, page.NextCursor)
		return nil
	}
}

func (a *API) createAddress(whose owner) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := whose(r, p)
		if err != nil {
			return err
		}
		var in customer.AddressInput
		if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
			return err
		}
		c, ad, err := a.customers.CreateAddress(r.Context(), origin(r, p), id, in)
		if err != nil {
			return err
		}
		w.Header().Set("Location", r.URL.Path+"/"+ad.ID.String())
		writeJSON(w, http.StatusCreated, ad.Public(c))
		return nil
	}
}

func (a *API) updateAddress(whose owner) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, aid, err := addressIDs(r, p, whose)
		if err != nil {
			return err
		}
		var in customer.AddressInput
		if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
			return err
		}
		c, ad, err := a.customers.UpdateAddress(r.Context(), origin(r, p), id, aid, in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, ad.Public(c))
		return nil
	}
}

func (a *API) deleteAddress(whose owner) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, aid, err := addressIDs(r, p, whose)
		if err != nil {
			return err
		}
		if err := a.customers.DeleteAddress(r.Context(), origin(r, p), id, aid); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// addressFormResponse is the address form settings as the API shows them.
type addressFormResponse struct {
	RequiredFields []string   `json:"required_fields"`
	Fields         []string   `json:"fields"`     // every field that can be required
	UpdatedAt      *time.Time `json:"updated_at"` // null while the defaults apply
}

func toAddressFormResponse(f customer.AddressForm) addressFormResponse {
	return addressFormResponse{RequiredFields: f.RequiredFields, Fields: customer.AddressFields, UpdatedAt: f.UpdatedAt}
}

func (a *API) getAddressForm(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	f, err := a.customers.AddressForm(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAddressFormResponse(f))
	return nil
}

func (a *API) putAddressForm(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	var in customer.AddressFormInput
	if err := decodeJSON(w, r, a.maxBodyBytes, &in); err != nil {
		return err
	}
	f, err := a.customers.SaveAddressForm(r.Context(), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAddressFormResponse(f))
	return nil
}
