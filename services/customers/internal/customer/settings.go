package customer

import (
	"context"
	"slices"
	"strings"
	"time"
)

// AddressFields are the address fields the address form can make required.
// country is always required: phone numbers and tax rules depend on it.
var AddressFields = []string{
	"first_name", "last_name", "company_name", "street_address_1", "street_address_2",
	"city", "city_area", "postal_code", "country", "country_area", "phone",
}

// DefaultAddressForm applies until staff save their own settings.
var DefaultAddressForm = AddressForm{
	RequiredFields: []string{"first_name", "last_name", "street_address_1", "city", "postal_code", "country"},
}

// AddressForm says which address fields every address write must fill.
type AddressForm struct {
	RequiredFields []string   `json:"required_fields"`
	UpdatedAt      *time.Time `json:"-"` // nil while the defaults apply
}

// AddressFormInput is the body of PUT /v1/settings/address-form.
type AddressFormInput struct {
	RequiredFields []string `json:"required_fields"`
}

// AddressForm returns the current address form settings.
func (s *Service) AddressForm(ctx context.Context) (AddressForm, error) {
	return s.store.AddressForm(ctx)
}

// SaveAddressForm replaces the address form settings. Existing addresses are
// not revisited: the settings apply to the next write of each address.
func (s *Service) SaveAddressForm(ctx context.Context, in AddressFormInput) (AddressForm, error) {
	var r rules
	if in.RequiredFields == nil {
		r.fail("required_fields", CodeRequired, "required_fields is required (a list of address field names)")
	}
	fields := []string{"country"}
	for i, f := range in.RequiredFields {
		if !slices.Contains(AddressFields, f) {
			r.fail("required_fields", CodeInvalid, "required_fields[%d]: %q is not an address field (one of %s)",
				i, f, strings.Join(AddressFields, ", "))
		} else if !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
	}
	if err := r.err(); err != nil {
		return AddressForm{}, err
	}
	// Stored in AddressFields' order, so equal settings read back equal.
	slices.SortFunc(fields, func(a, b string) int {
		return slices.Index(AddressFields, a) - slices.Index(AddressFields, b)
	})
	now := s.now()
	f := AddressForm{RequiredFields: fields, UpdatedAt: &now}
	if err := s.store.SaveAddressForm(ctx, f); err != nil {
		return AddressForm{}, err
	}
	return f, nil
}
