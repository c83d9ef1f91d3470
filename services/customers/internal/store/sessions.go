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

// CreateSession stores a login and drops the customer's ended ones, so
// sessions do not pile up without a sweeper.
func (s *Store) CreateSession(ctx context.Context, ss customer.StoredSession) error {
	return s.write(ctx, ss.CustomerID, func(q *gen.Queries) error {
		if err := q.DeleteEndedCustomerSessions(ctx, gen.DeleteEndedCustomerSessionsParams{
			CustomerID: ss.CustomerID, RefreshExpiresAt: ss.CreatedAt,
		}); err != nil {
			return fmt.Errorf("store: drop ended sessions: %w", err)
		}
		if err := q.InsertCustomerSession(ctx, gen.InsertCustomerSessionParams{
			ID: ss.ID, CustomerID: ss.CustomerID, AccessHash: ss.AccessHash, RefreshHash: ss.RefreshHash,
			CreatedAt: ss.CreatedAt, AccessExpiresAt: ss.AccessExpiresAt, RefreshExpiresAt: ss.RefreshExpiresAt,
		}); err != nil {
			return fmt.Errorf("store: insert session: %w", err)
		}
		return nil
	})
}

// RotateSession replaces the tokens of the session holding refreshHash.
func (s *Store) RotateSession(ctx context.Context, refreshHash []byte, next customer.StoredSession) (customer.StoredSession, error) {
	row, err := s.q.RotateCustomerSession(ctx, gen.RotateCustomerSessionParams{
		NewAccessHash: next.AccessHash, NewRefreshHash: next.RefreshHash, AccessExpiresAt: next.AccessExpiresAt,
		RefreshHash: refreshHash, Now: time.Now(),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return customer.StoredSession{}, customer.ErrSessionInvalid
	}
	if err != nil {
		return customer.StoredSession{}, fmt.Errorf("store: rotate session: %w", err)
	}
	next.ID, next.CustomerID, next.RefreshExpiresAt = row.ID, row.CustomerID, row.RefreshExpiresAt
	return next, nil
}

// RevokeSession ends one session.
func (s *Store) RevokeSession(ctx context.Context, id uuid.UUID) error {
	if err := s.q.DeleteCustomerSession(ctx, id); err != nil {
		return fmt.Errorf("store: revoke session: %w", err)
	}
	return nil
}

// RevokeSessions ends every session of the customer.
func (s *Store) RevokeSessions(ctx context.Context, customerID uuid.UUID) error {
	if err := s.q.DeleteCustomerSessions(ctx, customerID); err != nil {
		return fmt.Errorf("store: revoke sessions: %w", err)
	}
	return nil
}

// LoginFailures reads the failure counts of the keys' current windows.
func (s *Store) LoginFailures(ctx context.Context, keys []string, windowStart time.Time) ([]customer.LoginFailures, error) {
	rows, err := s.q.GetLoginFailures(ctx, gen.GetLoginFailuresParams{Keys: keys, WindowStart: windowStart})
	if err != nil {
		return nil, fmt.Errorf("store: login failures: %w", err)
	}
	out := make([]customer.LoginFailures, len(rows))
	for i, r := range rows {
		out[i] = customer.LoginFailures{Key: r.Key, Failures: int(r.Failures), WindowStarted: r.WindowStartedAt}
	}
	return out, nil
}

// RecordLoginFailure counts a failure for each key, and sweeps a few
// windows that have ended.
func (s *Store) RecordLoginFailure(ctx context.Context, keys []string, now, windowStart time.Time) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		for _, k := range keys {
			if err := q.RecordLoginFailure(ctx, gen.RecordLoginFailureParams{Key: k, Now: now, WindowStart: windowStart}); err != nil {
				return fmt.Errorf("store: record login failure: %w", err)
			}
		}
		if err := q.DeleteStaleLoginFailures(ctx, windowStart); err != nil {
			return fmt.Errorf("store: sweep login failures: %w", err)
		}
		return nil
	})
}

// ClearLoginFailures forgets a key's failures (after a successful login).
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	if err := s.q.ClearLoginFailures(ctx, key); err != nil {
		return fmt.Errorf("store: clear login failures: %w", err)
	}
	return nil
}
