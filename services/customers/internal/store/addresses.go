package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// addressFormKey is the settings row of the address form.
const addressFormKey = "address_form"

// ListAddresses reads a customer's addresses, oldest first.
func (s *Store) ListAddresses(ctx context.Context, customerID uuid.UUID, limit int, after *customer.Cursor) ([]customer.Address, error) {
	p := gen.ListCustomerAddressesParams{CustomerID: customerID, RowLimit: int32(limit)}
	if after != nil {
		p.AfterID, p.AfterTime = &after.ID, &after.Time
	}
	rows, err := s.q.ListCustomerAddresses(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("store: list addresses: %w", err)
	}
	out := make([]customer.Address, len(rows))
	for i, r := range rows {
		out[i] = fromAddressRow(r)
	}
	return out, nil
}

// AddressForm reads the address form settings, or the defaults.
func (s *Store) AddressForm(ctx context.Context) (customer.AddressForm, error) {
	row, err := s.q.GetSetting(ctx, addressFormKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return customer.DefaultAddressForm, nil
	}
	if err != nil {
		return customer.AddressForm{}, fmt.Errorf("store: read address form: %w", err)
	}
	var f customer.AddressForm
	if err := json.Unmarshal(row.Value, &f); err != nil {
		return customer.AddressForm{}, fmt.Errorf("store: address form: %w", err)
	}
	at := row.UpdatedAt.UTC()
	f.UpdatedAt = &at
	return f, nil
}

// SaveAddressForm replaces the address form settings.
func (s *Store) SaveAddressForm(ctx context.Context, f customer.AddressForm) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("store: encode address form: %w", err)
	}
	if err := s.q.PutSetting(ctx, gen.PutSettingParams{Key: addressFormKey, Value: b, UpdatedAt: *f.UpdatedAt}); err != nil {
		return fmt.Errorf("store: save address form: %w", err)
	}
	return nil
}

func fromAddressRow(r gen.CustomerAddress) customer.Address {
	return customer.Address{
		ID: r.ID, CustomerID: r.CustomerID, FirstName: r.FirstName, LastName: r.LastName,
		CompanyName: r.CompanyName, StreetAddress1: r.StreetAddress1, StreetAddress2: r.StreetAddress2,
		City: r.City, CityArea: r.CityArea, PostalCode: r.PostalCode, Country: r.Country,
		CountryArea: r.CountryArea, Phone: r.Phone, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}
