package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// UseToken locks the token and its customer, lets fn decide the change, and
// writes it with the token marked used, all in one transaction.
func (s *Store) UseToken(ctx context.Context, hash []byte, fn func(customer.Customer, customer.Token) (*customer.Mutation, error)) (customer.Customer, error) {
	var result customer.Customer
	err := s.write(ctx, uuid.Nil, func(q *gen.Queries) error {
		row, err := q.GetCustomerTokenForUpdate(ctx, hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return customer.ErrTokenInvalid
		}
		if err != nil {
			return fmt.Errorf("store: read token: %w", err)
		}
		current, err := lockCustomers(ctx, q, []uuid.UUID{row.CustomerID})
		if err != nil {
			return err
		}
		cur := current[row.CustomerID]
		t := customer.Token{Hash: row.TokenHash, CustomerID: row.CustomerID, Purpose: row.Purpose,
			NewEmail: deref(row.NewEmail), CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt, UsedAt: row.UsedAt}
		m, err := fn(cur, t)
		if err != nil {
			return err
		}
		if result, err = apply(ctx, q, cur, m); err != nil {
			return err
		}
		if err := q.UseCustomerToken(ctx, gen.UseCustomerTokenParams{TokenHash: hash, UsedAt: &result.UpdatedAt}); err != nil {
			return fmt.Errorf("store: use token: %w", err)
		}
		if m != nil {
			return writeOutbox(ctx, q, m.Events)
		}
		return nil
	})
	return result, err
}

// GetByEmail reads the customer with this email.
func (s *Store) GetByEmail(ctx context.Context, email string) (customer.Customer, error) {
	row, err := s.q.GetCustomerByEmail(ctx, email)
	if err != nil {
		return customer.Customer{}, mapError(err)
	}
	return fromRow(row)
}

// GetByExternalReference reads the customer with this external reference.
func (s *Store) GetByExternalReference(ctx context.Context, ref string) (customer.Customer, error) {
	row, err := s.q.GetCustomerByExternalReference(ctx, &ref)
	if err != nil {
		return customer.Customer{}, mapError(err)
	}
	return fromRow(row)
}

// LatestToken is when the customer was last sent a token of this purpose;
// the zero time when never.
func (s *Store) LatestToken(ctx context.Context, customerID uuid.UUID, purpose string) (time.Time, error) {
	t, err := s.q.LatestCustomerToken(ctx, gen.LatestCustomerTokenParams{CustomerID: customerID, Purpose: purpose})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: latest token: %w", err)
	}
	if t.Unix() == 0 {
		return time.Time{}, nil
	}
	return t, nil
}

func insertTokens(ctx context.Context, q *gen.Queries, tokens []customer.Token) error {
	for _, t := range tokens {
		if err := q.InsertCustomerToken(ctx, gen.InsertCustomerTokenParams{
			TokenHash: t.Hash, CustomerID: t.CustomerID, Purpose: t.Purpose, NewEmail: nullable(t.NewEmail),
			CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		}); err != nil {
			return fmt.Errorf("store: insert token: %w", err)
		}
	}
	return nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
