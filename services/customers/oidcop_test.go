package customers_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
	"golang.org/x/text/language"
)

// The OpenID provider of the OIDC tests: zitadel/oidc's example OP (its
// pkg/op server, login page and in-memory storage), run by the test on a
// port of its own, with users the test adds and signing keys it rotates.

// Clients registered at the test OP.
const (
	shopClientID      = "shop"
	shopClientSecret  = "shop-secret"
	otherClientID     = "other-app"
	otherClientSecret = "other-secret"
	// shopCallback is the storefront page the OP sends the browser back to.
	shopCallback = "https://shop.example.com/account/oidc-callback"
	opPassword   = "op password"
)

type testOP struct {
	t      *testing.T
	srv    *httptest.Server
	issuer string
	store  *opStorage
	users  *opUsers
}

// opUser is a person with an account at the OP.
type opUser struct {
	ID, Username, Email string
}

// newTestOP starts an OP until the test ends.
func newTestOP(t *testing.T) *testOP {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	users := &opUsers{byID: map[string]*storage.User{}}
	clients := map[string]*storage.Client{
		shopClientID:  storage.WebClient(shopClientID, shopClientSecret, shopCallback),
		otherClientID: storage.WebClient(otherClientID, otherClientSecret, shopCallback),
	}
	st := &opStorage{Storage: storage.NewStorageWithClients(users, clients), idTokenLifetime: time.Hour}
	st.rotate()
	srv.Config.Handler = exampleop.SetupServer(issuer, st, nil, false)
	srv.Start()
	t.Cleanup(srv.Close)
	return &testOP{t: t, srv: srv, issuer: issuer, store: st, users: users}
}

// addUser gives the OP a person with this email, verified or not.
func (o *testOP) addUser(email string, verified bool) opUser {
	id := "sub-" + uuid.NewString()
	u := &storage.User{
		ID: id, Username: id + "@op.test", Password: opPassword, FirstName: "Olli", LastName: "Provider",
		Email: email, EmailVerified: verified, PreferredLanguage: language.German,
	}
	o.users.mu.Lock()
	o.users.byID[id] = u
	o.users.mu.Unlock()
	return opUser{ID: id, Username: u.Username, Email: email}
}

// addAudience makes the OP name these clients too in the audience of
// the ID tokens it issues from now on (the client that asked for the
// token stays their azp).
func (o *testOP) addAudience(clientIDs ...string) {
	o.store.mu.Lock()
	o.store.extraAudience = clientIDs
	o.store.mu.Unlock()
}

// signToken is an ID token with these claims signed by the OP's current
// key, for tokens the OP's flows would not issue (one without azp).
func (o *testOP) signToken(claims map[string]any) string {
	o.t.Helper()
	o.store.mu.Lock()
	key := o.store.key
	o.store.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", key.id))
	if err != nil {
		o.t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		o.t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		o.t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		o.t.Fatal(err)
	}
	return raw
}

// emailOnlyFromUserinfo makes the ID tokens issued from now on carry no
// email claims, as providers that give them only at userinfo do.
func (o *testOP) emailOnlyFromUserinfo() {
	o.store.mu.Lock()
	o.store.userinfoOnly = true
	o.store.mu.Unlock()
}

// setUserinfoSubject makes the userinfo endpoint answer for this subject,
// whoever's the access token is.
func (o *testOP) setUserinfoSubject(sub string) {
	o.store.mu.Lock()
	o.store.userinfoSubject = sub
	o.store.mu.Unlock()
}

// rotateKeys makes the OP sign with a new key and publish only it.
func (o *testOP) rotateKeys() { o.store.rotate() }

// setIDTokenLifetime sets the lifetime of the ID tokens issued from now on.
func (o *testOP) setIDTokenLifetime(d time.Duration) {
	o.store.mu.Lock()
	o.store.idTokenLifetime = d
	o.store.mu.Unlock()
}

var (
	loginFormID     = regexp.MustCompile(`name="id" value="([^"]+)"`)
	loginFormAction = regexp.MustCompile(`action="([^"]+)"`)
)

// signIn is a browser signing in at the OP: it opens authURL, fills in the
// OP's login form with the user's credentials, follows the OP's redirects
// and stops where the OP sends the browser back to the storefront,
// returning that URL.
func (o *testOP) signIn(authURL string, u opUser) *url.URL {
	o.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		o.t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != o.srv.Listener.Addr().String() {
			return http.ErrUseLastResponse // back at the storefront
		}
		return nil
	}}
	resp, err := browser.Get(authURL)
	if err != nil {
		o.t.Fatal(err)
	}
	page := readAll(o.t, resp)
	id, action := loginFormID.FindStringSubmatch(page), loginFormAction.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || id == nil || action == nil {
		o.t.Fatalf("the OP's login page: status %d: %s", resp.StatusCode, page)
	}
	resp, err = browser.PostForm(o.issuer+action[1], url.Values{"id": {id[1]}, "username": {u.Username}, "password": {opPassword}})
	if err != nil {
		o.t.Fatal(err)
	}
	body := readAll(o.t, resp)
	back, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil {
		o.t.Fatalf("the OP did not send the browser back: status %d: %s", resp.StatusCode, body)
	}
	return back
}

// idToken is what a native app gets from the OP for the user: it runs the
// authorization code flow with PKCE itself, as client clientID.
func (o *testOP) idToken(clientID, secret string, u opUser) string {
	o.t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, o.issuer)
	if err != nil {
		o.t.Fatal(err)
	}
	app := oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: shopCallback,
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
	verifier := oauth2.GenerateVerifier()
	back := o.signIn(app.AuthCodeURL("app-state", oauth2.S256ChallengeOption(verifier), oidc.Nonce("app-nonce")), u)
	tok, err := app.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		o.t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		o.t.Fatal("the OP answered no id_token")
	}
	return raw
}

// opUsers are the OP's people (storage.UserStore).
type opUsers struct {
	mu   sync.Mutex
	byID map[string]*storage.User
}

func (u *opUsers) GetUserByID(id string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byID[id]
}

func (u *opUsers) GetUserByUsername(name string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, user := range u.byID {
		if user.Username == name {
			return user
		}
	}
	return nil
}

func (u *opUsers) ExampleClientID() string { return storage.ServiceUserID }

// opStorage is the example storage with a signing key that rotates and
// clients whose ID tokens carry the email claims (so that a code flow's
// ID token says who the person is, as most providers' do) and last as
// long as the test says.
type opStorage struct {
	*storage.Storage
	mu              sync.Mutex
	key             *opKey
	idTokenLifetime time.Duration
	// extraAudience is added to the audience of the tokens issued.
	extraAudience []string
	// userinfoOnly keeps the email claims out of ID tokens: only the
	// userinfo endpoint gives them.
	userinfoOnly bool
	// userinfoSubject, when set, is the subject userinfo answers for
	// everyone.
	userinfoSubject string
}

// opKey is an RSA signing key (op.SigningKey) and its public half (op.Key).
type opKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *opKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *opKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k *opKey) Key() any                                    { return k.key }
func (k *opKey) ID() string                                  { return k.id }
func (k *opKey) Use() string                                 { return "sig" }

type opPublicKey struct{ *opKey }

func (k opPublicKey) Key() any { return &k.key.PublicKey }

func (s *opStorage) rotate() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	s.key = &opKey{id: uuid.NewString(), key: key}
	s.mu.Unlock()
}

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key, nil
}

func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []op.Key{opPublicKey{s.key}}, nil
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return opClient{Client: c, lifetime: s.idTokenLifetime, emailInIDToken: !s.userinfoOnly}, nil
}

// SetUserinfoFromToken answers the userinfo endpoint, for the subject the
// test set if it did.
func (s *opStorage) SetUserinfoFromToken(ctx context.Context, info *zoidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userinfoSubject != "" {
		info.Subject = s.userinfoSubject
	}
	return nil
}

// AuthRequestByCode is the sign-in a code redeems, with the extra
// audience: the ID token of the code names the request's audience.
func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return opAuthRequest{AuthRequest: r, extra: s.extraAudience}, nil
}

type opAuthRequest struct {
	op.AuthRequest
	extra []string
}

func (r opAuthRequest) GetAudience() []string { return append(r.AuthRequest.GetAudience(), r.extra...) }

type opClient struct {
	op.Client
	lifetime       time.Duration
	emailInIDToken bool
}

func (c opClient) IDTokenLifetime() time.Duration       { return c.lifetime }
func (c opClient) IDTokenUserinfoClaimsAssertion() bool { return c.emailInIDToken }
