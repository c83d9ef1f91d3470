package console

import (
	"net/http"
	"net/url"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// addressFields are the address form's inputs, named as the API's fields.
var addressFields = []struct{ Name, Label string }{
	{"first_name", "First name"}, {"last_name", "Last name"}, {"company_name", "Company"},
	{"street_address_1", "Street address"}, {"street_address_2", "Street address, line 2"},
	{"city", "City"}, {"city_area", "City area"}, {"postal_code", "Postal code"},
	{"country", "Country (two-letter code, e.g. DE)"}, {"country_area", "State or region"}, {"phone", "Phone"},
}

func addressFieldNames() []string {
	names := make([]string, len(addressFields))
	for i, f := range addressFields {
		names[i] = f.Name
	}
	return names
}

type addressPage struct {
	Customer customer.Customer
	Address  *customer.Address // nil for a new one
	Fields   []struct{ Name, Label string }
}

func (c *Console) newAddress(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.addressForm(w, r, p, http.StatusOK, uuid.Nil, newForm(url.Values{}))
}

func (c *Console) editAddress(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	aid, err := pathUUID(r, "aid")
	if err != nil {
		return err
	}
	return c.addressForm(w, r, p, http.StatusOK, aid, form{})
}

// addressForm renders the form of a new address (aid is Nil) or of one to
// edit, filled from the address unless f holds what was submitted.
func (c *Console) addressForm(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, aid uuid.UUID, f form) error {
	id, err := pathUUID(r, "id")
	if err != nil {
		return err
	}
	page, err := c.Customers.ListAddresses(r.Context(), id, customer.MaxLimit, "")
	if err != nil {
		return err
	}
	data := addressPage{Customer: page.Customer, Fields: addressFields}
	title := "Add address"
	if aid != uuid.Nil {
		title = "Edit address"
		for i, a := range page.Addresses {
			if a.ID == aid {
				data.Address = &page.Addresses[i]
			}
		}
		if data.Address == nil {
			return customer.ErrAddressNotFound
		}
		if f.Values == nil {
			f = newForm(addressValues(*data.Address))
		}
	}
	c.render(w, r, status, "address", view{Title: title, Nav: "customers", Staff: p, Form: f, Data: data})
	return nil
}

func addressValues(a customer.Address) url.Values {
	return url.Values{
		"first_name": {a.FirstName}, "last_name": {a.LastName}, "company_name": {a.CompanyName},
		"street_address_1": {a.StreetAddress1}, "street_address_2": {a.StreetAddress2}, "city": {a.City},
		"city_area": {a.CityArea}, "postal_code": {a.PostalCode}, "country": {a.Country},
		"country_area": {a.CountryArea}, "phone": {deref(a.Phone)},
	}
}

// addressInput reads the form; every field is sent, so that an emptied
// field is cleared.
func addressInput(f form) customer.AddressInput {
	v := func(name string) *string { s := f.Get(name); return &s }
	in := customer.AddressInput{
		FirstName: v("first_name"), LastName: v("last_name"), CompanyName: v("company_name"),
		StreetAddress1: v("street_address_1"), StreetAddress2: v("street_address_2"), City: v("city"),
		CityArea: v("city_area"), PostalCode: v("postal_code"), Country: v("country"), CountryArea: v("country_area"),
		Phone: customer.Nullable[string]{Set: true, Value: optional(f.Get("phone"))},
	}
	if f.Checked("default_shipping") {
		in.IsDefaultShipping = new(true)
	}
	if f.Checked("default_billing") {
		in.IsDefaultBilling = new(true)
	}
	return in
}

func (c *Console) createAddress(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return c.saveAddress(w, r, p, uuid.Nil)
}

func (c *Console) updateAddress(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	aid, err := pathUUID(r, "aid")
	if err != nil {
		return err
	}
	return c.saveAddress(w, r, p, aid)
}

func (c *Console) saveAddress(w http.ResponseWriter, r *http.Request, p auth.Principal, aid uuid.UUID) error {
	id, f, err := postedTo(r)
	if err != nil {
		return err
	}
	in := addressInput(f)
	if aid == uuid.Nil {
		_, _, err = c.Customers.CreateAddress(r.Context(), origin(p), id, in)
	} else {
		_, _, err = c.Customers.UpdateAddress(r.Context(), origin(p), id, aid, in)
	}
	if err != nil {
		return showAgain(f, err, func(status int, f form) error { return c.addressForm(w, r, p, status, aid, f) }, addressFieldNames()...)
	}
	return done(w, r, customerPath(id)+"#addresses", "Address saved.")
}

// defaultAddress makes an address the default for shipping or billing.
func (c *Console) defaultAddress(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathUUID(r, "id")
	if err != nil {
		return err
	}
	aid, err := pathUUID(r, "aid")
	if err != nil {
		return err
	}
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	var in customer.AddressInput
	switch f.Get("kind") {
	case "shipping":
		in.IsDefaultShipping = new(true)
	case "billing":
		in.IsDefaultBilling = new(true)
	default:
		return customer.FieldErr("kind", customer.CodeInvalid, "kind must be shipping or billing")
	}
	if _, _, err := c.Customers.UpdateAddress(r.Context(), origin(p), id, aid, in); err != nil {
		return err
	}
	return done(w, r, customerPath(id)+"#addresses", "Default "+f.Get("kind")+" address set.")
}

func (c *Console) deleteAddress(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathUUID(r, "id")
	if err != nil {
		return err
	}
	aid, err := pathUUID(r, "aid")
	if err != nil {
		return err
	}
	if err := c.Customers.DeleteAddress(r.Context(), origin(p), id, aid); err != nil {
		return err
	}
	return done(w, r, customerPath(id)+"#addresses", "Address deleted.")
}
