// Package auth issues and checks the bearer API tokens of staff tools and apps.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
)

// Permissions a token can carry.
const (
	ManageUsers    = "MANAGE_USERS"
	ManageOrders   = "MANAGE_ORDERS"
	ManageSettings = "MANAGE_SETTINGS"
)

// AllPermissions lists every permission, for validation and the dev token.
var AllPermissions = []string{ManageUsers, ManageOrders, ManageSettings}

// tokenPrefix makes leaked tokens easy to recognise (secret scanners, logs).
const tokenPrefix = "cbk_"

// ErrInvalidToken means the token is unknown, malformed or revoked.
var ErrInvalidToken = errors.New("auth: invalid token")

// Principal is the authenticated caller.
type Principal struct {
	TokenID     uuid.UUID
	Name        string
	Type        string // events.AuthServiceAccount or events.AuthUser
	Permissions []string
}

// Has reports whether the principal holds the permission.
func (p Principal) Has(perm string) bool { return slices.Contains(p.Permissions, perm) }

// Actor is the principal as events record it.
func (p Principal) Actor() events.Actor { return events.Actor{Type: p.Type, ID: p.TokenID.String()} }

// Tokens creates and verifies API tokens. Verified tokens are cached briefly:
// the lookup would otherwise cost a database round trip on every request. A
// revoked token therefore keeps working for at most cacheTTL.
type Tokens struct {
	q     *gen.Queries
	mu    sync.Mutex
	cache map[[32]byte]cachedPrincipal
}

type cachedPrincipal struct {
	p       Principal
	expires time.Time
}

const (
	cacheTTL     = 10 * time.Second
	cacheMaxSize = 10_000
)

// NewTokens returns a token service on the pool.
func NewTokens(pool *pgxpool.Pool) *Tokens {
	return &Tokens{q: gen.New(pool), cache: map[[32]byte]cachedPrincipal{}}
}

// Create issues a token and returns it; only its hash is stored, so this is the
// only time it can be seen.
func (t *Tokens) Create(ctx context.Context, name, principalType string, perms []string) (string, Principal, error) {
	for _, p := range perms {
		if !slices.Contains(AllPermissions, p) {
			return "", Principal{}, fmt.Errorf("auth: unknown permission %q (known: %s)", p, strings.Join(AllPermissions, ", "))
		}
	}
	if principalType != events.AuthServiceAccount && principalType != events.AuthUser {
		return "", Principal{}, fmt.Errorf("auth: principal type must be %s or %s", events.AuthServiceAccount, events.AuthUser)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", Principal{}, fmt.Errorf("auth: random: %w", err)
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	id, err := uuid.NewV7()
	if err != nil {
		return "", Principal{}, fmt.Errorf("auth: token id: %w", err)
	}
	hash := sha256.Sum256([]byte(token))
	if err := t.q.InsertAPIToken(ctx, gen.InsertAPITokenParams{
		ID: id, Name: name, TokenHash: hash[:], PrincipalType: principalType, Permissions: perms,
	}); err != nil {
		return "", Principal{}, fmt.Errorf("auth: store token: %w", err)
	}
	return token, Principal{TokenID: id, Name: name, Type: principalType, Permissions: perms}, nil
}

// Authenticate returns the principal of a bearer token.
func (t *Tokens) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 100 {
		return Principal{}, ErrInvalidToken
	}
	hash := sha256.Sum256([]byte(token))
	now := time.Now()
	t.mu.Lock()
	c, ok := t.cache[hash]
	t.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.p, nil
	}
	row, err := t.q.GetAPITokenByHash(ctx, hash[:])
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrInvalidToken
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: look up token: %w", err)
	}
	p := Principal{TokenID: row.ID, Name: row.Name, Type: row.PrincipalType, Permissions: row.Permissions}
	t.mu.Lock()
	if len(t.cache) >= cacheMaxSize {
		clear(t.cache)
	}
	t.cache[hash] = cachedPrincipal{p: p, expires: now.Add(cacheTTL)}
	t.mu.Unlock()
	return p, nil
}

// Count returns how many live tokens exist (the dev bootstrap creates one when none do).
func (t *Tokens) Count(ctx context.Context) (int64, error) {
	n, err := t.q.CountAPITokens(ctx)
	if err != nil {
		return 0, fmt.Errorf("auth: count tokens: %w", err)
	}
	return n, nil
}
