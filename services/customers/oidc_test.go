package customers_test

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/schematest"
	"github.com/customerbus/customerbus/services/customers"
)

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// providerJSON is an identity provider as staff read it.
type providerJSON struct {
	ID              string    `json:"id"`
	DisplayName     string    `json:"display_name"`
	IssuerURL       string    `json:"issuer_url"`
	ClientID        string    `json:"client_id"`
	HasClientSecret bool      `json:"has_client_secret"`
	Scopes          []string  `json:"scopes"`
	RedirectURLs    []string  `json:"redirect_urls"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// identityJSON is a linked identity as its customer sees it.
type identityJSON struct {
	ID        string    `json:"id"`
	Provider  string    `json:"provider"`
	Issuer    string    `json:"issuer"`
	Subject   string    `json:"subject"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

// authorizationJSON answers GET …/authorize.
type authorizationJSON struct {
	AuthorizationURL string    `json:"authorization_url"`
	State            string    `json:"state"`
	ExpiresAt        time.Time `json:"expires_at"`
}

// addProvider configures the OP as an identity provider (as client
// "shop") and returns its id.
func (s *system) addProvider(o *testOP) string {
	s.t.Helper()
	id := "op-" + randomSuffix()
	s.as(s.token, http.MethodPost, "/v1/settings/oidc-providers", map[string]any{
		"id": id, "display_name": "Test OP", "issuer_url": o.issuer, "client_id": shopClientID,
		"client_secret": shopClientSecret, "redirect_urls": []string{shopCallback},
	}).expectStatus(s.t, http.StatusCreated)
	return id
}

// newOIDCSystem is a system with the test OP as provider and a person at
// the OP whose verified email starts with emailPrefix.
func newOIDCSystem(t *testing.T, emailPrefix string) (*system, *testOP, string, opUser) {
	t.Helper()
	s := newSystem(t)
	o := newTestOP(t)
	return s, o, s.addProvider(o), o.addUser(emailPrefix+"-"+randomSuffix()+"@example.com", true)
}

// authorize begins a sign-in at the provider, as a storefront's script.
func (s *system) authorize(provider string) authorizationJSON {
	s.t.Helper()
	var a authorizationJSON
	r := s.public(http.MethodGet, "/v1/store/oidc/"+provider+"/authorize?redirect_url="+url.QueryEscape(shopCallback), nil)
	r.expectStatus(s.t, http.StatusOK)
	r.decode(s.t, &a)
	return a
}

// oidcSignIn is the whole redirect flow: authorize, the user signs in at
// the OP in a browser, and the storefront posts what came back.
func (s *system) oidcSignIn(o *testOP, provider string, u opUser) reply {
	s.t.Helper()
	a := s.authorize(provider)
	back := o.signIn(a.AuthorizationURL, u)
	if back.Query().Get("state") != a.State {
		s.t.Fatalf("the OP sent back state %q, want %q", back.Query().Get("state"), a.State)
	}
	return s.public(http.MethodPost, "/v1/store/oidc/"+provider+"/callback",
		map[string]any{"code": back.Query().Get("code"), "state": back.Query().Get("state")})
}

// exchange posts an ID token to the token exchange.
func (s *system) exchange(provider, idToken string) reply {
	s.t.Helper()
	return s.public(http.MethodPost, "/v1/store/oidc/"+provider+"/token-exchange", map[string]any{"id_token": idToken})
}

func (s *system) identities(token string) []identityJSON {
	s.t.Helper()
	var out struct{ Identities []identityJSON }
	r := s.as(token, http.MethodGet, "/v1/store/me/identities", nil)
	r.expectStatus(s.t, http.StatusOK)
	r.decode(s.t, &out)
	return out.Identities
}

func (s *system) customerVersion(id string) int64 {
	s.t.Helper()
	var c customerJSON
	request(s.t, s, http.MethodGet, "/v1/customers/"+id, nil, nil).decode(s.t, &c)
	return c.Version
}

// eventsAbout reads the events stream until it holds want events whose
// subject is the resource's id, and returns them in stream order; it
// fails if more than want are there after a grace period.
func (s *system) eventsAbout(subject string, want int) []cloudevents.Event {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	read := func() []cloudevents.Event {
		stream, err := s.js.Stream(ctx, events.EventsStream)
		if err != nil {
			return nil
		}
		info, err := stream.Info(ctx)
		if err != nil || info.State.Msgs == 0 {
			return nil
		}
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			s.t.Fatal(err)
		}
		var out []cloudevents.Event
		for n := uint64(0); n < info.State.Msgs; {
			batch, err := cons.Fetch(int(info.State.Msgs-n), jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				s.t.Fatal(err)
			}
			for m := range batch.Messages() {
				n++
				e, err := events.FromMsg(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
				if err != nil {
					s.t.Fatalf("message on %s is not a CloudEvent: %v", m.Subject(), err)
				}
				schematest.Validate(s.t, e)
				if e.Subject() == subject {
					out = append(out, e)
				}
			}
		}
		return out
	}
	for {
		if got := read(); len(got) >= want {
			time.Sleep(300 * time.Millisecond)
			if got = read(); len(got) != want {
				s.t.Fatalf("%d events about %s, want exactly %d", len(got), subject, want)
			}
			return got
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("fewer than %d events about %s on the stream", want, subject)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// A first sign-in through the whole redirect flow, with a new email,
// creates a registered, verified customer (customer.created and
// customer.verified, read from the stream), signs it in with our own
// tokens, links its identity (private: in no event) and the order linker
// attaches the guest order with its email. A second sign-in finds the
// same customer and changes nothing.
func TestOIDCRedirectFlowCreatesAVerifiedCustomerAndLinksGuestOrders(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runLinker()
	o := newTestOP(t)
	provider := s.addProvider(o)
	email := "oidc-new-" + randomSuffix() + "@example.com"
	guest := orderBody(nil, time.Now())
	guest["email"] = email
	order := s.recordOrder(guest)
	u := o.addUser(strings.ToUpper(email), true)

	// The storefront lists the provider to offer it.
	var choices struct {
		Providers []struct{ ID, DisplayName string } `json:"providers"`
	}
	s.public(http.MethodGet, "/v1/store/oidc/providers", nil).decode(t, &choices)
	if len(choices.Providers) != 1 || choices.Providers[0].ID != provider {
		t.Errorf("storefront providers %+v", choices.Providers)
	}

	// authorize: the URL asks the OP for a code with PKCE (S256), a
	// state and a nonce; only the state's hash is stored.
	a := s.authorize(provider)
	q := mustParse(t, a.AuthorizationURL).Query()
	if !strings.HasPrefix(a.AuthorizationURL, o.issuer+"/") || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("nonce") == "" || q.Get("state") != a.State || q.Get("client_id") != shopClientID || q.Get("redirect_uri") != shopCallback ||
		q.Get("response_type") != "code" || !strings.Contains(q.Get("scope"), "openid") {
		t.Errorf("authorization URL %s", a.AuthorizationURL)
	}
	stateHash := sha256.Sum256([]byte(a.State))
	if n := s.count(`SELECT count(*) FROM oidc_auth_requests WHERE state_hash = $1 AND code_verifier <> $2`, stateHash[:], a.State); n != 1 {
		t.Errorf("%d stored sign-ins have the state's hash, want 1", n)
	}
	// A browser following a plain link is redirected at once.
	link, err := http.NewRequest(http.MethodGet, s.api.URL+"/v1/store/oidc/"+provider+"/authorize?redirect_url="+url.QueryEscape(shopCallback), nil)
	if err != nil {
		t.Fatal(err)
	}
	link.Header.Set("Accept", "text/html,application/xhtml+xml")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(link)
	if err != nil {
		t.Fatal(err)
	}
	s.checkOpenAPI(link, resp, []byte(readAll(t, resp)))
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, o.issuer+"/") || !strings.Contains(loc, "code_challenge=") {
		t.Errorf("authorize for a browser: status %d, Location %q", resp.StatusCode, loc)
	}

	back := o.signIn(a.AuthorizationURL, u)
	var sess sessionJSON
	cb := s.public(http.MethodPost, "/v1/store/oidc/"+provider+"/callback", map[string]any{"code": back.Query().Get("code"), "state": back.Query().Get("state")})
	cb.expectStatus(t, http.StatusOK)
	cb.decode(t, &sess)
	if sess.TokenType != "Bearer" || !strings.HasPrefix(sess.AccessToken, "cbc_") || sess.RefreshToken == "" || sess.Customer.Email != email {
		t.Fatalf("callback answered %s", cb.body)
	}
	if n := s.count(`SELECT count(*) FROM oidc_auth_requests WHERE state_hash = $1`, stateHash[:]); n != 0 {
		t.Errorf("the sign-in's state is still stored after its callback")
	}

	// Read back: staff's GET, the customer's own token, the stream.
	var c customerJSON
	request(t, s, http.MethodGet, "/v1/customers/"+sess.Customer.ID, nil, nil).decode(t, &c)
	if c.Email != email || !c.HasAccount || !c.IsVerified || !c.IsActive || c.Version != 2 || c.FirstName != "Olli" || c.LastName != "Provider" || c.LanguageCode != "de" {
		t.Errorf("the new customer %+v", c)
	}
	var me storeCustomerJSON
	s.as(sess.AccessToken, http.MethodGet, "/v1/store/me", nil).decode(t, &me)
	if me.ID != c.ID {
		t.Errorf("the access token is %s's, want %s's", me.ID, c.ID)
	}
	evs := s.eventsAbout(c.ID, 2)
	if evs[0].Type() != events.CustomerCreated || ext(evs[0], "sequence") != "1" || evs[1].Type() != events.CustomerVerified || ext(evs[1], "sequence") != "2" {
		t.Errorf("events %s (%s), %s (%s), want customer.created 1 and customer.verified 2",
			evs[0].Type(), ext(evs[0], "sequence"), evs[1].Type(), ext(evs[1], "sequence"))
	}
	for _, e := range evs {
		if strings.Contains(string(e.Data()), u.ID) || strings.Contains(string(e.Data()), o.issuer) {
			t.Errorf("%s carries the identity: %s", e.Type(), e.Data())
		}
	}
	if n := s.count(`SELECT count(*) FROM outbox WHERE convert_from(event, 'UTF8') LIKE '%' || $1 || '%'`, u.ID); n != 0 {
		t.Errorf("%d outbox events carry the provider's subject", n)
	}

	// The order linker attaches the guest order on customer.verified.
	if got := s.waitOrders(sess.AccessToken, 1); got[0].ID != order.ID {
		t.Errorf("linked orders %+v, want %s", got, order.ID)
	}

	// The identity, as the customer and as staff (data export) see it.
	ids := s.identities(sess.AccessToken)
	if len(ids) != 1 || ids[0].Provider != provider || ids[0].Subject != u.ID || ids[0].Issuer != o.issuer || ids[0].Email != email {
		t.Errorf("identities %+v", ids)
	}
	for _, path := range []string{"/v1/customers/" + c.ID + "/data-export"} {
		var export struct{ Identities []identityJSON }
		request(t, s, http.MethodGet, path, nil, nil).decode(t, &export)
		if len(export.Identities) != 1 || export.Identities[0].ID != ids[0].ID {
			t.Errorf("%s: identities %+v", path, export.Identities)
		}
	}
	var own struct{ Identities []identityJSON }
	s.as(sess.AccessToken, http.MethodGet, "/v1/store/me/data-export", nil).decode(t, &own)
	if len(own.Identities) != 1 || own.Identities[0].Subject != u.ID {
		t.Errorf("own data export: identities %+v", own.Identities)
	}

	// Signing in again: the same customer, found by the subject; no change.
	var again sessionJSON
	s.oidcSignIn(o, provider, u).decode(t, &again)
	if again.Customer.ID != c.ID || again.AccessToken == sess.AccessToken {
		t.Errorf("second sign-in: %+v", again.Customer)
	}
	if v := s.customerVersion(c.ID); v != 2 {
		t.Errorf("version %d after a second sign-in, want 2", v)
	}
	if n := s.count(`SELECT count(*) FROM customer_identities WHERE customer_id = $1`, c.ID); n != 1 {
		t.Errorf("%d identities after two sign-ins, want 1", n)
	}

	// A deactivated customer signs in no more.
	request(t, s, http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"is_active": false}, nil).expectStatus(t, http.StatusOK)
	s.oidcSignIn(o, provider, u).expectProblem(t, http.StatusForbidden, "", "inactive")
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A callback is refused for an unknown state, a state used already, a
// state of another provider or expired, a code redeemed already, and an
// ID token whose nonce is not its sign-in's; authorize only to the
// provider's redirect URLs. Nothing signs in and no customer is made.
func TestOIDCCallbackRefusesBadStateReplayedCodeAndForeignNonce(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	o := newTestOP(t)
	provider, other := s.addProvider(o), s.addProvider(o)
	u := o.addUser("oidc-callback-"+randomSuffix()+"@example.com", true)
	callback := func(provider, code, state string) reply {
		return s.public(http.MethodPost, "/v1/store/oidc/"+provider+"/callback", map[string]any{"code": code, "state": state})
	}

	s.public(http.MethodGet, "/v1/store/oidc/"+provider+"/authorize?redirect_url="+url.QueryEscape("https://evil.example.com/cb"), nil).
		expectProblem(t, http.StatusBadRequest, "redirect_url", "redirect_not_allowed")
	s.public(http.MethodGet, "/v1/store/oidc/"+provider+"/authorize", nil).expectProblem(t, http.StatusBadRequest, "redirect_url", "required")
	s.public(http.MethodGet, "/v1/store/oidc/nobody/authorize?redirect_url="+url.QueryEscape(shopCallback), nil).
		expectProblem(t, http.StatusNotFound, "provider", "not_found")
	callback(provider, "", "").expectProblem(t, http.StatusBadRequest, "code", "required")

	a := s.authorize(provider)
	back := o.signIn(a.AuthorizationURL, u)
	code := back.Query().Get("code")
	// A wrong state, and the right one at another provider.
	callback(provider, code, "not-the-state").expectProblem(t, http.StatusBadRequest, "state", "invalid")
	callback(other, code, a.State).expectProblem(t, http.StatusBadRequest, "state", "invalid")
	callback(provider, code, a.State).expectStatus(t, http.StatusOK)
	// The state again (replayed): gone.
	callback(provider, code, a.State).expectProblem(t, http.StatusBadRequest, "state", "invalid")
	// The code again, with a fresh state: the OP refuses it.
	fresh := s.authorize(provider)
	callback(provider, code, fresh.State).expectProblem(t, http.StatusBadRequest, "code", "code_rejected")

	// An expired state.
	late := s.authorize(provider)
	lateBack := o.signIn(late.AuthorizationURL, u)
	if _, err := s.pool.Exec(context.Background(), `UPDATE oidc_auth_requests SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	callback(provider, lateBack.Query().Get("code"), late.State).expectProblem(t, http.StatusBadRequest, "state", "invalid")

	// An ID token of another sign-in (its nonce) under this one's state:
	// the stored nonce is swapped for another sign-in's, as when an
	// attacker injects a code and token it got elsewhere.
	mine, theirs := s.authorize(provider), s.authorize(provider)
	mineBack := o.signIn(mine.AuthorizationURL, u)
	mineHash, theirsHash := sha256.Sum256([]byte(mine.State)), sha256.Sum256([]byte(theirs.State))
	if _, err := s.pool.Exec(context.Background(),
		`UPDATE oidc_auth_requests SET nonce_hash = (SELECT nonce_hash FROM oidc_auth_requests WHERE state_hash = $2) WHERE state_hash = $1`,
		mineHash[:], theirsHash[:]); err != nil {
		t.Fatal(err)
	}
	callback(provider, mineBack.Query().Get("code"), mine.State).expectProblem(t, http.StatusUnauthorized, "id_token", "nonce")

	// Only the one good callback signed in: one customer, one session.
	if n := s.count(`SELECT count(*) FROM customers`); n != 1 {
		t.Errorf("%d customers, want the one of the good callback", n)
	}
	if n := s.count(`SELECT count(*) FROM customer_sessions`); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
}

// The token exchange takes an ID token a native app got from the OP
// itself, and answers our tokens; it refuses an expired token, one issued
// to another client (audience), and anything not signed by the OP. A
// rotation of the OP's signing key is picked up: a token of the new key
// verifies, one of the retired key no longer does.
func TestOIDCTokenExchangeVerifiesAudienceExpiryAndRotatedKeys(t *testing.T) {
	t.Parallel()
	s, o, provider, u := newOIDCSystem(t, "oidc-native")

	var sess sessionJSON
	r := s.exchange(provider, o.idToken(shopClientID, shopClientSecret, u))
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &sess)
	var me storeCustomerJSON
	s.as(sess.AccessToken, http.MethodGet, "/v1/store/me", nil).decode(t, &me)
	if me.Email != u.Email || !me.IsVerified {
		t.Errorf("signed in as %+v", me)
	}

	// Issued to another client of the OP: not for us.
	s.exchange(provider, o.idToken(otherClientID, otherClientSecret, u)).expectProblem(t, http.StatusUnauthorized, "id_token", "invalid")
	s.exchange(provider, "not.a.jwt").expectProblem(t, http.StatusUnauthorized, "id_token", "invalid")
	s.exchange(provider, "").expectProblem(t, http.StatusBadRequest, "id_token", "required")
	// Signed by another OP with the same claims' shape.
	stranger := newTestOP(t)
	su := stranger.addUser(u.Email, true)
	s.exchange(provider, stranger.idToken(shopClientID, shopClientSecret, su)).expectProblem(t, http.StatusUnauthorized, "id_token", "invalid")

	// Expired.
	o.setIDTokenLifetime(time.Second)
	short := o.idToken(shopClientID, shopClientSecret, u)
	o.setIDTokenLifetime(time.Hour)
	time.Sleep(2100 * time.Millisecond)
	s.exchange(provider, short).expectProblem(t, http.StatusUnauthorized, "id_token", "expired")

	// Key rotation: the old key's token was good; after the rotation a new
	// key's token verifies (the keys are fetched again), and the retired
	// key's no longer does.
	old := o.idToken(shopClientID, shopClientSecret, u)
	s.exchange(provider, old).expectStatus(t, http.StatusOK)
	o.rotateKeys()
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, u)).expectStatus(t, http.StatusOK)
	s.exchange(provider, old).expectProblem(t, http.StatusUnauthorized, "id_token", "invalid")

	if n := s.count(`SELECT count(*) FROM customers`); n != 1 {
		t.Errorf("%d customers, want 1", n)
	}
}

// A first sign-in with the email of an existing customer links to it only
// when the provider says the email is verified; else it is refused and
// nothing changes. Linking to a verified account changes no version; to an
// unverified one it verifies it (customer.verified) and drops the password
// nobody had proven to be the email's owner's.
func TestOIDCFirstSignInLinksAnExistingCustomerOnlyByAVerifiedEmail(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	o := newTestOP(t)
	provider := s.addProvider(o)
	sh := s.newShopper()
	version := s.customerVersion(sh.ID)

	unverified := o.addUser(sh.Email, false)
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, unverified)).
		expectProblem(t, http.StatusForbidden, "email_verified", "email_not_verified")
	s.oidcSignIn(o, provider, unverified).expectProblem(t, http.StatusForbidden, "email_verified", "email_not_verified")
	if n := s.count(`SELECT count(*) FROM customer_identities`); n != 0 {
		t.Errorf("an unverified email linked %d identities", n)
	}
	if v := s.customerVersion(sh.ID); v != version {
		t.Errorf("the refused sign-in changed the customer: version %d, want %d", v, version)
	}
	if n := s.count(`SELECT count(*) FROM customers`); n != 1 {
		t.Errorf("the refused sign-in created a customer")
	}

	verified := o.addUser(sh.Email, true)
	var sess sessionJSON
	s.oidcSignIn(o, provider, verified).decode(t, &sess)
	if sess.Customer.ID != sh.ID {
		t.Fatalf("linked to %s, want the existing %s", sess.Customer.ID, sh.ID)
	}
	if ids := s.identities(sh.AccessToken); len(ids) != 1 || ids[0].Subject != verified.ID {
		t.Errorf("identities %+v", ids)
	}
	if v := s.customerVersion(sh.ID); v != version {
		t.Errorf("linking a verified account moved its version to %d, want %d", v, version)
	}
	s.login(sh.Email, sh.Password) // the password still works

	// A registration nobody confirmed: the provider's verified email
	// verifies it, and the unproven password goes.
	email := "oidc-unconfirmed-" + randomSuffix() + "@example.com"
	var reg storeCustomerJSON
	s.public(http.MethodPost, "/v1/store/register", map[string]any{
		"email": email, "password": "set by someone", "redirect_url": shopURL, "channel": "web",
	}).decode(t, &reg)
	owner := o.addUser(email, true)
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, owner)).expectStatus(t, http.StatusOK)
	evs := s.eventsAbout(reg.ID, 2)
	if evs[1].Type() != events.CustomerVerified || ext(evs[1], "sequence") != "2" {
		t.Errorf("linking an unverified account: %s (%s), want customer.verified 2", evs[1].Type(), ext(evs[1], "sequence"))
	}
	s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": email, "password": "set by someone"}).
		expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")

	// A deactivated customer is neither linked nor signed in.
	off := s.createCustomer(map[string]any{"email": "oidc-off-" + randomSuffix() + "@example.com", "is_active": false})
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, o.addUser(off.Email, true))).expectProblem(t, http.StatusForbidden, "", "inactive")
	if n := s.count(`SELECT count(*) FROM customer_identities WHERE customer_id = $1`, off.ID); n != 0 || s.customerVersion(off.ID) != off.Version {
		t.Errorf("the deactivated customer was linked (%d identities) or changed", n)
	}
}

// A customer lists its identities and removes them, but not the last one
// while it has no password: it could not sign in again. Another
// customer's identity is not found. A removed identity links again only
// by a verified email.
func TestOIDCIdentitiesAreListedAndRemovedButNotTheLastWayIn(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	o := newTestOP(t)
	provider := s.addProvider(o)
	email := "oidc-ids-" + randomSuffix() + "@example.com"
	first, second := o.addUser(email, true), o.addUser(email, true)
	var sess sessionJSON
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, first)).decode(t, &sess)
	ids := s.identities(sess.AccessToken)
	if len(ids) != 1 {
		t.Fatalf("identities %+v", ids)
	}
	s.as(sess.AccessToken, http.MethodDelete, "/v1/store/me/identities/"+ids[0].ID, nil).
		expectProblem(t, http.StatusConflict, "id", "last_sign_in_method")
	if got := s.identities(sess.AccessToken); len(got) != 1 {
		t.Errorf("the refused removal removed it: %+v", got)
	}

	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, second)).expectStatus(t, http.StatusOK)
	ids = s.identities(sess.AccessToken)
	if len(ids) != 2 {
		t.Fatalf("identities after a second account's sign-in: %+v", ids)
	}
	other := s.newShopper()
	s.as(other.AccessToken, http.MethodDelete, "/v1/store/me/identities/"+ids[0].ID, nil).expectProblem(t, http.StatusNotFound, "id", "not_found")
	s.as(sess.AccessToken, http.MethodDelete, "/v1/store/me/identities/"+ids[0].ID, nil).expectStatus(t, http.StatusNoContent)
	if got := s.identities(sess.AccessToken); len(got) != 1 || got[0].ID != ids[1].ID {
		t.Errorf("identities after the removal: %+v", got)
	}
	if n := s.count(`SELECT count(*) FROM customer_identities WHERE id = $1`, ids[0].ID); n != 0 {
		t.Errorf("the removed identity is still stored")
	}
	// The removed account signs in again by its verified email: linked anew.
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, first)).expectStatus(t, http.StatusOK)
	if got := s.identities(sess.AccessToken); len(got) != 2 {
		t.Errorf("identities after signing in again: %+v", got)
	}
}

// Staff configure providers under MANAGE_SETTINGS; the client secret is
// written, never read back; bad settings are refused field by field.
func TestOIDCProvidersAreConfiguredWithAWriteOnlySecret(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	body := func(id string) map[string]any {
		return map[string]any{
			"id": id, "display_name": "Example ID", "issuer_url": "https://id.example.com/", "client_id": "shop",
			"client_secret": "s3cret-value", "redirect_urls": []string{shopCallback},
		}
	}
	id := "example-" + randomSuffix()
	r := s.as(s.token, http.MethodPost, "/v1/settings/oidc-providers", body(id))
	r.expectStatus(t, http.StatusCreated)
	if strings.Contains(string(r.body), "s3cret-value") || r.header.Get("Location") != "/v1/settings/oidc-providers/"+id {
		t.Errorf("create answered %s, Location %q", r.body, r.header.Get("Location"))
	}
	var p providerJSON
	request(t, s, http.MethodGet, "/v1/settings/oidc-providers/"+id, nil, nil).decode(t, &p)
	if p.IssuerURL != "https://id.example.com" || !p.HasClientSecret || strings.Join(p.Scopes, " ") != "openid email profile" || len(p.RedirectURLs) != 1 {
		t.Errorf("read back %+v", p)
	}
	if n := s.count(`SELECT count(*) FROM oidc_providers WHERE id = $1 AND client_secret = 's3cret-value'`, id); n != 1 {
		t.Errorf("the secret is not stored")
	}
	s.as(s.token, http.MethodPost, "/v1/settings/oidc-providers", body(id)).expectProblem(t, http.StatusConflict, "id", "unique")

	r = request(t, s, http.MethodPatch, "/v1/settings/oidc-providers/"+id, map[string]any{"display_name": "Renamed", "client_secret": "", "scopes": []string{"email"}}, nil)
	r.expectStatus(t, http.StatusOK)
	var list struct {
		OIDCProviders []providerJSON `json:"oidc_providers"`
	}
	r = request(t, s, http.MethodGet, "/v1/settings/oidc-providers", nil, nil)
	r.decode(t, &list)
	if len(list.OIDCProviders) != 1 || list.OIDCProviders[0].DisplayName != "Renamed" || list.OIDCProviders[0].HasClientSecret ||
		strings.Join(list.OIDCProviders[0].Scopes, " ") != "openid email" || strings.Contains(string(r.body), `"client_secret"`) {
		t.Errorf("list after the change: %s", r.body)
	}
	request(t, s, http.MethodPatch, "/v1/settings/oidc-providers/"+id, map[string]any{"id": "other"}, nil).expectProblem(t, http.StatusBadRequest, "id", "invalid")

	bad := func(change map[string]any) map[string]any {
		b := body("bad-" + randomSuffix())
		for k, v := range change {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	for _, tc := range []struct {
		name        string
		body        map[string]any
		field, code string
	}{
		{"id with capitals", bad(map[string]any{"id": "Not-OK"}), "id", "invalid"},
		{"no id", bad(map[string]any{"id": nil}), "id", "required"},
		{"plain http issuer", bad(map[string]any{"issuer_url": "http://id.example.com"}), "issuer_url", "invalid"},
		{"no redirect urls", bad(map[string]any{"redirect_urls": []string{}}), "redirect_urls", "required"},
		{"redirect with a fragment", bad(map[string]any{"redirect_urls": []string{"https://shop.example.com/cb#x"}}), "redirect_urls[0]", "invalid"},
		{"bad scope", bad(map[string]any{"scopes": []string{"has space"}}), "scopes", "invalid"},
		{"no client id", bad(map[string]any{"client_id": nil}), "client_id", "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.forTest(t).as(s.token, http.MethodPost, "/v1/settings/oidc-providers", tc.body).expectProblem(t, http.StatusBadRequest, tc.field, tc.code)
		})
	}
	if n := s.count(`SELECT count(*) FROM oidc_providers`); n != 1 {
		t.Errorf("%d providers stored, want the one good one", n)
	}
	request(t, s, http.MethodDelete, "/v1/settings/oidc-providers/"+id, nil, nil).expectStatus(t, http.StatusNoContent)
	request(t, s, http.MethodGet, "/v1/settings/oidc-providers/"+id, nil, nil).expectProblem(t, http.StatusNotFound, "provider", "not_found")
	if n := s.count(`SELECT count(*) FROM outbox WHERE convert_from(event, 'UTF8') LIKE '%s3cret%'`); n != 0 {
		t.Errorf("the secret is in %d events", n)
	}
}

// oidcRouteCall is a successful call of a storefront OIDC route, for the
// route table: a provider on an OP of the call's own, a shopper linked to
// it (whose token the customer routes take).
func oidcRouteCall(s *system, method, pattern string) (path string, body any, token string) {
	s.t.Helper()
	o := newTestOP(s.t)
	provider := s.addProvider(o)
	sh := s.newShopper()
	linked := o.addUser(sh.Email, true)
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, linked)).expectStatus(s.t, http.StatusOK)
	path = strings.ReplaceAll(pattern, "{provider}", provider)
	switch method + " " + pattern {
	case "GET /v1/store/oidc/providers":
		return path, nil, ""
	case "GET /v1/store/oidc/{provider}/authorize":
		return path + "?redirect_url=" + url.QueryEscape(shopCallback), nil, ""
	case "POST /v1/store/oidc/{provider}/callback":
		a := s.authorize(provider)
		back := o.signIn(a.AuthorizationURL, o.addUser("table-"+randomSuffix()+"@example.com", true))
		return path, map[string]any{"code": back.Query().Get("code"), "state": back.Query().Get("state")}, ""
	case "POST /v1/store/oidc/{provider}/token-exchange":
		return path, map[string]any{"id_token": o.idToken(shopClientID, shopClientSecret, linked)}, ""
	case "GET /v1/store/me/identities":
		return path, nil, sh.AccessToken
	case "DELETE /v1/store/me/identities/{id}":
		return strings.ReplaceAll(pattern, "{id}", s.identities(sh.AccessToken)[0].ID), nil, sh.AccessToken
	}
	s.t.Fatalf("no request for route %s %s in oidcRouteCall: add one", method, pattern)
	return "", nil, ""
}

// oidcSettingsRouteCall is a successful call of a provider settings route.
func oidcSettingsRouteCall(s *system, method, pattern string) (path string, body any) {
	s.t.Helper()
	id := "table-" + randomSuffix()
	create := map[string]any{
		"id": id, "display_name": "Table", "issuer_url": "https://id.example.com", "client_id": "shop", "redirect_urls": []string{shopCallback},
	}
	if method == http.MethodPost {
		return pattern, create
	}
	s.do(http.MethodPost, "/v1/settings/oidc-providers", create, nil)
	path = strings.ReplaceAll(pattern, "{provider}", id)
	if method == http.MethodPatch {
		return path, map[string]any{"display_name": "Renamed"}
	}
	return path, nil
}

// A guest customer staff created (no account, not verified) signing in
// with its verified email gets an account and is verified
// (customer.verified); a merge moves the source's identity to the
// (verified) target, which it then signs in to; an erasure deletes the
// identities.
func TestOIDCIdentitiesOfGuestsFollowMergesAndGoWithErasure(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	o := newTestOP(t)
	provider := s.addProvider(o)
	guest := s.createCustomer(map[string]any{"email": "oidc-guest-" + randomSuffix() + "@example.com"})
	u := o.addUser(guest.Email, true)
	var sess sessionJSON
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, u)).decode(t, &sess)
	var c customerJSON
	request(t, s, http.MethodGet, "/v1/customers/"+guest.ID, nil, nil).decode(t, &c)
	if sess.Customer.ID != guest.ID || !c.HasAccount || !c.IsVerified || c.Version != guest.Version+1 {
		t.Errorf("the guest after its sign-in: %+v", c)
	}
	if evs := s.eventsAbout(guest.ID, 2); evs[1].Type() != events.CustomerVerified {
		t.Errorf("the guest's sign-in emitted %s, want customer.verified", evs[1].Type())
	}

	target := s.newShopper() // verified: it can sign in
	request(t, s, http.MethodPost, "/v1/customers/"+target.ID+"/merge", map[string]any{"source_id": guest.ID}, nil).expectStatus(t, http.StatusOK)
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, u)).decode(t, &sess)
	if sess.Customer.ID != target.ID {
		t.Errorf("after the merge the identity signs in to %s, want the target %s", sess.Customer.ID, target.ID)
	}

	request(t, s, http.MethodPost, "/v1/customers/"+target.ID+"/anonymize", nil, nil).expectStatus(t, http.StatusOK)
	if n := s.count(`SELECT count(*) FROM customer_identities WHERE customer_id = $1`, target.ID); n != 0 {
		t.Errorf("the erased customer keeps %d identities", n)
	}
}

// A token naming several audiences signs in only when its azp is our
// client id (OIDC Core 3.1.3.7): through the redirect flow and the token
// exchange alike. A token the other client obtained, which names us among
// its audiences, is refused, and so is one with several audiences and no
// azp; a single-audience token without azp is ours.
func TestOIDCMultiAudienceTokensNeedOurClientAsAuthorizedParty(t *testing.T) {
	t.Parallel()
	s, o, provider, u := newOIDCSystem(t, "oidc-azp")

	// Issued to us, for another audience too: azp is ours.
	o.addAudience(otherClientID)
	var sess sessionJSON
	s.oidcSignIn(o, provider, u).decode(t, &sess)
	if sess.Customer.Email != u.Email {
		t.Fatalf("redirect flow with two audiences signed in as %+v", sess.Customer)
	}
	s.exchange(provider, o.idToken(shopClientID, shopClientSecret, u)).expectStatus(t, http.StatusOK)

	// Issued to the other client, naming us as a second audience: go-oidc
	// finds our client id in aud; azp says it is not ours.
	o.addAudience(shopClientID)
	foreign := o.idToken(otherClientID, otherClientSecret, u)
	s.exchange(provider, foreign).expectProblem(t, http.StatusUnauthorized, "id_token", "authorized_party")

	// Signed by the OP, two audiences, no azp: refused; one audience, no
	// azp: accepted.
	claims := func(aud any) map[string]any {
		now := time.Now()
		return map[string]any{"iss": o.issuer, "sub": u.ID, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"email": u.Email, "email_verified": true}
	}
	s.exchange(provider, o.signToken(claims([]string{shopClientID, otherClientID}))).
		expectProblem(t, http.StatusUnauthorized, "id_token", "authorized_party")
	s.exchange(provider, o.signToken(claims(shopClientID))).expectStatus(t, http.StatusOK)

	// Only the good sign-ins opened sessions, all of the one customer.
	if n := s.count(`SELECT count(*) FROM customer_sessions WHERE customer_id = $1`, sess.Customer.ID); n != 3 {
		t.Errorf("%d sessions, want the 3 of the good sign-ins", n)
	}
	if n := s.count(`SELECT count(*) FROM customers`); n != 1 {
		t.Errorf("%d customers, want 1", n)
	}
}

// A provider whose ID tokens lack the email claims: the redirect flow
// reads email and email_verified from its userinfo endpoint with the
// sign-in's access token, and a first sign-in creates the verified
// customer; a userinfo answer about another subject is refused and
// nothing is made. The token exchange has no access token: such a token
// is refused, naming the missing claims.
func TestOIDCEmailClaimsComeFromUserinfoWhenTheIDTokenLacksThem(t *testing.T) {
	t.Parallel()
	s, o, provider, u := newOIDCSystem(t, "oidc-userinfo")
	o.emailOnlyFromUserinfo()

	r := s.exchange(provider, o.idToken(shopClientID, shopClientSecret, u))
	r.expectProblem(t, http.StatusUnauthorized, "id_token", "claims_missing")
	if body := string(r.body); !strings.Contains(body, "no email claim") || !strings.Contains(body, "access token") {
		t.Errorf("the refusal does not name what is missing: %s", body)
	}

	// userinfo about someone else: not used.
	o.setUserinfoSubject("sub-someone-else")
	s.oidcSignIn(o, provider, u).expectProblem(t, http.StatusBadGateway, "provider", "userinfo_subject_mismatch")
	if n := s.count(`SELECT count(*) FROM customers`); n != 0 {
		t.Errorf("refused sign-ins made %d customers", n)
	}

	o.setUserinfoSubject("")
	var sess sessionJSON
	s.oidcSignIn(o, provider, u).decode(t, &sess)
	var c customerJSON
	request(t, s, http.MethodGet, "/v1/customers/"+sess.Customer.ID, nil, nil).decode(t, &c)
	if c.Email != u.Email || !c.IsVerified || !c.HasAccount || c.FirstName != "Olli" || c.LastName != "Provider" || c.LanguageCode != "de" {
		t.Errorf("the customer of the userinfo's email and profile: %+v", c)
	}
	if ids := s.identities(sess.AccessToken); len(ids) != 1 || ids[0].Subject != u.ID || ids[0].Email != u.Email {
		t.Errorf("identities %+v", ids)
	}

	// userinfo's email_verified counts as the token's would: an
	// unverified email links no existing account.
	sh := s.newShopper()
	s.oidcSignIn(o, provider, o.addUser(sh.Email, false)).expectProblem(t, http.StatusForbidden, "email_verified", "email_not_verified")
	if n := s.count(`SELECT count(*) FROM customer_identities WHERE customer_id = $1`, sh.ID); n != 0 {
		t.Errorf("an unverified userinfo email linked %d identities", n)
	}
}

// The public OIDC routes are rate-limited per client address (behind a
// trusted proxy: the X-Forwarded-For client): sign-ins begun (each stores
// a row) per address and in all, and failed callbacks and token exchanges
// with the address's failed logins, under LOGIN_FAILURES_PER_ADDRESS; each
// refusal a clear 429. The refusals are counted in
// customerbus_login_failures_total under method="oidc", the password
// logins' series apart.
func TestOIDCSignInsAreRateLimitedPerAddressAndCounted(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, func(c *customers.Config) {
		c.Accounts.LoginFailuresPerAddress = 3
		c.OIDC.AuthorizePerAddress, c.OIDC.AuthorizeTotal = 3, 5
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	o := newTestOP(t)
	provider := s.addProvider(o)
	u := o.addUser("oidc-limits-"+randomSuffix()+"@example.com", true)
	from := func(client, method, path string, body any) reply {
		return request(s.t, s, method, path, body, map[string]string{"Authorization": "", "X-Forwarded-For": client})
	}
	authorize := func(client string) reply {
		return from(client, http.MethodGet, "/v1/store/oidc/"+provider+"/authorize?redirect_url="+url.QueryEscape(shopCallback), nil)
	}
	m := s.scrape()
	expectMetric(t, m, 0, "customerbus_login_failures_total", "method", "oidc", "reason", "rate_limited")
	expectMetric(t, m, 0, "customerbus_login_failures_total", "method", "oidc", "reason", "invalid_token")

	// Sign-ins begun: 3 per address, 5 in all.
	for range 3 {
		authorize("203.0.113.1").expectStatus(t, http.StatusOK)
	}
	limited := authorize("203.0.113.1")
	limited.expectProblem(t, http.StatusTooManyRequests, "", "rate_limited")
	if sec, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || sec < 1 || !strings.Contains(string(limited.body), "sign-ins begun from this address") {
		t.Errorf("the per-address refusal: Retry-After %q, %s", limited.header.Get("Retry-After"), limited.body)
	}
	authorize("203.0.113.2").expectStatus(t, http.StatusOK)
	authorize("203.0.113.2").expectStatus(t, http.StatusOK)
	authorize("203.0.113.3").expectProblem(t, http.StatusTooManyRequests, "", "rate_limited")
	if n := s.count(`SELECT count(*) FROM oidc_auth_requests`); n != 5 {
		t.Errorf("%d sign-ins stored, want the 5 allowed", n)
	}

	// Failed token exchanges count against the address, with its
	// failed logins: past 3 it signs in no more, by any method.
	exchange := func(client, idToken string) reply {
		return from(client, http.MethodPost, "/v1/store/oidc/"+provider+"/token-exchange", map[string]any{"id_token": idToken})
	}
	for range 3 {
		exchange("198.51.100.9", "not.a.jwt").expectProblem(t, http.StatusUnauthorized, "id_token", "invalid")
	}
	good := o.idToken(shopClientID, shopClientSecret, u)
	exchange("198.51.100.9", good).expectProblem(t, http.StatusTooManyRequests, "", "rate_limited")
	from("198.51.100.9", http.MethodPost, "/v1/store/oidc/"+provider+"/callback", map[string]any{"code": "c", "state": "s"}).
		expectProblem(t, http.StatusTooManyRequests, "", "rate_limited")
	from("198.51.100.9", http.MethodPost, "/v1/store/token", map[string]any{"email": u.Email, "password": "whatever"}).
		expectProblem(t, http.StatusTooManyRequests, "", "rate_limited")
	// Another address is not held back.
	exchange("198.51.100.10", good).expectStatus(t, http.StatusOK)
	if n := s.count(`SELECT count(*) FROM customer_sessions`); n != 1 {
		t.Errorf("%d sessions, want the one of the other address", n)
	}

	m = s.scrape()
	expectMetric(t, m, 4, "customerbus_login_failures_total", "method", "oidc", "reason", "rate_limited")
	expectMetric(t, m, 3, "customerbus_login_failures_total", "method", "oidc", "reason", "invalid_token")
	expectMetric(t, m, 1, "customerbus_login_failures_total", "method", "password", "reason", "rate_limited")
	expectMetric(t, m, 0, "customerbus_login_failures_total", "method", "password", "reason", "bad_credentials")
}

// A sign-in that links an identity to an existing customer sends that
// customer a security notice by email (customer.identity_linked, a
// notification: never on the public stream, no token, no provider
// subject), once; a sign-in that creates a customer, and one that finds
// its linked customer again, send none.
func TestOIDCLinkingAnExistingAccountEmailsASecurityNoticeOnce(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	o := newTestOP(t)
	provider := m.addProvider(o)
	guest := m.createCustomer(map[string]any{"email": "oidc-notice-" + randomSuffix() + "@example.com", "first_name": "Gina"})
	u := o.addUser(guest.Email, true)

	m.oidcSignIn(o, provider, u).expectStatus(t, http.StatusOK)
	mail := m.smtp.WaitMails(1)[0]
	if mail.Rcpt != guest.Email || mail.Subject != "A sign-in method was added to your account" {
		t.Fatalf("notice to %s: %q", mail.Rcpt, mail.Subject)
	}
	for _, body := range []string{mail.Text, mail.HTML} {
		if !strings.Contains(body, "Gina") || !strings.Contains(body, "Test OP") || strings.Contains(body, u.ID) || strings.Contains(body, "token=") {
			t.Errorf("the notice names the customer and the provider, without the subject or a token:\n%s", body)
		}
	}
	// The sign-in's public event only (customer.verified, the provider
	// vouching for the guest's email): the notice is not public.
	if evs := m.eventsAbout(guest.ID, 2); evs[1].Type() != events.CustomerVerified {
		t.Errorf("public events %s, %s", evs[0].Type(), evs[1].Type())
	}

	// Signing in again, and a first sign-in that creates its customer: no
	// notice.
	m.exchange(provider, o.idToken(shopClientID, shopClientSecret, u)).expectStatus(t, http.StatusOK)
	m.exchange(provider, o.idToken(shopClientID, shopClientSecret, o.addUser("oidc-new-"+randomSuffix()+"@example.com", true))).
		expectStatus(t, http.StatusOK)
	time.Sleep(time.Second) // the relay and the notifier have had their time
	if mails := m.smtp.Mails(); len(mails) != 1 {
		t.Errorf("%d emails, want the one notice", len(mails))
	}
	if n := m.count(`SELECT count(*) FROM outbox WHERE convert_from(event, 'UTF8') LIKE '%' || $1 || '%'`, u.ID); n != 0 {
		t.Errorf("%d outbox events carry the provider's subject", n)
	}
}
