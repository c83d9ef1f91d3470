package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// IdentityBySubject reads the identity of the issuer's subject.
func (s *Store) IdentityBySubject(ctx context.Context, issuer, subject string) (customer.Identity, error) {
	row, err := s.q.GetCustomerIdentityBySubject(ctx, gen.GetCustomerIdentityBySubjectParams{Issuer: issuer, Subject: subject})
	if errors.Is(err, pgx.ErrNoRows) {
		return customer.Identity{}, customer.ErrIdentityNotFound
	}
	if err != nil {
		return customer.Identity{}, fmt.Errorf("store: identity by subject: %w", err)
	}
	return fromIdentityRow(row), nil
}

// ListIdentities reads the customer's identities, oldest first.
func (s *Store) ListIdentities(ctx context.Context, customerID uuid.UUID) ([]customer.Identity, error) {
	rows, err := s.q.ListCustomerIdentities(ctx, customerID)
	if err != nil {
		return nil, fmt.Errorf("store: list identities: %w", err)
	}
	out := make([]customer.Identity, len(rows))
	for i, r := range rows {
		out[i] = fromIdentityRow(r)
	}
	return out, nil
}

// DeleteIdentity deletes the identity with the customer locked, so that
// two removals at once cannot both leave the customer without a way in.
func (s *Store) DeleteIdentity(ctx context.Context, customerID, id uuid.UUID, check func(customer.Customer, int) error) error {
	return s.write(ctx, customerID, func(q *gen.Queries) error {
		current, err := lockCustomers(ctx, q, []uuid.UUID{customerID})
		if err != nil {
			return err
		}
		row, err := q.DeleteCustomerIdentity(ctx, gen.DeleteCustomerIdentityParams{ID: id, CustomerID: customerID})
		if err != nil {
			return fmt.Errorf("store: delete identity: %w", err)
		}
		if row.Deleted == 0 {
			return customer.ErrIdentityNotFound
		}
		return check(current[customerID], int(row.Remaining))
	})
}

func insertIdentities(ctx context.Context, q *gen.Queries, ids []customer.Identity) error {
	for _, i := range ids {
		if err := q.InsertCustomerIdentity(ctx, gen.InsertCustomerIdentityParams{
			ID: i.ID, CustomerID: i.CustomerID, ProviderID: i.ProviderID, Issuer: i.Issuer, Subject: i.Subject,
			Email: i.Email, CreatedAt: i.CreatedAt,
		}); err != nil {
			return mapError(err)
		}
	}
	return nil
}

func fromIdentityRow(r gen.CustomerIdentity) customer.Identity {
	return customer.Identity{
		ID: r.ID, CustomerID: r.CustomerID, ProviderID: r.ProviderID, Issuer: r.Issuer, Subject: r.Subject,
		Email: r.Email, CreatedAt: r.CreatedAt.UTC(),
	}
}
