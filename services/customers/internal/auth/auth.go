// Package auth issues and checks bearer tokens: the API tokens of staff tools
// and apps, and the access tokens of logged-in customers (storefront sessions).
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
	// ManageApps manages the webhook endpoints that apps receive events at.
	ManageApps = "MANAGE_APPS"
	// ManageStaff manages staff users and their permission groups; only
	// staff users hold it (through a group), never an API token.
	ManageStaff = "MANAGE_STAFF"
)

// AllPermissions lists every permission an API token can hold, for
// validation and the dev token.
var AllPermissions = []string{ManageUsers, ManageOrders, ManageSettings, ManageApps}

// StaffPermissions lists every permission a permission group can hold.
var StaffPermissions = append(slices.Clone(AllPermissions), ManageStaff)

// What a route can require instead of a permission. No API token can hold
// these: Create accepts only AllPermissions.
const (
	// Public routes take no token (sign-up, login, links from emails).
	Public = "PUBLIC"
	// Customer routes take a customer's access token and serve that
	// customer's own data only.
	Customer = "CUSTOMER"
)

// Prefixes make leaked tokens easy to recognise (secret scanners, logs) and
// tell the kinds apart without a lookup.
const (
	tokenPrefix         = "cbk_" // API tokens of staff and apps
	customerTokenPrefix = "cbc_" // customer access tokens
	refreshTokenPrefix  = "cbr_" // customer refresh tokens
	emailTokenPrefix    = "cbt_" // one-time tokens sent by email
	staffSessionPrefix  = "cbs_" // staff console session cookies
)

// ErrInvalidToken means the token is unknown, malformed or revoked.
var ErrInvalidToken = errors.New("auth: invalid token")

// Principal is the authenticated caller.
type Principal struct {
	TokenID     uuid.UUID // the API token, or the customer's session
	Name        string
	Type        string // events.AuthServiceAccount or events.AuthUser
	Permissions []string
	// CustomerID is set for a customer's access token, and only then.
	CustomerID uuid.UUID
	// StaffID is set for a staff user's console session, and only then.
	StaffID uuid.UUID
}

// IsCustomer reports whether the caller is a logged-in customer.
func (p Principal) IsCustomer() bool { return p.CustomerID != uuid.Nil }

// Has reports whether the principal may use a route that requires perm.
func (p Principal) Has(perm string) bool {
	switch perm {
	case Public:
		return true
	case Customer:
		return p.IsCustomer()
	}
	return slices.Contains(p.Permissions, perm)
}

// Actor is the principal as events record it: a customer or a staff user
// by its id, an API token by the token's id.
func (p Principal) Actor() events.Actor {
	if p.IsCustomer() {
		return events.Actor{Type: events.AuthUser, ID: p.CustomerID.String()}
	}
	if p.StaffID != uuid.Nil {
		return events.Actor{Type: events.AuthUser, ID: p.StaffID.String()}
	}
	return events.Actor{Type: p.Type, ID: p.TokenID.String()}
}

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
	token, err := newSecret(tokenPrefix)
	if err != nil {
		return "", Principal{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", Principal{}, fmt.Errorf("auth: token id: %w", err)
	}
	if err := t.q.InsertAPIToken(ctx, gen.InsertAPITokenParams{
		ID: id, Name: name, TokenHash: Hash(token), PrincipalType: principalType, Permissions: perms,
	}); err != nil {
		return "", Principal{}, fmt.Errorf("auth: store token: %w", err)
	}
	return token, Principal{TokenID: id, Name: name, Type: principalType, Permissions: perms}, nil
}

// Authenticate returns the principal of a bearer token.
func (t *Tokens) Authenticate(ctx context.Context, token string) (Principal, error) {
	if len(token) > 100 {
		return Principal{}, ErrInvalidToken
	}
	if strings.HasPrefix(token, customerTokenPrefix) {
		return t.authenticateCustomer(ctx, token)
	}
	if !strings.HasPrefix(token, tokenPrefix) {
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

// authenticateCustomer looks the access token up on every request, without
// a cache: logging out, a password change or deactivation ends the session
// at once.
func (t *Tokens) authenticateCustomer(ctx context.Context, token string) (Principal, error) {
	row, err := t.q.GetCustomerSessionByAccess(ctx, Hash(token))
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrInvalidToken
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: look up customer token: %w", err)
	}
	if !time.Now().Before(row.AccessExpiresAt) {
		return Principal{}, ErrInvalidToken
	}
	return Principal{TokenID: row.ID, Name: "customer", Type: events.AuthUser, CustomerID: row.CustomerID}, nil
}

// NewSessionTokens returns a fresh customer access token and refresh token.
func NewSessionTokens() (access, refresh string, err error) {
	if access, err = newSecret(customerTokenPrefix); err != nil {
		return "", "", err
	}
	refresh, err = newSecret(refreshTokenPrefix)
	return access, refresh, err
}

// NewStaffSessionToken returns a fresh staff console session token.
func NewStaffSessionToken() (string, error) { return newSecret(staffSessionPrefix) }

// IsStaffSessionToken reports whether the string has the shape of one.
func IsStaffSessionToken(s string) bool {
	return strings.HasPrefix(s, staffSessionPrefix) && len(s) <= 100
}

// NewEmailToken returns a one-time token for an email's link.
func NewEmailToken() (string, error) { return newSecret(emailTokenPrefix) }

// IsRefreshToken reports whether the string has the shape of a refresh token.
func IsRefreshToken(s string) bool {
	return strings.HasPrefix(s, refreshTokenPrefix) && len(s) <= 100
}

// Hash is how tokens are stored and looked up: only a SHA-256 is kept, so a
// leaked table holds no usable token.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// newSecret returns prefix followed by 256 random bits.
func newSecret(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// TokenInfo is a live API token as it is listed: never its secret.
type TokenInfo struct {
	ID          uuid.UUID
	Name        string
	Type        string
	Permissions []string
	CreatedAt   time.Time
}

// List returns the live tokens, newest first.
func (t *Tokens) List(ctx context.Context) ([]TokenInfo, error) {
	rows, err := t.q.ListAPITokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	out := make([]TokenInfo, len(rows))
	for i, r := range rows {
		out[i] = TokenInfo{ID: r.ID, Name: r.Name, Type: r.PrincipalType, Permissions: r.Permissions, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// Names returns the names of the tokens among ids, revoked ones too, to
// name the actors of events; ids of no token are left out.
func (t *Tokens) Names(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	rows, err := t.q.APITokenNames(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("auth: token names: %w", err)
	}
	out := make(map[uuid.UUID]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Name
	}
	return out, nil
}

// Revoke ends a token; ErrInvalidToken when no live token has the id. This
// instance forgets it at once; others within cacheTTL.
func (t *Tokens) Revoke(ctx context.Context, id uuid.UUID) error {
	n, err := t.q.RevokeAPIToken(ctx, id)
	if err != nil {
		return fmt.Errorf("auth: revoke token: %w", err)
	}
	if n == 0 {
		return ErrInvalidToken
	}
	t.mu.Lock()
	for hash, c := range t.cache {
		if c.p.TokenID == id {
			delete(t.cache, hash)
		}
	}
	t.mu.Unlock()
	return nil
}
