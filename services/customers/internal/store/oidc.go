package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/idp"
)

var _ idp.Store = (*Store)(nil)

// CreateProvider inserts the identity provider unless max exist.
func (s *Store) CreateProvider(ctx context.Context, p idp.Provider, max int) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.LockOIDCProviderCount(ctx); err != nil {
			return fmt.Errorf("store: lock identity providers: %w", err)
		}
		n, err := q.InsertOIDCProvider(ctx, gen.InsertOIDCProviderParams{
			ID: p.ID, DisplayName: p.DisplayName, IssuerUrl: p.IssuerURL, ClientID: p.ClientID, ClientSecret: p.ClientSecret,
			Scopes: p.Scopes, RedirectUrls: p.RedirectURLs, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, MaxProviders: int64(max),
		})
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "23505":
			return idp.ErrProviderExists
		case err != nil:
			return fmt.Errorf("store: insert identity provider: %w", err)
		case n == 0:
			return idp.ErrTooMany
		}
		return nil
	})
}

// GetProvider reads one identity provider.
func (s *Store) GetProvider(ctx context.Context, id string) (idp.Provider, error) {
	return readProvider(s.q.GetOIDCProvider(ctx, id))
}

// ListProviders reads every identity provider, by id.
func (s *Store) ListProviders(ctx context.Context) ([]idp.Provider, error) {
	rows, err := s.q.ListOIDCProviders(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: list identity providers: %w", err)
	}
	out := make([]idp.Provider, len(rows))
	for i, r := range rows {
		out[i] = fromProviderRow(r)
	}
	return out, nil
}

// UpdateProvider locks the provider, runs fn and writes what it decides.
func (s *Store) UpdateProvider(ctx context.Context, id string, fn func(idp.Provider) (*idp.Provider, error)) (idp.Provider, error) {
	var result idp.Provider
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		cur, err := readProvider(q.GetOIDCProviderForUpdate(ctx, id))
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil || next == nil {
			result = cur
			return err
		}
		p := *next
		if err := q.UpdateOIDCProvider(ctx, gen.UpdateOIDCProviderParams{
			ID: p.ID, DisplayName: p.DisplayName, IssuerUrl: p.IssuerURL, ClientID: p.ClientID, ClientSecret: p.ClientSecret,
			Scopes: p.Scopes, RedirectUrls: p.RedirectURLs, UpdatedAt: p.UpdatedAt,
		}); err != nil {
			return fmt.Errorf("store: update identity provider: %w", err)
		}
		result = p
		return nil
	})
	return result, err
}

// DeleteProvider deletes the provider; its sign-ins and identities cascade.
func (s *Store) DeleteProvider(ctx context.Context, id string) error {
	n, err := s.q.DeleteOIDCProvider(ctx, id)
	if err != nil {
		return fmt.Errorf("store: delete identity provider: %w", err)
	}
	if n == 0 {
		return idp.ErrProviderNotFound
	}
	return nil
}

// CreateAuthRequest stores a begun sign-in.
func (s *Store) CreateAuthRequest(ctx context.Context, r idp.AuthRequest) error {
	if err := s.q.InsertOIDCAuthRequest(ctx, gen.InsertOIDCAuthRequestParams{
		StateHash: r.StateHash, ProviderID: r.ProviderID, NonceHash: r.NonceHash, CodeVerifier: r.CodeVerifier,
		RedirectUrl: r.RedirectURL, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
	}); err != nil {
		return fmt.Errorf("store: insert sign-in: %w", err)
	}
	return nil
}

// TakeAuthRequest reads and deletes the sign-in of the state hash.
func (s *Store) TakeAuthRequest(ctx context.Context, providerID string, stateHash []byte) (idp.AuthRequest, error) {
	r, err := s.q.TakeOIDCAuthRequest(ctx, gen.TakeOIDCAuthRequestParams{StateHash: stateHash, ProviderID: providerID})
	if errors.Is(err, pgx.ErrNoRows) {
		return idp.AuthRequest{}, idp.ErrStateInvalid
	}
	if err != nil {
		return idp.AuthRequest{}, fmt.Errorf("store: take sign-in: %w", err)
	}
	return idp.AuthRequest{
		StateHash: r.StateHash, ProviderID: r.ProviderID, NonceHash: r.NonceHash, CodeVerifier: r.CodeVerifier,
		RedirectURL: r.RedirectUrl, CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}, nil
}

func readProvider(r gen.OidcProvider, err error) (idp.Provider, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return idp.Provider{}, idp.ErrProviderNotFound
	}
	if err != nil {
		return idp.Provider{}, fmt.Errorf("store: read identity provider: %w", err)
	}
	return fromProviderRow(r), nil
}

func fromProviderRow(r gen.OidcProvider) idp.Provider {
	return idp.Provider{
		ID: r.ID, DisplayName: r.DisplayName, IssuerURL: r.IssuerUrl, ClientID: r.ClientID, ClientSecret: r.ClientSecret,
		Scopes: r.Scopes, RedirectURLs: r.RedirectUrls, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}
