package customers_test

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/notifier"
	"github.com/customerbus/customerbus/services/notifier/smtptest"
)

// shopURL is the storefront page the emails' links lead to; it keeps its
// own query.
const shopURL = "https://shop.example.com/account/confirm?lang=en"

// storeCustomerJSON is the customer as /v1/store shows it to itself.
type storeCustomerJSON struct {
	ID           string            `json:"id"`
	Email        string            `json:"email"`
	FirstName    string            `json:"first_name"`
	LastName     string            `json:"last_name"`
	Phone        *string           `json:"phone"`
	LanguageCode string            `json:"language_code"`
	Metadata     map[string]string `json:"metadata"`
	HasAccount   bool              `json:"has_account"`
	IsVerified   bool              `json:"is_verified"`
}

// sessionJSON answers a login or a refresh.
type sessionJSON struct {
	AccessToken      string            `json:"access_token"`
	TokenType        string            `json:"token_type"`
	ExpiresIn        int64             `json:"expires_in"`
	ExpiresAt        time.Time         `json:"expires_at"`
	RefreshToken     string            `json:"refresh_token"`
	RefreshExpiresAt time.Time         `json:"refresh_expires_at"`
	Customer         storeCustomerJSON `json:"customer"`
}

// public calls a route without a token.
func (s *system) public(method, path string, body any) reply {
	s.t.Helper()
	return request(s.t, s, method, path, body, map[string]string{"Authorization": ""})
}

// as calls a route with the given bearer token.
func (s *system) as(token, method, path string, body any) reply {
	s.t.Helper()
	return request(s.t, s, method, path, body, map[string]string{"Authorization": "Bearer " + token})
}

// emailToken is the token of the newest notification of this type about
// the customer, read from the outbox where the notifier will get it from.
// Tests about email delivery read the email instead.
func (s *system) emailToken(customerID, eventType string) string {
	s.t.Helper()
	return s.notification(customerID, eventType).Token
}

// shopper is a registered, verified and logged-in customer.
type shopper struct {
	ID, Email, Password string
	sessionJSON
}

// newShopper registers a customer, confirms it and logs it in.
func (s *system) newShopper() shopper {
	s.t.Helper()
	sh := shopper{Email: "shopper-" + randomSuffix() + "@example.com", Password: "correct horse battery"}
	var c storeCustomerJSON
	r := s.public(http.MethodPost, "/v1/store/register", map[string]any{
		"email": sh.Email, "password": sh.Password, "first_name": "Ann", "redirect_url": shopURL, "channel": "web",
	})
	r.expectStatus(s.t, http.StatusCreated)
	r.decode(s.t, &c)
	sh.ID = c.ID
	s.public(http.MethodPost, "/v1/store/confirm", map[string]any{
		"token": s.emailToken(c.ID, events.CustomerVerificationRequested),
	}).expectStatus(s.t, http.StatusOK)
	sh.sessionJSON = s.login(sh.Email, sh.Password)
	return sh
}

// login logs in and expects it to work.
func (s *system) login(email, password string) sessionJSON {
	s.t.Helper()
	var out sessionJSON
	r := s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": email, "password": password})
	r.expectStatus(s.t, http.StatusOK)
	r.decode(s.t, &out)
	return out
}

// mailSystem is the system with a notifier sending to a real SMTP server
// that the test runs.
type mailSystem struct {
	*system
	smtp *smtptest.Server
}

func newMailSystem(t *testing.T) *mailSystem { return newMailSystemLogging(t, zaptest.NewLogger(t)) }

// newMailSystemLogging is newMailSystem with the notifier logging to log.
func newMailSystemLogging(t *testing.T, log *zap.Logger) *mailSystem {
	t.Helper()
	s := newSystem(t)
	srv := smtptest.New(t)
	n, err := notifier.New(s.pool, s.js, log, prometheus.NewRegistry(), notifier.Config{
		SMTPURL: srv.URL(), SMTPTLS: "opportunistic", SMTPTimeout: 2 * time.Second, MailFrom: "Shop <shop@example.com>",
		MaxTries: 100, RetryBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		AckWait: 2 * time.Second, ClaimTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := n.Run(ctx); err != nil {
			t.Errorf("notifier: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &mailSystem{system: s, smtp: srv}
}

// mailTo waits for the n-th email overall and checks it went to rcpt; it
// returns the token and email of its link, which must lead to shopURL.
func (m *mailSystem) mailTo(n int, rcpt string) (token, email string, mail smtptest.Mail) {
	m.t.Helper()
	mails := m.smtp.WaitMails(n)
	mail = mails[n-1]
	if mail.Rcpt != rcpt {
		m.t.Fatalf("mail %d went to %s, want %s", n, mail.Rcpt, rcpt)
	}
	link := mail.Link(m.t)
	q := link.Query()
	if base := strings.Split(link.String(), "?")[0]; base != strings.Split(shopURL, "?")[0] || q.Get("lang") != "en" {
		m.t.Errorf("link %s does not lead to %s", link, shopURL)
	}
	if q.Get("token") == "" || q.Get("email") != rcpt {
		m.t.Errorf("link %s lacks the token or the recipient's email", link)
	}
	return q.Get("token"), q.Get("email"), mail
}

// Register → the verification email arrives → its link's token confirms
// the account; only then can the customer log in.
func TestRegisterThenConfirmThroughTheEmail(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	email := "Reg-" + randomSuffix() + "@Example.com"
	lower := strings.ToLower(email)
	var c storeCustomerJSON
	r := m.public(http.MethodPost, "/v1/store/register", map[string]any{
		"email": email, "password": "s3cret-enough", "first_name": "Ann", "language_code": "de",
		"redirect_url": shopURL, "channel": "web",
	})
	r.expectStatus(t, http.StatusCreated)
	r.decode(t, &c)
	if c.Email != lower || !c.HasAccount || c.IsVerified || strings.Contains(string(r.body), "password") {
		t.Errorf("registered customer %s: want the normalised email, has_account, not verified, no password field", r.body)
	}
	// The same email again is taken.
	m.public(http.MethodPost, "/v1/store/register", map[string]any{
		"email": lower, "password": "s3cret-enough", "redirect_url": shopURL, "channel": "web",
	}).expectProblem(t, http.StatusConflict, "email", "unique")

	m.public(http.MethodPost, "/v1/store/token", map[string]any{"email": lower, "password": "s3cret-enough"}).
		expectProblem(t, http.StatusForbidden, "", "unverified")

	token, linkEmail, mail := m.mailTo(1, lower)
	if !strings.Contains(mail.Subject, "E-Mail") { // language_code de
		t.Errorf("subject %q is not the German template's", mail.Subject)
	}
	var got storeCustomerJSON
	r = m.public(http.MethodPost, "/v1/store/confirm", map[string]any{"email": linkEmail, "token": token})
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &got)
	if !got.IsVerified || got.ID != c.ID {
		t.Errorf("confirmed customer %s, want it verified", r.body)
	}
	m.public(http.MethodPost, "/v1/store/confirm", map[string]any{"email": linkEmail, "token": token}).
		expectProblem(t, http.StatusBadRequest, "token", "already_used")
	m.login(lower, "s3cret-enough")

	// created, then verified, and nothing else on the public stream: the
	// token stays on the notifications stream.
	evs, msgs := m.streamEvents(2)
	if evs[0].Type() != events.CustomerCreated || evs[1].Type() != events.CustomerVerified {
		t.Fatalf("events %s, %s; want customer.created, customer.verified", evs[0].Type(), evs[1].Type())
	}
	if ext(evs[1], "sequence") != "2" || ext(evs[1], "authid") != c.ID || ext(evs[1], "authtype") != "user" {
		t.Errorf("customer.verified: sequence %s, actor %s/%s; want 2 and the customer itself",
			ext(evs[1], "sequence"), ext(evs[1], "authtype"), ext(evs[1], "authid"))
	}
	for _, msg := range msgs {
		if strings.Contains(string(msg.Data), token) || strings.Contains(string(msg.Data), "argon2") {
			t.Errorf("a public event carries a secret: %s", msg.Data)
		}
	}
}

// Staff create with redirect_url and channel → set-password email →
// setting the password works once and makes the customer registered and
// verified. Without both fields no email goes out.
func TestStaffCreateSendsSetPasswordEmail(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	quiet := m.createCustomer(map[string]any{"email": "quiet-" + randomSuffix() + "@example.com"})
	if n := m.count(`SELECT count(*) FROM outbox WHERE nats_subject LIKE 'customerbus.notifications.%'`); n != 0 {
		t.Errorf("create without redirect_url and channel wrote %d notifications", n)
	}
	r := request(t, m.system, http.MethodPost, "/v1/customers", map[string]any{"email": "half-" + randomSuffix() + "@example.com", "redirect_url": shopURL}, nil)
	r.expectProblem(t, http.StatusBadRequest, "channel", "required")

	c := m.createCustomer(map[string]any{
		"email": "invited-" + randomSuffix() + "@example.com", "first_name": "Bo", "redirect_url": shopURL, "channel": "web",
	})
	if c.HasAccount || c.IsVerified {
		t.Errorf("invited customer has_account=%v is_verified=%v before setting a password", c.HasAccount, c.IsVerified)
	}
	token, email, _ := m.mailTo(1, c.Email)
	var got storeCustomerJSON
	r = m.public(http.MethodPost, "/v1/store/password", map[string]any{"email": email, "token": token, "password": "my new password"})
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &got)
	if !got.HasAccount || !got.IsVerified {
		t.Errorf("after setting the password: %s, want has_account and is_verified", r.body)
	}
	m.public(http.MethodPost, "/v1/store/password", map[string]any{"email": email, "token": token, "password": "another password"}).
		expectProblem(t, http.StatusBadRequest, "token", "already_used")
	m.login(c.Email, "my new password")
	m.public(http.MethodPost, "/v1/store/token", map[string]any{"email": c.Email, "password": "another password"}).
		expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
	if got := m.smtp.Mails(); len(got) != 1 {
		t.Errorf("%d emails, want only the invitation (the quiet customer %s gets none)", len(got), quiet.Email)
	}
}

// Reset flow end to end: unknown emails get the same answer and no email;
// the new password works, the old one and every old session do not.
func TestPasswordResetThroughTheEmail(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	sh := m.newShopper()
	body := func(email string) map[string]any {
		return map[string]any{"email": email, "redirect_url": shopURL, "channel": "web"}
	}
	unknown := m.public(http.MethodPost, "/v1/store/password-reset", body("nobody-"+randomSuffix()+"@example.com"))
	unknown.expectStatus(t, http.StatusAccepted)
	known := m.public(http.MethodPost, "/v1/store/password-reset", body(strings.ToUpper(sh.Email)))
	known.expectStatus(t, http.StatusAccepted)
	if string(unknown.body) != string(known.body) {
		t.Errorf("answers differ for unknown (%q) and known (%q) emails", unknown.body, known.body)
	}
	// Asked again at once: the same answer, and no second email (flooding
	// an address with resets is refused silently).
	again := m.public(http.MethodPost, "/v1/store/password-reset", body(sh.Email))
	again.expectStatus(t, http.StatusAccepted)
	// The first mail is the registration's verification email.
	token, email, _ := m.mailTo(2, sh.Email)
	m.public(http.MethodPost, "/v1/store/password", map[string]any{"email": email, "token": token, "password": "short"}).
		expectProblem(t, http.StatusBadRequest, "password", "too_short")
	m.public(http.MethodPost, "/v1/store/password", map[string]any{"email": email, "token": token, "password": "brand new password"}).
		expectStatus(t, http.StatusOK)
	m.as(sh.AccessToken, http.MethodGet, "/v1/store/me", nil).expectProblem(t, http.StatusUnauthorized, "Authorization", "unauthorized")
	m.public(http.MethodPost, "/v1/store/token", map[string]any{"email": sh.Email, "password": sh.Password}).
		expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
	m.login(sh.Email, "brand new password")
	time.Sleep(300 * time.Millisecond) // an email for the unknown address would have come by now
	if n := len(m.smtp.Mails()); n != 2 {
		t.Errorf("%d emails, want 2 (verification and one reset)", n)
	}
}

// A wrong, mistyped, misused or expired token gets a clear error, and
// changes nothing.
func TestWrongOrExpiredTokensAreRefusedClearly(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	sh := s.newShopper()
	s.public(http.MethodPost, "/v1/store/password-reset", map[string]any{"email": sh.Email, "redirect_url": shopURL, "channel": "web"}).
		expectStatus(t, http.StatusAccepted)
	reset := s.emailToken(sh.ID, events.CustomerPasswordResetRequested)
	verification := s.emailToken(sh.ID, events.CustomerVerificationRequested)
	other := s.newShopper()

	for _, tc := range []struct {
		name, path string
		body       map[string]any
		field      string
		code       string
	}{
		{"no token", "/v1/store/password", map[string]any{"password": "whatever you like"}, "token", "required"},
		{"unknown token", "/v1/store/password", map[string]any{"token": "cbt_nothing", "password": "whatever you like"}, "token", "invalid"},
		{"mistyped token", "/v1/store/password", map[string]any{"token": reset[:len(reset)-1], "password": "whatever you like"}, "token", "invalid"},
		{"token of another purpose", "/v1/store/confirm", map[string]any{"token": reset}, "token", "invalid"},
		{"token with another customer's email", "/v1/store/password", map[string]any{"token": reset, "email": other.Email, "password": "whatever you like"}, "token", "invalid"},
		{"used token", "/v1/store/confirm", map[string]any{"token": verification}, "token", "already_used"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.forTest(t).public(http.MethodPost, tc.path, tc.body).expectProblem(t, http.StatusBadRequest, tc.field, tc.code)
		})
	}
	if _, err := s.pool.Exec(context.Background(), `UPDATE customer_tokens SET expires_at = now() - interval '1 second' WHERE purpose = 'password_reset'`); err != nil {
		t.Fatal(err)
	}
	p := s.public(http.MethodPost, "/v1/store/password", map[string]any{"token": reset, "password": "whatever you like"})
	p.expectProblem(t, http.StatusBadRequest, "token", "expired")
	// Nothing changed: the old password still works.
	s.login(sh.Email, sh.Password)
}

// Email change: the password is checked, the new address must be free, the
// link goes to the new address, and only its confirmation changes the email.
func TestEmailChangeThroughTheEmail(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	sh := m.newShopper()
	taken := m.createCustomer(map[string]any{"email": "taken-" + randomSuffix() + "@example.com"})
	newEmail := "moved-" + randomSuffix() + "@example.com"
	change := func(email, password string) reply {
		return m.as(sh.AccessToken, http.MethodPost, "/v1/store/me/email-change", map[string]any{
			"new_email": email, "password": password, "redirect_url": shopURL, "channel": "web",
		})
	}
	change(newEmail, "wrong password").expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
	change(taken.Email, sh.Password).expectProblem(t, http.StatusConflict, "new_email", "unique")
	change(sh.Email, sh.Password).expectProblem(t, http.StatusBadRequest, "new_email", "invalid")
	change(newEmail, sh.Password).expectStatus(t, http.StatusAccepted)
	// A second link within the cooldown is refused: one account cannot flood
	// any address with email-change links.
	if r := change("flood-"+randomSuffix()+"@example.com", sh.Password); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("a second email-change request at once: %d (Retry-After %q), want 429", r.status, r.header.Get("Retry-After"))
	}

	token, email, _ := m.mailTo(2, newEmail) // 1 was the verification
	var me storeCustomerJSON
	m.as(sh.AccessToken, http.MethodGet, "/v1/store/me", nil).decode(t, &me)
	if me.Email != sh.Email {
		t.Errorf("email is %s before the confirmation, want still %s", me.Email, sh.Email)
	}
	// Another customer cannot use the link.
	other := m.newShopper()
	m.as(other.AccessToken, http.MethodPost, "/v1/store/me/email-change/confirm", map[string]any{"token": token}).
		expectProblem(t, http.StatusBadRequest, "token", "invalid")
	r := m.as(sh.AccessToken, http.MethodPost, "/v1/store/me/email-change/confirm", map[string]any{"email": email, "token": token})
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &me)
	if me.Email != newEmail || !me.IsVerified {
		t.Errorf("after confirming: %s, want email %s, verified", r.body, newEmail)
	}
	m.login(newEmail, sh.Password)
	m.public(http.MethodPost, "/v1/store/token", map[string]any{"email": sh.Email, "password": sh.Password}).
		expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")

	// sh: created, verified, email_changed; other: created, verified; the taken one: created.
	evs, _ := m.streamEvents(6)
	var changed []events.CustomerEmailChangedData
	for _, e := range evs {
		if e.Type() == events.CustomerEmailChanged {
			var d events.CustomerEmailChangedData
			if err := e.DataAs(&d); err != nil {
				t.Fatal(err)
			}
			changed = append(changed, d)
		}
	}
	if len(changed) != 1 || changed[0].Email != newEmail || changed[0].PreviousEmail != sh.Email || changed[0].Version != 3 {
		t.Errorf("customer.email_changed events %+v, want one from %s to %s at version 3", changed, sh.Email, newEmail)
	}
}

// Self-deletion: a link by email, used with the customer's own token,
// deletes the account and ends its sessions.
func TestSelfDeletionThroughTheEmail(t *testing.T) {
	t.Parallel()
	m := newMailSystem(t)
	sh := m.newShopper()
	m.as(sh.AccessToken, http.MethodPost, "/v1/store/me/deletion-request", map[string]any{"redirect_url": shopURL}).
		expectProblem(t, http.StatusBadRequest, "channel", "required")
	m.as(sh.AccessToken, http.MethodPost, "/v1/store/me/deletion-request", map[string]any{"redirect_url": shopURL, "channel": "web"}).
		expectStatus(t, http.StatusAccepted)
	token, email, _ := m.mailTo(2, sh.Email)
	// The deletion token does nothing elsewhere.
	m.public(http.MethodPost, "/v1/store/password", map[string]any{"token": token, "password": "whatever you like"}).
		expectProblem(t, http.StatusBadRequest, "token", "invalid")
	m.as(sh.AccessToken, http.MethodPost, "/v1/store/me/delete", map[string]any{"email": email, "token": token}).
		expectStatus(t, http.StatusNoContent)
	request(t, m.system, http.MethodGet, "/v1/customers/"+sh.ID, nil, nil).expectProblem(t, http.StatusNotFound, "id", "not_found")
	m.as(sh.AccessToken, http.MethodGet, "/v1/store/me", nil).expectProblem(t, http.StatusUnauthorized, "Authorization", "unauthorized")
	if n := m.count(`SELECT count(*) FROM customer_sessions WHERE customer_id = $1`, sh.ID); n != 0 {
		t.Errorf("%d sessions left after the deletion", n)
	}
	// The deletion erased the customer first: its earlier events are gone,
	// customer.anonymized and customer.deleted stay, both by the customer.
	m.waitErased(sh.ID)
	evs, _ := m.streamEvents(2)
	for i, want := range []string{events.CustomerAnonymized + " 3", events.CustomerDeleted + " 4"} {
		if got := evs[i].Type() + " " + ext(evs[i], "sequence"); got != want || ext(evs[i], "authid") != sh.ID {
			t.Errorf("event %d: %s by %s, want %s by the customer", i, got, ext(evs[i], "authid"), want)
		}
	}
}

// Failed logins are refused without saying whether the email exists, and
// rate-limited per email and per client address; a limited email is
// refused even with the right password until the window ends.
func TestLoginsAreRateLimited(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, func(c *customers.Config) {
		c.Accounts.LoginFailuresPerEmail = 3
		c.Accounts.LoginFailuresPerAddress = 6
	})
	sh := s.newShopper()
	bad := func(email string) reply {
		return s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": email, "password": "not the password"})
	}
	unknown := bad("nobody-" + randomSuffix() + "@example.com")
	unknown.expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
	known := bad(sh.Email)
	known.expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
	var u, k problemJSON
	unknown.decode(t, &u)
	known.decode(t, &k)
	if u.Errors[0].Message != k.Errors[0].Message {
		t.Errorf("unknown and known emails are told apart: %q vs %q", u.Errors[0].Message, k.Errors[0].Message)
	}
	bad(sh.Email).expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
	bad(sh.Email).expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
	limited := s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": sh.Email, "password": sh.Password})
	limited.expectProblem(t, http.StatusTooManyRequests, "", "rate_limited")
	if sec, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || sec < 1 || sec > 15*60 {
		t.Errorf("Retry-After %q, want the seconds left in the window", limited.header.Get("Retry-After"))
	}
	// Other emails from the same address: 4 failures so far, the limit is 6.
	bad("x-"+randomSuffix()+"@example.com").expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
	bad("y-"+randomSuffix()+"@example.com").expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
	bad("z-"+randomSuffix()+"@example.com").expectProblem(t, http.StatusTooManyRequests, "", "rate_limited")

	// When the window has passed, the right password works again.
	if _, err := s.pool.Exec(context.Background(), `UPDATE login_failures SET window_started_at = window_started_at - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	s.login(sh.Email, sh.Password)
}

// Behind a trusted proxy, the per-address login limit counts the client
// that X-Forwarded-For names, read from the right, so a client cannot step
// around it by putting another address on the left; without trusted
// proxies the header is ignored.
func TestLoginLimitsBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	for _, trusted := range []bool{true, false} {
		s := newSystemWith(t, func(c *customers.Config) {
			c.Accounts.LoginFailuresPerAddress = 2
			if trusted {
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
			}
		})
		login := func(forwardedFor string) reply {
			return request(s.t, s, http.MethodPost, "/v1/store/token",
				map[string]any{"email": "nobody-" + randomSuffix() + "@example.com", "password": "wrong"},
				map[string]string{"Authorization": "", "X-Forwarded-For": forwardedFor})
		}
		login("203.0.113.7").expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
		login("203.0.113.7").expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials")
		login("198.51.100.1, 203.0.113.7").expectProblem(t, http.StatusTooManyRequests, "", "rate_limited")
		other := login("203.0.113.8")
		if trusted {
			other.expectProblem(t, http.StatusUnauthorized, "", "invalid_credentials") // another client
		} else {
			other.expectProblem(t, http.StatusTooManyRequests, "", "rate_limited") // the same peer
		}
	}
}

// Tokens: refresh replaces both tokens once; logout ends one session or
// all; deactivation ends them all and blocks logins.
func TestCustomerSessionsRefreshLogoutAndDeactivation(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	sh := s.newShopper()
	if sh.TokenType != "Bearer" || sh.ExpiresIn < 3500 || sh.ExpiresIn > 3600 || !strings.HasPrefix(sh.AccessToken, "cbc_") {
		t.Errorf("session %+v: want a Bearer cbc_ token for an hour", sh.sessionJSON)
	}
	var next sessionJSON
	r := s.public(http.MethodPost, "/v1/store/token/refresh", map[string]any{"refresh_token": sh.RefreshToken})
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &next)
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer Cache-Control %q, want no-store", r.header.Get("Cache-Control"))
	}
	if next.AccessToken == sh.AccessToken || next.RefreshToken == sh.RefreshToken || !next.RefreshExpiresAt.Equal(sh.RefreshExpiresAt) {
		t.Errorf("refresh gave %+v: want new tokens and the login's old end", next)
	}
	s.public(http.MethodPost, "/v1/store/token/refresh", map[string]any{"refresh_token": sh.RefreshToken}).
		expectProblem(t, http.StatusUnauthorized, "refresh_token", "invalid")
	s.as(sh.AccessToken, http.MethodGet, "/v1/store/me", nil).expectStatus(t, http.StatusUnauthorized)
	s.as(next.AccessToken, http.MethodGet, "/v1/store/me", nil).expectStatus(t, http.StatusOK)

	second := s.login(sh.Email, sh.Password)
	s.as(next.AccessToken, http.MethodPost, "/v1/store/logout", nil).expectStatus(t, http.StatusNoContent)
	s.as(next.AccessToken, http.MethodGet, "/v1/store/me", nil).expectStatus(t, http.StatusUnauthorized)
	s.as(second.AccessToken, http.MethodGet, "/v1/store/me", nil).expectStatus(t, http.StatusOK)

	third := s.login(sh.Email, sh.Password)
	s.as(third.AccessToken, http.MethodPost, "/v1/store/logout", map[string]any{"all": true}).expectStatus(t, http.StatusNoContent)
	s.as(second.AccessToken, http.MethodGet, "/v1/store/me", nil).expectStatus(t, http.StatusUnauthorized)
	s.public(http.MethodPost, "/v1/store/token/refresh", map[string]any{"refresh_token": second.RefreshToken}).
		expectStatus(t, http.StatusUnauthorized)

	fourth := s.login(sh.Email, sh.Password)
	s.do(http.MethodPatch, "/v1/customers/"+sh.ID, map[string]any{"is_active": false}, nil)
	s.as(fourth.AccessToken, http.MethodGet, "/v1/store/me", nil).expectStatus(t, http.StatusUnauthorized)
	s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": sh.Email, "password": sh.Password}).
		expectProblem(t, http.StatusForbidden, "", "inactive")
}

// A customer token reaches only its own customer, and changes only the
// profile fields.
func TestCustomerTokenReachesOnlyItsOwnData(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	ann, bob := s.newShopper(), s.newShopper()
	var bobsAddress struct{ ID string }
	r := s.as(bob.AccessToken, http.MethodPost, "/v1/store/me/addresses", validAddress())
	r.expectStatus(t, http.StatusCreated)
	r.decode(t, &bobsAddress)
	if loc := r.header.Get("Location"); loc != "/v1/store/me/addresses/"+bobsAddress.ID {
		t.Errorf("Location %q", loc)
	}

	var me storeCustomerJSON
	s.as(ann.AccessToken, http.MethodGet, "/v1/store/me", nil).decode(t, &me)
	if me.ID != ann.ID || strings.Contains(strings.ToLower(string(s.as(ann.AccessToken, http.MethodGet, "/v1/store/me", nil).body)), "private") {
		t.Errorf("/v1/store/me is %+v, want Ann without private fields", me)
	}
	s.as(ann.AccessToken, http.MethodPatch, "/v1/store/me/addresses/"+bobsAddress.ID, map[string]any{"city": "Hamburg"}).
		expectProblem(t, http.StatusNotFound, "aid", "not_found")
	s.as(ann.AccessToken, http.MethodDelete, "/v1/store/me/addresses/"+bobsAddress.ID, nil).
		expectProblem(t, http.StatusNotFound, "aid", "not_found")
	var page struct{ Addresses []struct{ ID string } }
	s.as(ann.AccessToken, http.MethodGet, "/v1/store/me/addresses", nil).decode(t, &page)
	if len(page.Addresses) != 0 {
		t.Errorf("Ann sees addresses %+v", page.Addresses)
	}
	s.as(ann.AccessToken, http.MethodGet, "/v1/customers/"+bob.ID, nil).expectProblem(t, http.StatusForbidden, "Authorization", "forbidden")

	for _, field := range []string{"email", "note", "is_active", "private_metadata", "metadata"} {
		s.as(ann.AccessToken, http.MethodPatch, "/v1/store/me", map[string]any{field: "x"}).
			expectProblem(t, http.StatusBadRequest, field, "unknown_field")
	}
	r = s.as(ann.AccessToken, http.MethodPatch, "/v1/store/me", map[string]any{"last_name": "Lee", "phone": "+49 30 901820"})
	r.expectStatus(t, http.StatusOK)
	r.decode(t, &me)
	if me.LastName != "Lee" || me.Phone == nil || *me.Phone != "+4930901820" {
		t.Errorf("profile update gave %s", r.body)
	}
	var staffView customerJSON
	s.do(http.MethodGet, "/v1/customers/"+bob.ID, nil, &staffView)
	if staffView.LastName != "" || staffView.Version != 3 { // created, verified, address added
		t.Errorf("Bob changed: %+v", staffView)
	}
}

// storeRouteCall prepares a call of a storefront route that succeeds: its
// path, body and the token to send ("" for public routes).
func storeRouteCall(s *system, method, pattern string) (path string, body any, token string) {
	s.t.Helper()
	if strings.Contains(pattern, "/oidc/") || strings.Contains(pattern, "/identities") {
		return oidcRouteCall(s, method, pattern)
	}
	sh := s.newShopper()
	path, token = pattern, sh.AccessToken
	if strings.Contains(pattern, "{aid}") {
		var a struct{ ID string }
		r := s.as(sh.AccessToken, http.MethodPost, "/v1/store/me/addresses", validAddress())
		r.decode(s.t, &a)
		path = strings.ReplaceAll(pattern, "{aid}", a.ID)
	}
	link := func(m map[string]any) map[string]any {
		m["redirect_url"], m["channel"] = shopURL, "web"
		return m
	}
	switch method + " " + pattern {
	case "POST /v1/store/orders/{id}/transfer/accept", "POST /v1/store/orders/{id}/transfer/decline":
		path, body := storeTransferCall(s, pattern)
		return path, body, ""
	case "POST /v1/store/register":
		return path, link(map[string]any{"email": "new-" + randomSuffix() + "@example.com", "password": "long enough"}), ""
	case "POST /v1/store/confirm":
		var c storeCustomerJSON
		s.public(http.MethodPost, "/v1/store/register", link(map[string]any{"email": "new-" + randomSuffix() + "@example.com", "password": "long enough"})).decode(s.t, &c)
		return path, map[string]any{"token": s.emailToken(c.ID, events.CustomerVerificationRequested)}, ""
	case "POST /v1/store/token":
		return path, map[string]any{"email": sh.Email, "password": sh.Password}, ""
	case "POST /v1/store/token/refresh":
		return path, map[string]any{"refresh_token": sh.RefreshToken}, ""
	case "POST /v1/store/password-reset":
		return path, link(map[string]any{"email": sh.Email}), ""
	case "POST /v1/store/password":
		s.public(http.MethodPost, "/v1/store/password-reset", link(map[string]any{"email": sh.Email}))
		return path, map[string]any{"token": s.emailToken(sh.ID, events.CustomerPasswordResetRequested), "password": "a new password"}, ""
	case "POST /v1/store/logout", "GET /v1/store/me", "GET /v1/store/me/addresses", "DELETE /v1/store/me/addresses/{aid}", "GET /v1/store/me/orders",
		"GET /v1/store/me/data-export":
		return path, nil, token
	case "PATCH /v1/store/me":
		return path, map[string]any{"first_name": "Cy"}, token
	case "POST /v1/store/me/addresses":
		return path, validAddress(), token
	case "PATCH /v1/store/me/addresses/{aid}":
		return path, map[string]any{"city": "Hamburg"}, token
	case "POST /v1/store/me/email-change":
		return path, link(map[string]any{"new_email": "moved-" + randomSuffix() + "@example.com", "password": sh.Password}), token
	case "POST /v1/store/me/email-change/confirm":
		s.as(token, http.MethodPost, "/v1/store/me/email-change", link(map[string]any{"new_email": "moved-" + randomSuffix() + "@example.com", "password": sh.Password})).
			expectStatus(s.t, http.StatusAccepted)
		return path, map[string]any{"token": s.emailToken(sh.ID, events.CustomerEmailChangeRequested)}, token
	case "POST /v1/store/me/deletion-request":
		return path, link(map[string]any{}), token
	case "GET /v1/store/me/consent/{channel}":
		return strings.ReplaceAll(pattern, "{channel}", "email"), nil, token
	case "PUT /v1/store/me/consent/{channel}":
		return strings.ReplaceAll(pattern, "{channel}", "email"), map[string]any{"state": "subscribed"}, token
	case "POST /v1/store/consent/confirm":
		s.as(token, http.MethodPut, "/v1/store/me/consent/email", link(map[string]any{"state": "subscribed", "opt_in_level": "confirmed_opt_in"})).
			expectStatus(s.t, http.StatusOK)
		return path, map[string]any{"token": s.emailToken(sh.ID, events.CustomerConsentConfirmationRequested)}, ""
	case "POST /v1/store/me/delete":
		s.as(token, http.MethodPost, "/v1/store/me/deletion-request", link(map[string]any{})).expectStatus(s.t, http.StatusAccepted)
		return path, map[string]any{"token": s.emailToken(sh.ID, events.CustomerDeletionRequested)}, token
	}
	s.t.Fatalf("no request for route %s %s in storeRouteCall: add one", method, pattern)
	return "", nil, ""
}

// The sweep deletes one-time tokens a day after they expired and ended
// sessions, and nothing else.
func TestSweepDeletesExpiredTokensAndEndedSessions(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	sh := s.newShopper() // one used verification token, one session
	ended := s.login(sh.Email, sh.Password)
	exec := func(sql string, args ...any) {
		if _, err := s.pool.Exec(context.Background(), sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	// The verification token expired two days ago; a reset token just now
	// (kept a day, to say "expired"); the second session has ended.
	exec(`UPDATE customer_tokens SET expires_at = now() - interval '2 days' WHERE purpose = 'verification'`)
	s.public(http.MethodPost, "/v1/store/password-reset", map[string]any{"email": sh.Email, "redirect_url": shopURL, "channel": "web"}).
		expectStatus(t, http.StatusAccepted)
	exec(`UPDATE customer_tokens SET expires_at = now() - interval '1 hour' WHERE purpose = 'password_reset'`)
	exec(`UPDATE customer_sessions SET refresh_expires_at = now() - interval '1 second' WHERE access_hash = sha256($1::bytea)`, []byte(ended.AccessToken))

	tokens, sessions, err := s.svc.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tokens != 1 || sessions != 1 {
		t.Errorf("swept %d tokens and %d sessions, want 1 and 1", tokens, sessions)
	}
	if n := s.count(`SELECT count(*) FROM customer_tokens WHERE purpose = 'password_reset'`); n != 1 {
		t.Errorf("the recently expired reset token is gone")
	}
	s.as(sh.AccessToken, http.MethodGet, "/v1/store/me", nil).expectStatus(t, http.StatusOK)
}
