package idp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Sign-in refusals (problem.For gives each its status and code).
var (
	// ErrStateInvalid: no sign-in was begun with this state at this
	// provider, or it was completed, or it expired.
	ErrStateInvalid = errors.New("sign-in state is not valid")
	// ErrCodeRejected: the provider refused the authorization code (used
	// already, expired, or not issued for this sign-in).
	ErrCodeRejected = errors.New("the identity provider refused the code")
	// ErrUnavailable: the provider could not be reached or answered
	// nonsense (discovery, keys or token endpoint).
	ErrUnavailable = errors.New("the identity provider is unavailable")
	// ErrRedirectNotAllowed: the redirect_url is not on the provider's list.
	ErrRedirectNotAllowed = errors.New("redirect_url is not allowed")
	// ErrUserinfoSubject: the provider's userinfo answer is about another
	// subject than the ID token; OIDC Core 5.3.2 forbids using it.
	ErrUserinfoSubject = errors.New("the identity provider's userinfo is about another subject than the ID token")
)

// TokenError refuses an ID token; Reason is one of the Reason… constants.
type TokenError struct {
	Reason string
	Err    error
}

func (e *TokenError) Error() string { return "id token " + e.Reason + ": " + e.Err.Error() }
func (e *TokenError) Unwrap() error { return e.Err }

// Reasons an ID token is refused.
const (
	ReasonExpired = "expired"
	// ReasonInvalid: not a JWT, not signed by the provider's keys, or not
	// for us (issuer or audience).
	ReasonInvalid = "invalid"
	// ReasonNonce: not the token of the sign-in the state began.
	ReasonNonce = "nonce"
	// ReasonAuthorizedParty: the token names several audiences (we are one
	// of them) but was not issued to us: its azp is another client's, or
	// it has none to say who it was issued to (OIDC Core 3.1.3.7).
	ReasonAuthorizedParty = "authorized_party"
	// ReasonClaimsMissing: the token (and, in the redirect flow, the
	// provider's userinfo) has no email; the error says where it looked.
	ReasonClaimsMissing = "claims_missing"
)

// Config tunes the sign-ins.
type Config struct {
	// AuthRequestTTL is how long a begun sign-in may take to come back.
	AuthRequestTTL time.Duration `env:"OIDC_AUTH_REQUEST_TTL" envDefault:"10m"`
	// HTTPTimeout bounds each call to a provider (discovery, keys, token).
	HTTPTimeout time.Duration `env:"OIDC_HTTP_TIMEOUT" envDefault:"10s"`
	// AuthorizePerAddress and AuthorizeTotal bound the sign-ins begun
	// (each stores a row until it expires) per client address and in all,
	// within the login window (LOGIN_FAILURE_WINDOW).
	AuthorizePerAddress int `env:"OIDC_AUTHORIZE_PER_ADDRESS" envDefault:"50"`
	AuthorizeTotal      int `env:"OIDC_AUTHORIZE_TOTAL" envDefault:"10000"`
}

// Keys of the authorize limits in the login limiter's counts.
const (
	authorizeKey        = "oidc-authorize"
	authorizeAddressKey = "oidc-authorize:addr:"
)

// AuthRequest is a begun sign-in as stored: the state and nonce as
// SHA-256 (the state finds it, the nonce is compared), and the PKCE
// verifier, which the token endpoint needs in plain.
type AuthRequest struct {
	StateHash    []byte
	ProviderID   string
	NonceHash    []byte
	CodeVerifier string
	RedirectURL  string
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

// Store keeps the providers and the begun sign-ins.
type Store interface {
	// CreateProvider inserts the provider unless max exist (ErrTooMany)
	// or its id is taken (ErrProviderExists).
	CreateProvider(ctx context.Context, p Provider, max int) error
	GetProvider(ctx context.Context, id string) (Provider, error)
	ListProviders(ctx context.Context) ([]Provider, error)
	// UpdateProvider locks the provider, lets fn decide the change (nil:
	// none) and writes it.
	UpdateProvider(ctx context.Context, id string, fn func(current Provider) (*Provider, error)) (Provider, error)
	DeleteProvider(ctx context.Context, id string) error
	CreateAuthRequest(ctx context.Context, r AuthRequest) error
	// TakeAuthRequest reads and deletes the provider's sign-in of this
	// state hash, so that it serves once; ErrStateInvalid when none.
	TakeAuthRequest(ctx context.Context, providerID string, stateHash []byte) (AuthRequest, error)
}

// Service runs the providers' settings and the sign-ins.
type Service struct {
	store     Store
	customers *customer.Service
	discovery *Discovery
	cfg       Config
	now       func() time.Time
}

// New returns a Service; discovery is shared by every Service of the
// process, so that each provider is discovered once.
func New(store Store, customers *customer.Service, discovery *Discovery, cfg Config) *Service {
	if cfg.AuthRequestTTL <= 0 {
		cfg.AuthRequestTTL = 10 * time.Minute
	}
	if cfg.AuthorizePerAddress <= 0 {
		cfg.AuthorizePerAddress = 50
	}
	if cfg.AuthorizeTotal <= 0 {
		cfg.AuthorizeTotal = 10000
	}
	return &Service{store: store, customers: customers, discovery: discovery, cfg: cfg,
		now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
}

// Discovery keeps each provider's discovery document and key set
// (go-oidc's Provider, whose key set fetches the keys again when a token
// names a key it has not seen: a rotation), one per provider, for the
// issuer its settings name.
type Discovery struct {
	client *http.Client
	mu     sync.Mutex
	known  map[string]discovered // by provider id
}

type discovered struct {
	issuer string
	op     *oidc.Provider
}

// NewDiscovery returns an empty Discovery whose calls to providers time
// out after timeout.
func NewDiscovery(timeout time.Duration) *Discovery {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Discovery{client: &http.Client{Timeout: timeout}, known: map[string]discovered{}}
}

// context carries the HTTP client to go-oidc and oauth2.
func (d *Discovery) context(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, d.client)
}

// provider discovers p's issuer, once (again when its settings name
// another); a failure is tried again next time.
func (d *Discovery) provider(ctx context.Context, p Provider) (*oidc.Provider, error) {
	d.mu.Lock()
	found, ok := d.known[p.ID]
	d.mu.Unlock()
	if ok && found.issuer == p.IssuerURL {
		return found.op, nil
	}
	// The key set keeps the context for its later fetches: not the
	// request's, which ends with it.
	op, err := oidc.NewProvider(d.context(context.WithoutCancel(ctx)), p.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("%w: discovery of %s: %w", ErrUnavailable, p.IssuerURL, err)
	}
	d.mu.Lock()
	d.known[p.ID] = discovered{issuer: p.IssuerURL, op: op}
	d.mu.Unlock()
	return op, nil
}

// AuthorizeInput starts a sign-in.
type AuthorizeInput struct {
	Provider    string
	RedirectURL string
	// Client is the caller's address, for the limits.
	Client string
}

// Authorization is where the browser goes to sign in at the provider.
type Authorization struct {
	AuthorizationURL string `json:"authorization_url"`
	// State comes back with the code: the storefront keeps it (in the
	// browser's session storage) and checks that the callback's matches,
	// so that nobody can complete a sign-in they made in the customer's
	// browser.
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Authorize begins the authorization code flow: a fresh state, nonce and
// PKCE verifier, kept server-side for AuthRequestTTL, and the provider's
// authorization URL asking for a code sent back to redirect_url. Calls are
// counted per client address and in all, and refused past the limits (a
// burst would otherwise store a row each); an address over its failed
// sign-ins' limit begins none either.
func (s *Service) Authorize(ctx context.Context, in AuthorizeInput) (Authorization, error) {
	limits := s.customers.Limiter()
	perAddress := authorizeAddressKey + in.Client
	if err := limits.Allow(ctx, limits.PerAddress(in.Client),
		customer.Limit{Key: perAddress, Max: s.cfg.AuthorizePerAddress, What: "sign-ins begun from this address"},
		customer.Limit{Key: authorizeKey, Max: s.cfg.AuthorizeTotal, What: "sign-ins begun at once; the shop is busy"}); err != nil {
		return Authorization{}, err
	}
	if err := limits.Count(ctx, perAddress, authorizeKey); err != nil {
		return Authorization{}, err
	}
	var c customer.Checks
	if in.RedirectURL == "" {
		c.Fail("redirect_url", customer.CodeRequired, "redirect_url is required: the storefront page the provider sends the browser back to")
	}
	if err := c.Err(); err != nil {
		return Authorization{}, err
	}
	p, err := s.store.GetProvider(ctx, in.Provider)
	if err != nil {
		return Authorization{}, err
	}
	if !slices.Contains(p.RedirectURLs, in.RedirectURL) {
		return Authorization{}, ErrRedirectNotAllowed
	}
	op, err := s.discovery.provider(ctx, p)
	if err != nil {
		return Authorization{}, err
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	now := s.now()
	req := AuthRequest{
		StateHash: auth.Hash(state), ProviderID: p.ID, NonceHash: auth.Hash(nonce), CodeVerifier: verifier,
		RedirectURL: in.RedirectURL, CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthRequestTTL),
	}
	if err := s.store.CreateAuthRequest(ctx, req); err != nil {
		return Authorization{}, err
	}
	u := oauthConfig(p, op, in.RedirectURL).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	return Authorization{AuthorizationURL: u, State: state, ExpiresAt: req.ExpiresAt}, nil
}

// CallbackInput completes a sign-in with what the provider sent back.
type CallbackInput struct {
	Code  string `json:"code"`
	State string `json:"state"`
}

// Callback completes the sign-in the state began: it redeems the code at
// the provider (with the PKCE verifier), verifies the ID token (issuer,
// audience, expiry, signature, and the nonce of this sign-in) and signs
// the customer in. client is the caller's address: its failed sign-ins
// are counted with its failed logins, under the same limit.
func (s *Service) Callback(ctx context.Context, o customer.Origin, provider string, in CallbackInput, client string) (customer.Session, error) {
	return s.limited(ctx, client, func() (customer.Session, error) { return s.callback(ctx, o, provider, in) })
}

func (s *Service) callback(ctx context.Context, o customer.Origin, provider string, in CallbackInput) (customer.Session, error) {
	var c customer.Checks
	if in.Code == "" {
		c.Fail("code", customer.CodeRequired, "code is required")
	}
	if in.State == "" {
		c.Fail("state", customer.CodeRequired, "state is required")
	}
	if err := c.Err(); err != nil {
		return customer.Session{}, err
	}
	p, err := s.store.GetProvider(ctx, provider)
	if err != nil {
		return customer.Session{}, err
	}
	// Taken (deleted) before anything else: a state serves one attempt,
	// whatever comes of it.
	req, err := s.store.TakeAuthRequest(ctx, p.ID, auth.Hash(in.State))
	if err != nil {
		return customer.Session{}, err
	}
	if !s.now().Before(req.ExpiresAt) {
		return customer.Session{}, ErrStateInvalid
	}
	op, err := s.discovery.provider(ctx, p)
	if err != nil {
		return customer.Session{}, err
	}
	tok, err := oauthConfig(p, op, req.RedirectURL).Exchange(s.discovery.context(ctx), in.Code, oauth2.VerifierOption(req.CodeVerifier))
	var refused *oauth2.RetrieveError
	switch {
	case errors.As(err, &refused) && refused.Response != nil && refused.Response.StatusCode < 500:
		return customer.Session{}, fmt.Errorf("%w: %s", ErrCodeRejected, refused.ErrorCode)
	case err != nil:
		return customer.Session{}, fmt.Errorf("%w: token endpoint: %w", ErrUnavailable, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return customer.Session{}, fmt.Errorf("%w: the token response has no id_token", ErrUnavailable)
	}
	claims, idt, complete, err := s.verify(ctx, p, op, raw)
	if err != nil {
		return customer.Session{}, err
	}
	if subtle.ConstantTimeCompare(auth.Hash(idt.Nonce), req.NonceHash) != 1 {
		return customer.Session{}, &TokenError{Reason: ReasonNonce, Err: errors.New("the nonce is not this sign-in's")}
	}
	if !complete {
		if claims, err = s.userinfoEmail(ctx, op, tok, claims); err != nil {
			return customer.Session{}, err
		}
	}
	return s.customers.SignInWithIdentity(ctx, o, claims)
}

// ExchangeInput is an ID token a native app obtained from the provider.
type ExchangeInput struct {
	IDToken string `json:"id_token"`
}

// Exchange signs in with an ID token the app got from the provider
// itself: verified as a callback's (issuer, audience = our client id,
// expiry, signature); its nonce is the app's to check. Without an access
// token there is no userinfo to ask: the token itself must carry the
// email, and one without email_verified has an unverified email. client
// is limited as a callback's.
func (s *Service) Exchange(ctx context.Context, o customer.Origin, provider string, in ExchangeInput, client string) (customer.Session, error) {
	return s.limited(ctx, client, func() (customer.Session, error) { return s.exchange(ctx, o, provider, in) })
}

// limited runs a sign-in under the client address's limit of failed
// logins (LOGIN_FAILURES_PER_ADDRESS), and counts its refusal when it
// is one a guesser or a replayer would meet: a state, code or ID token
// not good.
func (s *Service) limited(ctx context.Context, client string, signIn func() (customer.Session, error)) (customer.Session, error) {
	limits := s.customers.Limiter()
	if err := limits.Allow(ctx, limits.PerAddress(client)); err != nil {
		return customer.Session{}, err
	}
	sess, err := signIn()
	var token *TokenError
	if errors.Is(err, ErrStateInvalid) || errors.Is(err, ErrCodeRejected) || errors.As(err, &token) {
		if cerr := limits.Count(ctx, customer.AddressKey(client)); cerr != nil {
			return customer.Session{}, cerr
		}
	}
	return sess, err
}

func (s *Service) exchange(ctx context.Context, o customer.Origin, provider string, in ExchangeInput) (customer.Session, error) {
	if in.IDToken == "" {
		return customer.Session{}, customer.FieldErr("id_token", customer.CodeRequired, "id_token is required")
	}
	p, err := s.store.GetProvider(ctx, provider)
	if err != nil {
		return customer.Session{}, err
	}
	op, err := s.discovery.provider(ctx, p)
	if err != nil {
		return customer.Session{}, err
	}
	claims, _, _, err := s.verify(ctx, p, op, in.IDToken)
	if err != nil {
		return customer.Session{}, err
	}
	if claims.Email == "" {
		return customer.Session{}, emailMissing("the ID token has no email claim, and a token exchange has no access token to ask the provider's userinfo for it; " +
			"have the provider put email and email_verified in its ID tokens (scope email)")
	}
	return s.customers.SignInWithIdentity(ctx, o, claims)
}

// emailClaims are the claims a first sign-in needs, in an ID token or a
// userinfo answer; EmailVerified is nil when the claim is absent.
type emailClaims struct {
	Email         string    `json:"email"`
	EmailVerified *flexBool `json:"email_verified"`
}

// email is the email and whether the provider vouches for it: an absent
// email_verified is a provider not vouching (some leave the claim out
// when it is false).
func (c emailClaims) email() (string, bool) {
	return c.Email, c.EmailVerified != nil && bool(*c.EmailVerified)
}

// complete: both claims are there.
func (c emailClaims) complete() bool { return c.Email != "" && c.EmailVerified != nil }

// idClaims are the ID token claims a sign-in reads beyond go-oidc's.
type idClaims struct {
	emailClaims
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
	Locale     string `json:"locale"`
	// AuthorizedParty (azp) is the client the token was issued to.
	AuthorizedParty string `json:"azp"`
}

// flexBool reads a JSON boolean, or the strings "true" and "false" that
// some providers send instead.
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case bool:
		*b = flexBool(t)
	case string:
		parsed, err := strconv.ParseBool(t)
		*b = flexBool(err == nil && parsed)
	default:
		*b = false
	}
	return nil
}

// verify checks the ID token with go-oidc (signature against the issuer's
// keys, iss, aud = our client id, exp) and the authorized party, and reads
// its claims; complete says it has both email and email_verified.
func (s *Service) verify(ctx context.Context, p Provider, op *oidc.Provider, raw string) (_ customer.IdentityClaims, _ *oidc.IDToken, complete bool, _ error) {
	idt, err := op.Verifier(&oidc.Config{ClientID: p.ClientID}).Verify(s.discovery.context(ctx), raw)
	var expired *oidc.TokenExpiredError
	switch {
	case errors.As(err, &expired):
		return customer.IdentityClaims{}, nil, false, &TokenError{Reason: ReasonExpired, Err: err}
	case err != nil:
		return customer.IdentityClaims{}, nil, false, &TokenError{Reason: ReasonInvalid, Err: err}
	}
	var cl idClaims
	if err := idt.Claims(&cl); err != nil {
		return customer.IdentityClaims{}, nil, false, &TokenError{Reason: ReasonInvalid, Err: err}
	}
	if err := checkAuthorizedParty(p.ClientID, idt.Audience, cl.AuthorizedParty); err != nil {
		return customer.IdentityClaims{}, nil, false, &TokenError{Reason: ReasonAuthorizedParty, Err: err}
	}
	claims := customer.IdentityClaims{
		ProviderID: p.ID, ProviderName: p.DisplayName, Issuer: idt.Issuer, Subject: idt.Subject, GivenName: cl.GivenName, FamilyName: cl.FamilyName, Locale: cl.Locale,
	}
	claims.Email, claims.EmailVerified = cl.email()
	return claims, idt, cl.complete(), nil
}

// userinfoEmail reads email and email_verified from the provider's
// userinfo endpoint with the access token of the sign-in, for an ID token
// that lacks one of them (some providers put only the subject in ID
// tokens). Both are taken from userinfo, since email_verified speaks of
// its email; userinfo must have the email. The answer must be about the ID token's subject (OIDC Core
// 5.3.2): else it may be another person's, and is refused.
func (s *Service) userinfoEmail(ctx context.Context, op *oidc.Provider, tok *oauth2.Token, claims customer.IdentityClaims) (customer.IdentityClaims, error) {
	if op.UserInfoEndpoint() == "" {
		if claims.Email == "" {
			return claims, emailMissing("the ID token has no email claim, and the provider has no userinfo endpoint to ask for it")
		}
		return claims, nil // an email without email_verified: not verified
	}
	info, err := op.UserInfo(s.discovery.context(ctx), oauth2.StaticTokenSource(tok))
	if err != nil {
		return claims, fmt.Errorf("%w: userinfo: %w", ErrUnavailable, err)
	}
	if subtle.ConstantTimeCompare([]byte(info.Subject), []byte(claims.Subject)) != 1 {
		return claims, ErrUserinfoSubject
	}
	var cl idClaims
	if err := info.Claims(&cl); err != nil {
		return claims, fmt.Errorf("%w: userinfo: %w", ErrUnavailable, err)
	}
	if cl.Email == "" {
		return claims, emailMissing("neither the ID token nor the provider's userinfo has an email claim; the provider must give it (scope email)")
	}
	claims.Email, claims.EmailVerified = cl.email()
	// A provider that keeps the email out of its ID tokens keeps the
	// profile out too: taken from userinfo where the token has none.
	for _, f := range []struct {
		token *string
		info  string
	}{
		{&claims.GivenName, cl.GivenName}, {&claims.FamilyName, cl.FamilyName}, {&claims.Locale, cl.Locale},
	} {
		if *f.token == "" {
			*f.token = f.info
		}
	}
	return claims, nil
}

// emailMissing refuses a token without an email; why says where it was
// looked for.
func emailMissing(why string) error {
	return &TokenError{Reason: ReasonClaimsMissing, Err: errors.New(why)}
}

// checkAuthorizedParty applies OIDC Core 3.1.3.7, steps 4 and 5, which
// go-oidc leaves to its callers: a token with several audiences must say
// in azp that it was issued to us, and an azp, wherever present, must be
// our client id. Otherwise a token another client of the provider obtained
// (which merely lists us among its audiences) would sign in here.
func checkAuthorizedParty(clientID string, audience []string, azp string) error {
	switch {
	case azp != "" && azp != clientID:
		return fmt.Errorf("issued to client %q (azp), not to %q", azp, clientID)
	case azp == "" && len(audience) > 1:
		return fmt.Errorf("it has %d audiences and no azp naming the client it was issued to", len(audience))
	}
	return nil
}

func oauthConfig(p Provider, op *oidc.Provider, redirectURL string) *oauth2.Config {
	return &oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret, Endpoint: op.Endpoint(), RedirectURL: redirectURL, Scopes: p.Scopes}
}

// randomToken is 32 random bytes, base64url: a state or a nonce.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
