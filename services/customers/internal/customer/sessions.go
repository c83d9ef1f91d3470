package customer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/password"
)

// AccountConfig tunes customer accounts; a zero field takes its default.
// The env tags name the service's environment variables.
type AccountConfig struct {
	// Set-password, verification and email-change links.
	EmailTokenTTL time.Duration `env:"EMAIL_TOKEN_TTL" envDefault:"72h"`
	// Password-reset and deletion links: shorter, they grant more.
	ResetTokenTTL time.Duration `env:"RESET_TOKEN_TTL" envDefault:"1h"`
	AccessTTL     time.Duration `env:"CUSTOMER_ACCESS_TOKEN_TTL" envDefault:"1h"`
	RefreshTTL    time.Duration `env:"CUSTOMER_LOGIN_TTL" envDefault:"720h"` // a login, refreshes included
	// Failed logins allowed per email and per client address within
	// LoginWindow; past them, logins are refused until the window ends.
	LoginFailuresPerEmail   int           `env:"LOGIN_FAILURES_PER_EMAIL" envDefault:"10"`
	LoginFailuresPerAddress int           `env:"LOGIN_FAILURES_PER_ADDRESS" envDefault:"100"`
	LoginWindow             time.Duration `env:"LOGIN_FAILURE_WINDOW" envDefault:"15m"`
}

// DefaultAccountConfig holds the defaults.
var DefaultAccountConfig = AccountConfig{
	EmailTokenTTL: 72 * time.Hour, ResetTokenTTL: time.Hour,
	AccessTTL: time.Hour, RefreshTTL: 30 * 24 * time.Hour,
	LoginFailuresPerEmail: 10, LoginFailuresPerAddress: 100, LoginWindow: 15 * time.Minute,
}

func (c AccountConfig) withDefaults() AccountConfig {
	d := DefaultAccountConfig
	pick := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&c.EmailTokenTTL, d.EmailTokenTTL)
	pick(&c.ResetTokenTTL, d.ResetTokenTTL)
	pick(&c.AccessTTL, d.AccessTTL)
	pick(&c.RefreshTTL, d.RefreshTTL)
	pick(&c.LoginWindow, d.LoginWindow)
	if c.LoginFailuresPerEmail <= 0 {
		c.LoginFailuresPerEmail = d.LoginFailuresPerEmail
	}
	if c.LoginFailuresPerAddress <= 0 {
		c.LoginFailuresPerAddress = d.LoginFailuresPerAddress
	}
	return c
}

// Login errors; the HTTP edge maps them.
var (
	// ErrBadCredentials: no active account has this email and password. It
	// does not say which of the two is wrong.
	ErrBadCredentials = errors.New("email or password is wrong")
	ErrInactive       = errors.New("the account is deactivated")
	ErrUnverified     = errors.New("the account's email is not confirmed yet")
	ErrSessionInvalid = errors.New("refresh token is not valid")
)

// RateLimitedError refuses a login after too many failures.
type RateLimitedError struct {
	RetryAfter time.Duration
	// What was counted too many times; "failed logins" when empty.
	What string
}

func (e *RateLimitedError) Error() string {
	what := e.What
	if what == "" {
		what = "failed logins"
	}
	return fmt.Sprintf("too many %s; try again in %s", what, e.RetryAfter.Round(time.Second))
}

// StoredSession is a login as stored: token hashes only.
type StoredSession struct {
	ID               uuid.UUID
	CustomerID       uuid.UUID
	AccessHash       []byte
	RefreshHash      []byte
	CreatedAt        time.Time
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
}

// LoginFailures counts the failures of one key in its current window.
type LoginFailures struct {
	Key           string
	Failures      int
	WindowStarted time.Time
}

// SessionStore keeps logins and failed-login counts.
type SessionStore interface {
	// CreateSession stores a login, and drops the customer's ended ones.
	CreateSession(ctx context.Context, s StoredSession) error
	// RotateSession gives the session holding refreshHash new tokens, while
	// it lasts and its customer is active; ErrSessionInvalid otherwise.
	RotateSession(ctx context.Context, refreshHash []byte, next StoredSession) (StoredSession, error)
	RevokeSession(ctx context.Context, id uuid.UUID) error
	RevokeSessions(ctx context.Context, customerID uuid.UUID) error
	LoginFailureStore
}

// LoginFailureStore keeps failed-login counts, shared by every instance.
type LoginFailureStore interface {
	LoginFailures(ctx context.Context, keys []string, windowStart time.Time) ([]LoginFailures, error)
	// RecordLoginFailure counts a failure for each key.
	RecordLoginFailure(ctx context.Context, keys []string, now, windowStart time.Time) error
	ClearLoginFailures(ctx context.Context, key string) error
}

// Session is a login as its customer receives it: the tokens in plain, once.
type Session struct {
	AccessToken      string
	RefreshToken     string
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
	Customer         Customer
}

// LoginInput is an email and password.
type LoginInput struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Login checks the password and opens a session. client is the caller's
// network address, for rate limiting.
func (s *Service) Login(ctx context.Context, in LoginInput, client string) (Session, error) {
	r := rules{}
	email := r.email("email", in.Email)
	if in.Password == "" {
		r.fail("password", CodeRequired, "password is required")
	}
	if err := r.err(); err != nil {
		return Session{}, err
	}
	c, err := s.checkPassword(ctx, email, in.Password, client)
	if err != nil {
		return Session{}, err
	}
	sess, err := s.openSession(ctx, c)
	if err != nil {
		return Session{}, err
	}
	if password.NeedsRehash(c.PasswordHash) {
		// The login has succeeded and stays so whatever the rehash does: the
		// old hash still verifies, so a rehash that fails (a lost
		// connection, a cancelled request) costs nothing but being tried
		// again at the next login. Failing the login would turn away a
		// customer whose password is right, and the domain has no logger to
		// report it to (errors are logged at the edges, and this one is not
		// the caller's).
		_ = s.rehash(ctx, c, in.Password)
	}
	return sess, nil
}

// openSession logs the customer in, once its credentials are proven (a
// password, an identity provider's ID token): an active, verified
// customer gets a new session.
func (s *Service) openSession(ctx context.Context, c Customer) (Session, error) {
	switch {
	case !c.IsActive:
		return Session{}, ErrInactive
	case !c.IsVerified:
		return Session{}, ErrUnverified
	}
	now := s.now()
	sess, stored, err := s.newSession(c.ID, now)
	if err != nil {
		return Session{}, err
	}
	stored.CreatedAt, stored.RefreshExpiresAt = now, now.Add(s.accounts.RefreshTTL)
	sess.RefreshExpiresAt = stored.RefreshExpiresAt
	if err := s.store.CreateSession(ctx, stored); err != nil {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	sess.Customer = c
	return sess, nil
}

// rehash replaces the customer's hash, from another system or made with
// older parameters, by our argon2id of the password it has just been
// verified against. It is no change a consumer sees (a hash is never in an
// event), so the version does not move and no event is written: a version
// without its event would leave a gap in sequence. The customer's sessions
// stay. Should the hash have changed since it was verified (a password reset
// in between), the newer one is kept.
func (s *Service) rehash(ctx context.Context, c Customer, pw string) error {
	hash, err := password.Hash(pw)
	if err != nil {
		return fmt.Errorf("rehash password: %w", err)
	}
	_, err = update(ctx, s.store, c.ID, func(cur Customer) (*Mutation, error) {
		if cur.PasswordHash != c.PasswordHash {
			return nil, nil
		}
		next := cur
		next.PasswordHash = hash
		return &Mutation{Customer: next, Rehash: true}, nil
	})
	if err != nil {
		return fmt.Errorf("rehash password: %w", err)
	}
	return nil
}

// newSession mints a pair of tokens for the customer.
func (s *Service) newSession(customerID uuid.UUID, now time.Time) (Session, StoredSession, error) {
	access, refresh, err := auth.NewSessionTokens()
	if err != nil {
		return Session{}, StoredSession{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Session{}, StoredSession{}, fmt.Errorf("session id: %w", err)
	}
	exp := now.Add(s.accounts.AccessTTL)
	return Session{AccessToken: access, RefreshToken: refresh, AccessExpiresAt: exp},
		StoredSession{ID: id, CustomerID: customerID, AccessHash: auth.Hash(access), RefreshHash: auth.Hash(refresh), AccessExpiresAt: exp},
		nil
}

// RefreshInput is a refresh token.
type RefreshInput struct {
	RefreshToken string `json:"refresh_token"`
}

// Refresh replaces a session's tokens: the old refresh token stops working,
// so a stolen one is good for one use at most. The session still ends when
// the login's refresh lifetime does.
func (s *Service) Refresh(ctx context.Context, in RefreshInput) (Session, error) {
	switch {
	case in.RefreshToken == "":
		return Session{}, FieldErr("refresh_token", CodeRequired, "refresh_token is required")
	case !auth.IsRefreshToken(in.RefreshToken):
		return Session{}, ErrSessionInvalid
	}
	now := s.now()
	sess, next, err := s.newSession(uuid.Nil, now)
	if err != nil {
		return Session{}, err
	}
	got, err := s.store.RotateSession(ctx, auth.Hash(in.RefreshToken), next)
	if err != nil {
		return Session{}, err
	}
	sess.RefreshExpiresAt = got.RefreshExpiresAt
	if sess.Customer, err = s.store.Get(ctx, got.CustomerID); err != nil {
		return Session{}, err
	}
	return sess, nil
}

// Logout ends one session, or every session of its customer.
func (s *Service) Logout(ctx context.Context, customerID, sessionID uuid.UUID, all bool) error {
	if all {
		return s.store.RevokeSessions(ctx, customerID)
	}
	return s.store.RevokeSession(ctx, sessionID)
}

// checkPassword verifies the password of the customer with this email and
// returns the customer, under the login limits.
func (s *Service) checkPassword(ctx context.Context, email, pw, client string) (Customer, error) {
	var c Customer
	err := s.Limiter().Verify(ctx, loginKey(email), client, pw,
		func() (string, error) {
			var err error
			c, err = s.accountByEmail(ctx, email)
			if errors.Is(err, ErrNotFound) {
				return "", nil
			}
			return c.PasswordHash, err
		})
	return c, err
}

// Limiter is the login limits on the customers' store, for sign-ins
// other than a password's (identity providers) to count under.
func (s *Service) Limiter() LoginLimiter {
	return LoginLimiter{Store: s.store, Config: s.accounts, Now: s.now}
}

// LoginLimiter checks passwords under the login limits: failures are
// counted per account and per client address, and while either is over
// its limit logins are refused at once. The customers' logins and the
// staff's share it (with accounts keyed apart).
type LoginLimiter struct {
	Store  LoginFailureStore
	Config AccountConfig // its LoginFailures… and LoginWindow
	Now    func() time.Time
}

// Verify checks pw against the hash that lookup reads (looked up only
// when no limit is reached, so a flood costs little; "" when there is no
// such account). It returns nil, ErrBadCredentials or a
// *RateLimitedError; the answer does not reveal whether the account exists.
func (l LoginLimiter) Verify(ctx context.Context, accountKey, client, pw string, lookup func() (string, error)) error {
	cfg := l.Config.withDefaults()
	clientKey := AddressKey(client)
	if err := l.Allow(ctx, Limit{Key: accountKey, Max: cfg.LoginFailuresPerEmail}, l.PerAddress(client)); err != nil {
		return err
	}
	hash, err := lookup()
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if hash == "" {
		hash = dummyHash()
	}
	// An unknown account is checked against a dummy hash: it takes as long
	// as a wrong password, so timing does not reveal who has an account.
	ok, err := password.Matches(pw, hash)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if !ok || hash == dummyHash() {
		if err := l.Count(ctx, accountKey, clientKey); err != nil {
			return err
		}
		return ErrBadCredentials
	}
	if err := l.Store.ClearLoginFailures(ctx, accountKey); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return nil
}

// Limit is how many times a key may be counted within the login window.
type Limit struct {
	Key string
	Max int
	// What the key counts, for the refusal; "failed logins" when empty.
	What string
}

// AddressKey counts a client address's failed logins, whatever their
// method.
func AddressKey(client string) string { return "addr:" + client }

// PerAddress is the limit of the client address's failed logins
// (LoginFailuresPerAddress).
func (l LoginLimiter) PerAddress(client string) Limit {
	return Limit{Key: AddressKey(client), Max: l.Config.withDefaults().LoginFailuresPerAddress}
}

// Allow refuses, with a *RateLimitedError saying when to try again, while
// any of the keys has been counted its Max times in the current window.
func (l LoginLimiter) Allow(ctx context.Context, limits ...Limit) error {
	cfg := l.Config.withDefaults()
	now := l.Now()
	keys := make([]string, len(limits))
	for i, lim := range limits {
		keys[i] = lim.Key
	}
	counts, err := l.Store.LoginFailures(ctx, keys, now.Add(-cfg.LoginWindow))
	if err != nil {
		return fmt.Errorf("login limits: %w", err)
	}
	for _, f := range counts {
		for _, lim := range limits {
			if f.Key == lim.Key && f.Failures >= lim.Max {
				return &RateLimitedError{RetryAfter: f.WindowStarted.Add(cfg.LoginWindow).Sub(now), What: lim.What}
			}
		}
	}
	return nil
}

// Count counts one for each key in its current window.
func (l LoginLimiter) Count(ctx context.Context, keys ...string) error {
	now := l.Now()
	if err := l.Store.RecordLoginFailure(ctx, keys, now, now.Add(-l.Config.withDefaults().LoginWindow)); err != nil {
		return fmt.Errorf("login limits: %w", err)
	}
	return nil
}

// accountByEmail reads the account an email logs into: its customer's, or
// the one a customer with that email was merged into.
func (s *Service) accountByEmail(ctx context.Context, email string) (Customer, error) {
	c, err := s.store.GetByEmail(ctx, email)
	if errors.Is(err, ErrNotFound) {
		return s.store.GetByMergedEmail(ctx, email)
	}
	return c, err
}

// loginKey counts the failed logins with an email.
func loginKey(email string) string { return "email:" + email }

// dummyHash is a hash no password is checked against for real.
var dummyHash = sync.OnceValue(func() string {
	h, err := password.Hash(uuid.NewString())
	if err != nil {
		panic(err) // only when the system's random source fails
	}
	return h
})
