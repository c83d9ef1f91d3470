package customers_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/customerbus/customerbus/services/customers"
)

// staffLogin is a staff user of the test's own.
type staffLogin struct{ email, password, id string }

// newStaff creates a staff user in a group of perms (no group without
// any), named after the test.
func (s *system) newStaff(perms ...string) staffLogin {
	s.t.Helper()
	email := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(s.t.Name())) + "-" + strings.ToLower(strings.Join(perms, "-")) + "@staff.example"
	in := customers.StaffUser{Email: email, Password: "correct horse battery", Name: "Sam Staff"}
	if len(perms) > 0 {
		in.Group, in.Permissions = "group of "+email, perms
	}
	if err := customers.CreateStaff(context.Background(), s.pool, in); err != nil {
		s.t.Fatal(err)
	}
	var id string
	if err := s.pool.QueryRow(context.Background(), `SELECT id::text FROM staff_users WHERE email = $1`, email).Scan(&id); err != nil {
		s.t.Fatal(err)
	}
	return staffLogin{email: email, password: in.Password, id: id}
}

// apiToken is an API token of the test's own.
type apiToken struct{ id, secret string }

func (s *system) newToken(name string, perms ...string) apiToken {
	s.t.Helper()
	secret, err := customers.CreateToken(context.Background(), s.pool, name, false, perms)
	if err != nil {
		s.t.Fatal(err)
	}
	var id string
	if err := s.pool.QueryRow(context.Background(), `SELECT id::text FROM api_tokens WHERE token_hash = sha256($1)`, []byte(secret)).Scan(&id); err != nil {
		s.t.Fatal(err)
	}
	return apiToken{id: id, secret: secret}
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see where the console sends them.
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
}

func (s *system) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return &browser{t: s.t, base: s.api.URL, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get fetches a page; post submits a form from the console's own origin.
func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(path string, form url.Values, headers ...string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(body)
}

func (b *browser) login(who staffLogin) {
	b.t.Helper()
	resp, body := b.post("/admin/login", url.Values{"email": {who.email}, "password": {who.password}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login: status %d: %s", resp.StatusCode, body)
	}
}

func TestConsoleLoginSessionAndLogout(t *testing.T) {
	s := newSystemWith(t, func(c *customers.Config) { c.Accounts.LoginFailuresPerEmail = 3 })
	who := s.newStaff("MANAGE_USERS")
	b := s.browser()

	resp, _ := b.get("/admin/customers")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/admin/login?next=%2Fadmin%2Fcustomers") {
		t.Fatalf("without a session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := b.post("/admin/login", url.Values{"email": {who.email}, "password": {"wrong password"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "The email or the password is wrong.") || !strings.Contains(body, who.email) {
		t.Fatalf("wrong password: %d %s", resp.StatusCode, body)
	}
	resp, _ = b.post("/admin/login", url.Values{"email": {who.email}, "password": {who.password}, "next": {"/admin/customers?q=x"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/customers?q=x" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "customerbus_staff" {
			cookie = c
		}
	}
	// Plain HTTP on 127.0.0.1: not Secure, or the browser would drop it.
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Secure || cookie.Path != "/admin" {
		t.Fatalf("session cookie: %+v", cookie)
	}
	if resp, body := b.get("/admin/customers"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sam Staff") {
		t.Fatalf("customers page: %d", resp.StatusCode)
	}
	// The list's pages (25 each) link to the next and, past the first, to
	// the first page of the same filters, without the cursor.
	for i := range 26 {
		s.createCustomer(map[string]any{"email": fmt.Sprintf("pager-%02d@example.com", i)})
	}
	page := listCustomers(t, s, "is_active=true&order=email&limit=25")
	if page.NextCursor == nil {
		t.Fatalf("no second page: %+v", page)
	}
	_, body = b.get("/admin/customers?is_active=true&order=email")
	next := "/admin/customers?cursor=" + url.QueryEscape(*page.NextCursor) + "&is_active=true&order=email"
	if link := `href="` + html.EscapeString(next) + `" rel="next"`; !strings.Contains(body, link) || strings.Contains(body, `rel="first"`) {
		t.Fatalf("the first page, want the link %s and none to the first page: %s", link, body)
	}
	resp, body = b.get(next)
	if first := `href="/admin/customers?is_active=true&amp;order=email" rel="first"`; resp.StatusCode != http.StatusOK || !strings.Contains(body, first) || !strings.Contains(body, "pager-25@example.com") || strings.Contains(body, "pager-24@example.com") {
		t.Fatalf("the second page: %d, want pager-25 alone and the link %s: %s", resp.StatusCode, first, body)
	}
	// The cookie is stored as a hash only.
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM staff_sessions WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, cookie.Value).Scan(&n); err != nil || n != 1 {
		t.Fatalf("stored sessions of the cookie: %d, %v", n, err)
	}

	if resp, _ := b.post("/admin/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM staff_sessions`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("sessions after logout: %d, %v", n, err)
	}
	// The old cookie, replayed, no longer works.
	replay := s.browser()
	u, _ := url.Parse(s.api.URL + "/admin/")
	replay.client.Jar.SetCookies(u, []*http.Cookie{{Name: cookie.Name, Value: cookie.Value, Path: "/admin"}})
	if resp, _ := replay.get("/admin/customers"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}

	// The login cleared the failure before it; three more reach the limit of
	// 3, and then even the right password is refused.
	for range 3 {
		b.post("/admin/login", url.Values{"email": {who.email}, "password": {"wrong password"}})
	}
	resp, body = b.post("/admin/login", url.Values{"email": {who.email}, "password": {who.password}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many failed logins") {
		t.Fatalf("past the limit: %d %s", resp.StatusCode, body)
	}
	// The staff's failures are counted apart from a customer's of the same email.
	var keys []string
	rows, err := s.pool.Query(context.Background(), `SELECT key FROM login_failures ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		keys = append(keys, k)
	}
	if len(keys) != 2 || keys[1] != "staff:"+who.email {
		t.Fatalf("failure keys: %v", keys)
	}
}

func TestConsoleSessionExpiresWhenIdle(t *testing.T) {
	s := newSystemWith(t, func(c *customers.Config) { c.Staff.IdleTTL = 500 * time.Millisecond })
	b := s.browser()
	b.login(s.newStaff("MANAGE_USERS"))
	if resp, _ := b.get("/admin/customers"); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh session: %d", resp.StatusCode)
	}
	time.Sleep(time.Second)
	if resp, _ := b.get("/admin/customers"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("idle session: %d", resp.StatusCode)
	}
}

// A form posted from another site is refused, whatever cookie it carries.
func TestConsoleRefusesCrossSiteForms(t *testing.T) {
	s := newSystem(t)
	b := s.browser()
	b.login(s.newStaff("MANAGE_USERS"))
	for _, headers := range [][]string{
		{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "", "Origin", "https://evil.example"},
	} {
		resp, _ := b.post("/admin/customers/new", url.Values{"email": {"csrf@example.com"}}, headers...)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%v: status %d", headers, resp.StatusCode)
		}
	}
	var list struct {
		Customers []customerJSON `json:"customers"`
	}
	s.do(http.MethodGet, "/v1/customers?email=csrf@example.com", nil, &list)
	if len(list.Customers) != 0 {
		t.Fatalf("a cross-site form created %v", list.Customers)
	}
	// The same form from the console's own page goes through.
	if resp, body := b.post("/admin/customers/new", url.Values{"email": {"csrf@example.com"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin form: %d %s", resp.StatusCode, body)
	}
}

// Every console page and form refuses a staff user without its permission,
// and anyone without a staff session: no session, or a customer's.
func TestConsoleAuthorization(t *testing.T) {
	s := newSystem(t)
	c := s.createCustomer(map[string]any{"email": "owner@example.com", "addresses": []map[string]any{{"first_name": "A", "last_name": "B", "street_address_1": "Main St 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}}})
	var addresses struct {
		Addresses []struct {
			ID string `json:"id"`
		} `json:"addresses"`
	}
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/addresses", nil, &addresses)
	customerToken := s.newShopper().AccessToken
	ord := s.recordOrder(orderBody(&c.ID, time.Now()))
	// Each path parameter of a console route, as one of these.
	group := s.createGroup("authorization")
	var hook struct{ ID string }
	request(t, s, http.MethodPost, "/v1/webhooks", map[string]any{"url": "https://hooks.example.com/in", "event_types": []string{"*"}}, nil).decode(t, &hook)
	var delivery struct{ ID string }
	request(t, s, http.MethodPost, "/v1/webhooks/"+hook.ID+"/ping", nil, nil).decode(t, &delivery)
	token := s.newToken("authorization", "MANAGE_USERS")
	member := s.newStaff("MANAGE_USERS")
	provider := s.consoleProvider("authorization")
	identity := s.linkIdentity(c.ID, provider, "subject-authorization", c.Email)
	request(t, s, http.MethodPost, "/v1/settings/customer-attributes", map[string]any{"key": "authorization", "label": "Authorization", "type": "string"}, nil).
		expectStatus(t, http.StatusCreated)
	params := strings.NewReplacer("{provider}", provider, "{iid}", identity, "{key}", "authorization",
		"{id}", c.ID, "{aid}", addresses.Addresses[0].ID, "{oid}", ord.ID, "{gid}", group.ID,
		"{wid}", hook.ID, "{did}", delivery.ID, "{tid}", token.id, "{sid}", member.id, "{channel}", "email", "{$}", "")

	users, orders, settings, apps, staffPerm := "MANAGE_USERS", "MANAGE_ORDERS", "MANAGE_SETTINGS", "MANAGE_APPS", "MANAGE_STAFF"
	anonymous := s.browser()
	asCustomer := s.browser()
	u, _ := url.Parse(s.api.URL + "/admin/")
	asCustomer.client.Jar.SetCookies(u, []*http.Cookie{{Name: "customerbus_staff", Value: customerToken, Path: "/admin"}})

	// What each route needs, written down apart from the console's own
	// table, so that a route losing its permission fails here.
	want := map[string]string{
		"GET /admin/{$}": "", "POST /admin/logout": "",
		"GET /admin/customers": users, "GET /admin/customers/new": users, "POST /admin/customers/new": users,
		"GET /admin/customers/{id}": users, "GET /admin/customers/{id}/edit": users, "POST /admin/customers/{id}/edit": users,
		"POST /admin/customers/{id}/active":                       users,
		"GET /admin/customers/{id}/addresses/new":                 users,
		"POST /admin/customers/{id}/addresses/new":                users,
		"GET /admin/customers/{id}/addresses/{aid}/edit":          users,
		"POST /admin/customers/{id}/addresses/{aid}/edit":         users,
		"POST /admin/customers/{id}/addresses/{aid}/default":      users,
		"POST /admin/customers/{id}/addresses/{aid}/delete":       users,
		"POST /admin/customers/{id}/metadata":                     users,
		"POST /admin/customers/{id}/private-metadata":             users,
		"POST /admin/customers/{id}/notes":                        users,
		"POST /admin/customers/{id}/groups":                       users,
		"GET /admin/customers/{id}/orders/{oid}/transfer":         orders,
		"POST /admin/customers/{id}/orders/{oid}/transfer":        orders,
		"POST /admin/customers/{id}/orders/{oid}/transfer/cancel": orders,
		"POST /admin/customers/{id}/consent/{channel}":            users,
		"GET /admin/customers/{id}/data-export":                   users,
		"POST /admin/customers/{id}/duplicates/dismiss":           users,
		"GET /admin/customers/{id}/identities/{iid}/remove":       users,
		"POST /admin/customers/{id}/identities/{iid}/remove":      users,
		"GET /admin/customers/{id}/merge":                         users,
		"POST /admin/customers/{id}/merge":                        users,
		"GET /admin/customers/{id}/anonymize":                     users,
		"POST /admin/customers/{id}/anonymize":                    users,
		"GET /admin/customers/{id}/delete":                        users,
		"POST /admin/customers/{id}/delete":                       users,
		"GET /admin/groups":                                       users, "POST /admin/groups": users,
		"POST /admin/groups/{gid}": users, "GET /admin/groups/{gid}/delete": users, "POST /admin/groups/{gid}/delete": users,
		"GET /admin/settings": settings, "POST /admin/settings": settings,
		"GET /admin/settings/identity-providers": settings, "POST /admin/settings/identity-providers": settings,
		"GET /admin/settings/identity-providers/{provider}": settings, "POST /admin/settings/identity-providers/{provider}": settings,
		"GET /admin/settings/identity-providers/{provider}/delete": settings,
		"GET /admin/settings/customer-attributes":                  settings, "POST /admin/settings/customer-attributes": settings,
		"GET /admin/settings/customer-attributes/{key}": settings, "POST /admin/settings/customer-attributes/{key}": settings,
		"GET /admin/settings/customer-attributes/{key}/delete":      settings,
		"POST /admin/settings/customer-attributes/{key}/delete":     settings,
		"POST /admin/settings/identity-providers/{provider}/delete": settings,
		"GET /admin/webhooks": apps, "POST /admin/webhooks": apps, "GET /admin/webhooks/{wid}": apps,
		"POST /admin/webhooks/{wid}/active": apps, "POST /admin/webhooks/{wid}/rotate-secret": apps,
		"POST /admin/webhooks/{wid}/ping": apps, "POST /admin/webhooks/{wid}/deliveries/{did}/retry": apps,
		"GET /admin/webhooks/{wid}/delete": apps, "POST /admin/webhooks/{wid}/delete": apps,
		"GET /admin/tokens": staffPerm, "POST /admin/tokens": staffPerm, "POST /admin/tokens/{tid}/revoke": staffPerm,
		"GET /admin/staff": staffPerm, "POST /admin/staff": staffPerm,
		"POST /admin/staff/{sid}/active": staffPerm, "POST /admin/staff/{sid}/groups": staffPerm,
	}
	routes := s.svc.ConsoleRoutes()
	seen := map[string]bool{}
	for _, rt := range routes {
		seen[rt.Pattern] = true
		if perm, ok := want[rt.Pattern]; !ok || perm != rt.Permission {
			t.Errorf("%s needs %q; the test expects %q (add it to the table)", rt.Pattern, rt.Permission, perm)
		}
	}
	for pattern := range want {
		if !seen[pattern] {
			t.Errorf("%s: no such console route", pattern)
		}
	}
	// allBut[p] holds every permission but p.
	allBut := map[string]*browser{}
	for _, p := range customers.StaffPermissions {
		b := s.browser()
		b.login(s.newStaff(slices.DeleteFunc(slices.Clone(customers.StaffPermissions), func(q string) bool { return q == p })...))
		allBut[p] = b
	}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = params.Replace(path)
		send := func(b *browser, headers ...string) *http.Response {
			if method == http.MethodGet {
				resp, _ := b.get(path)
				return resp
			}
			resp, _ := b.post(path, url.Values{"email": {"x@example.com"}, "active": {"false"}, "text": {"x"}, "kind": {"shipping"},
				"state": {"subscribed"}, "confirm_email": {c.Email}, "source_id": {c.ID}}, headers...)
			return resp
		}
		if perm := want[rt.Pattern]; perm != "" {
			if resp := send(allBut[perm]); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with every permission but %s: status %d", rt.Pattern, perm, resp.StatusCode)
			}
		}
		for name, b := range map[string]*browser{"no session": anonymous, "a customer's token as cookie": asCustomer} {
			if resp := send(b); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/admin/login") {
				t.Errorf("%s with %s: status %d to %q", rt.Pattern, name, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		if resp := send(anonymous, "Authorization", "Bearer "+customerToken); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("%s with a customer's bearer token: status %d", rt.Pattern, resp.StatusCode)
		}
	}
	// With the permissions, every page opens.
	everyone := s.browser()
	everyone.login(s.newStaff(customers.StaffPermissions...))
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		if method != http.MethodGet {
			continue
		}
		path = params.Replace(path)
		resp, body := everyone.get(path)
		if strings.HasSuffix(path, "/data-export") {
			// A download: the API's document, not a page.
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
				!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") || !strings.Contains(body, `"email":"owner@example.com"`) {
				t.Errorf("%s: status %d, %v: %.300s", path, resp.StatusCode, resp.Header, body)
			}
			continue
		}
		if want := http.StatusOK; path == "/admin/" {
			want = http.StatusSeeOther
			if resp.StatusCode != want {
				t.Errorf("%s: status %d", path, resp.StatusCode)
			}
		} else if resp.StatusCode != want || !strings.Contains(body, "</html>") {
			t.Errorf("%s: status %d: %.300s", path, resp.StatusCode, body)
		}
	}
	// Nothing of the customer changed, nor the group, webhook or token.
	var got customerJSON
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if got.Version != c.Version || !got.IsActive || got.Email != c.Email {
		t.Fatalf("the refused forms changed the customer: %+v", got)
	}
	var g groupJSON
	s.do(http.MethodGet, "/v1/customer-groups/"+group.ID, nil, &g)
	var wh struct {
		IsActive bool `json:"is_active"`
	}
	s.do(http.MethodGet, "/v1/webhooks/"+hook.ID, nil, &wh)
	if g.Name != "authorization" || !wh.IsActive {
		t.Fatalf("the refused forms changed the group (%+v) or the webhook (%+v)", g, wh)
	}
	if resp := s.doWith(token.secret, http.MethodGet, "/v1/customers", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the refused forms revoked the token: %d", resp.StatusCode)
	}
	var pr providerJSON
	s.do(http.MethodGet, "/v1/settings/oidc-providers/"+provider, nil, &pr)
	if pr.DisplayName != "authorization" || s.count(`SELECT count(*) FROM customer_identities WHERE id = $1`, identity) != 1 {
		t.Fatalf("the refused forms changed the identity provider (%+v) or removed the identity", pr)
	}
	if active, groups := s.staffState(member.id); !active || len(groups) != 1 {
		t.Fatalf("the refused forms changed the staff user: active %v, groups %v", active, groups)
	}
}

// staffState reads a staff user's row and groups from the database.
func (s *system) staffState(id string) (active bool, groups []string) {
	s.t.Helper()
	err := s.pool.QueryRow(context.Background(), `SELECT u.is_active,
		coalesce((SELECT array_agg(g.name ORDER BY g.name) FROM staff_group_members m JOIN permission_groups g ON g.id = m.group_id WHERE m.staff_id = u.id), '{}')
		FROM staff_users u WHERE u.id = $1`, id).Scan(&active, &groups)
	if err != nil {
		s.t.Fatal(err)
	}
	return active, groups
}

// Deactivating a staff user ends their sessions and refuses their logins;
// reactivating lets them in again; their groups change what their session
// may do from its next request.
func TestConsoleStaffDeactivateAndGroups(t *testing.T) {
	s := newSystem(t)
	admin, member := s.newStaff("MANAGE_STAFF"), s.newStaff("MANAGE_USERS")
	ab, mb := s.browser(), s.browser()
	ab.login(admin)
	mb.login(member)
	if resp, _ := mb.get("/admin/customers"); resp.StatusCode != http.StatusOK {
		t.Fatalf("member before: %d", resp.StatusCode)
	}
	sessions := func() (n int) {
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM staff_sessions WHERE staff_id = $1`, member.id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	if resp, body := ab.post("/admin/staff/"+member.id+"/active", url.Values{"active": {"false"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deactivate: %d %s", resp.StatusCode, body)
	}
	if active, _ := s.staffState(member.id); active || sessions() != 0 {
		t.Fatalf("after deactivation: active %v, %d sessions", active, sessions())
	}
	if resp, _ := mb.get("/admin/customers"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/admin/login") {
		t.Fatalf("the deactivated member's session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := s.browser().post("/admin/login", url.Values{"email": {member.email}, "password": {member.password}})
	if resp.StatusCode != http.StatusUnauthorized || sessions() != 0 {
		t.Fatalf("the deactivated member's login: %d, %d sessions: %s", resp.StatusCode, sessions(), body)
	}
	if _, body := ab.get("/admin/staff"); !strings.Contains(body, `Reactivate<span class="sr"> `+member.email) {
		t.Fatalf("the staff page does not offer to reactivate %s: %s", member.email, body)
	}
	// No one deactivates themselves, so someone is left to undo it.
	if resp, _ := ab.post("/admin/staff/"+admin.id+"/active", url.Values{"active": {"false"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("self-deactivation: %d", resp.StatusCode)
	}
	if active, _ := s.staffState(admin.id); !active {
		t.Fatal("the admin deactivated themselves")
	}

	if resp, body := ab.post("/admin/staff/"+member.id+"/active", url.Values{"active": {"true"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reactivate: %d %s", resp.StatusCode, body)
	}
	mb = s.browser()
	mb.login(member)

	// Groups: the member put in the admin's group only loses MANAGE_USERS
	// and gains MANAGE_STAFF on their next request.
	var adminGroup string
	if err := s.pool.QueryRow(context.Background(), `SELECT id::text FROM permission_groups WHERE name = $1`, "group of "+admin.email).Scan(&adminGroup); err != nil {
		t.Fatal(err)
	}
	if resp, body := ab.post("/admin/staff/"+member.id+"/groups", url.Values{"groups": {adminGroup, adminGroup}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("set groups: %d %s", resp.StatusCode, body)
	}
	if _, groups := s.staffState(member.id); !slices.Equal(groups, []string{"group of " + admin.email}) {
		t.Fatalf("groups after the change: %v", groups)
	}
	if resp, _ := mb.get("/admin/customers"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("customers after losing MANAGE_USERS: %d", resp.StatusCode)
	}
	if resp, _ := mb.get("/admin/staff"); resp.StatusCode != http.StatusOK {
		t.Fatalf("staff page after gaining MANAGE_STAFF: %d", resp.StatusCode)
	}
	// An unknown group changes nothing; no groups at all leaves none.
	if resp, _ := ab.post("/admin/staff/"+member.id+"/groups", url.Values{"groups": {"0193a5c0-0000-7000-8000-000000000000"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an unknown group: %d", resp.StatusCode)
	}
	if _, groups := s.staffState(member.id); len(groups) != 1 {
		t.Fatalf("an unknown group changed the groups: %v", groups)
	}
	if resp, _ := ab.post("/admin/staff/"+member.id+"/groups", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("no groups: %d", resp.StatusCode)
	}
	if _, groups := s.staffState(member.id); len(groups) != 0 {
		t.Fatalf("groups after none: %v", groups)
	}
	if resp, _ := ab.post("/admin/staff/0193a5c0-0000-7000-8000-000000000000/active", url.Values{"active": {"false"}}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown staff user: %d", resp.StatusCode)
	}
}

// activeManagers counts the active staff users holding MANAGE_STAFF, read
// from the database.
func (s *system) activeManagers() (n int) {
	s.t.Helper()
	err := s.pool.QueryRow(context.Background(), `SELECT count(DISTINCT u.id) FROM staff_users u
		JOIN staff_group_members m ON m.staff_id = u.id JOIN permission_groups g ON g.id = m.group_id
		WHERE u.is_active AND 'MANAGE_STAFF' = ANY(g.permissions)`).Scan(&n)
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}

// The last active staff user holding MANAGE_STAFF keeps it: neither
// deactivating them nor changing their groups may leave no one to manage
// staff, even when two managers take it from each other at once. The
// refusal is shown beside the row's field, with the groups as ticked.
func TestConsoleKeepsAStaffManager(t *testing.T) {
	s := newSystem(t)
	a, b := s.newStaff("MANAGE_STAFF"), s.newStaff("MANAGE_STAFF", "MANAGE_USERS")
	ab, bb := s.browser(), s.browser()
	ab.login(a)
	groupOf := func(who staffLogin) (id string) {
		if err := s.pool.QueryRow(context.Background(), `SELECT g.id::text FROM permission_groups g JOIN staff_group_members m ON m.group_id = g.id
			JOIN staff_users u ON u.id = m.staff_id WHERE u.email = $1`, who.email).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	usersOnly := groupOf(s.newStaff("MANAGE_USERS"))
	aGroup, bGroup := groupOf(a), groupOf(b)

	// With B deactivated, A is the last manager.
	if resp, body := ab.post("/admin/staff/"+b.id+"/active", url.Values{"active": {"false"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deactivate B: %d %s", resp.StatusCode, body)
	}
	resp, body := ab.post("/admin/staff/"+a.id+"/groups", url.Values{"groups": {usersOnly}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "last active staff user holding MANAGE_STAFF") ||
		!strings.Contains(body, `id="groups-`+a.id+`-error"`) {
		t.Fatalf("A taking MANAGE_STAFF from themselves: %d %s", resp.StatusCode, body)
	}
	// The row shows the groups as they were ticked, not as stored.
	ticked := `value="` + usersOnly + `" checked`
	if !strings.Contains(body, ticked) || strings.Contains(body, `value="`+aGroup+`" checked`) {
		t.Fatalf("the refused row does not show the groups as ticked (%s): %s", ticked, body)
	}
	if _, groups := s.staffState(a.id); !slices.Equal(groups, []string{"group of " + a.email}) || s.activeManagers() != 1 {
		t.Fatalf("after the refusal: A's groups %v, %d active managers", groups, s.activeManagers())
	}
	// Reactivated, B lets A go.
	if resp, body := ab.post("/admin/staff/"+b.id+"/active", url.Values{"active": {"true"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reactivate B: %d %s", resp.StatusCode, body)
	}
	bb.login(b)
	if resp, body := bb.post("/admin/staff/"+a.id+"/groups", url.Values{"groups": {usersOnly}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("B changing A's groups: %d %s", resp.StatusCode, body)
	}
	if s.activeManagers() != 1 {
		t.Fatalf("after B took A's: %d active managers", s.activeManagers())
	}
	if resp, body := bb.post("/admin/staff/"+a.id+"/groups", url.Values{"groups": {aGroup}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("B giving A's group back: %d %s", resp.StatusCode, body)
	}

	// Two managers taking it from each other at once: one may win, never
	// both. Each round starts with both active managers and fresh sessions.
	for round := range 12 {
		if _, err := s.pool.Exec(context.Background(), `UPDATE staff_users SET is_active = true WHERE id = ANY($1::uuid[])`, []string{a.id, b.id}); err != nil {
			t.Fatal(err)
		}
		for who, g := range map[string]string{a.id: aGroup, b.id: bGroup} {
			if _, err := s.pool.Exec(context.Background(), `INSERT INTO staff_group_members (staff_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, who, g); err != nil {
				t.Fatal(err)
			}
		}
		ab, bb = s.browser(), s.browser()
		ab.login(a)
		bb.login(b)
		form, path := url.Values{"active": {"false"}}, "/active"
		if round%2 == 1 {
			form, path = url.Values{"groups": {usersOnly}}, "/groups"
		}
		// What each answered: a change done redirects to the staff page;
		// one whose session the other's ended, to the login page.
		statuses := make(chan string, 2)
		start := make(chan struct{})
		for _, pair := range []struct {
			by     *browser
			target string
		}{{ab, b.id}, {bb, a.id}} {
			go func() {
				<-start
				req, _ := http.NewRequest(http.MethodPost, pair.by.base+"/admin/staff/"+pair.target+path, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", pair.by.base)
				resp, err := pair.by.client.Do(req)
				if err != nil {
					statuses <- err.Error()
					return
				}
				resp.Body.Close()
				statuses <- fmt.Sprint(resp.StatusCode, " ", resp.Header.Get("Location"))
			}()
		}
		close(start)
		first, second := <-statuses, <-statuses
		if n := s.activeManagers(); n < 1 {
			t.Fatalf("round %d (%s): no active manager left; the two answered %q and %q", round, path, first, second)
		}
		if done := "303 /admin/staff"; first == done && second == done {
			t.Fatalf("round %d (%s): both changes went through", round, path)
		}
	}
}

// The customer page pages through the customer's orders by the API's
// cursor (20 a page), and an order of an older page can be transferred.
func TestConsoleCustomerOrdersPages(t *testing.T) {
	s := newSystem(t)
	b := s.browser()
	b.login(s.newStaff("MANAGE_USERS", "MANAGE_ORDERS"))
	c := s.createCustomer(map[string]any{"email": "many-orders@example.com"})
	start := time.Now().Add(-48 * time.Hour)
	var numbers []string
	for i := range 21 {
		numbers = append(numbers, s.recordOrder(orderBody(&c.ID, start.Add(time.Duration(i)*time.Minute))).Number)
	}
	var first struct {
		Orders     []orderJSON `json:"orders"`
		NextCursor *string     `json:"next_cursor"`
	}
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/orders?limit=20", nil, &first)
	if first.NextCursor == nil || len(first.Orders) != 20 {
		t.Fatalf("the API's first page: %d orders, cursor %v", len(first.Orders), first.NextCursor)
	}
	page := "/admin/customers/" + c.ID
	older := page + "?orders=" + url.QueryEscape(*first.NextCursor) + "#orders"
	_, body := b.get(page)
	// The newest 20, the oldest (numbers[0]) on the next page.
	if link := `href="` + html.EscapeString(older) + `" rel="next"`; !strings.Contains(body, link) || strings.Contains(body, `rel="first"`) ||
		!strings.Contains(body, ">"+numbers[20]+"<") || strings.Contains(body, ">"+numbers[0]+"<") {
		t.Fatalf("the first page, want orders %s to %s and the link %s: %s", numbers[20], numbers[1], link, body)
	}
	resp, body := b.get(strings.TrimSuffix(older, "#orders"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, ">"+numbers[0]+"<") || strings.Contains(body, ">"+numbers[1]+"<") ||
		!strings.Contains(body, `href="`+page+`#orders" rel="first"`) || strings.Contains(body, `rel="next"`) {
		t.Fatalf("the second page, want order %s alone and a link to the newest: %d %s", numbers[0], resp.StatusCode, body)
	}
	var second struct{ Orders []orderJSON }
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/orders?cursor="+url.QueryEscape(*first.NextCursor), nil, &second)
	if len(second.Orders) != 1 {
		t.Fatalf("the API's second page: %+v", second.Orders)
	}
	if resp, body := b.get(page + "/orders/" + second.Orders[0].ID + "/transfer"); resp.StatusCode != http.StatusOK || !strings.Contains(body, numbers[0]) {
		t.Fatalf("the transfer page of an order on the second page: %d %.300s", resp.StatusCode, body)
	}
}

// The history names who made each change: a staff user by name and
// email, an app by its token's name, the customer as such.
func TestConsoleHistoryNamesActors(t *testing.T) {
	s := newSystem(t)
	who := s.newStaff("MANAGE_USERS")
	b := s.browser()
	b.login(who)
	crm := s.newToken("crm sync", "MANAGE_USERS")
	var c customerJSON
	if resp := s.doWith(crm.secret, http.MethodPost, "/v1/customers", map[string]any{"email": "named@example.com"}, &c); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create with the crm token: %d", resp.StatusCode)
	}
	if resp, body := b.post("/admin/customers/"+c.ID+"/notes", url.Values{"text": {"called"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("note: %d %s", resp.StatusCode, body)
	}
	// What the API's history says of them, by id.
	var history struct {
		Entries []struct {
			Type  string                    `json:"type"`
			Actor struct{ Type, ID string } `json:"actor"`
		} `json:"entries"`
	}
	s.do(http.MethodGet, "/v1/customers/"+c.ID+"/history", nil, &history)
	if len(history.Entries) != 2 || history.Entries[0].Actor.ID != who.id || history.Entries[1].Actor.ID != crm.id {
		t.Fatalf("the API's history: %+v (staff %s, token %s)", history.Entries, who.id, crm.id)
	}
	_, body := b.get("/admin/customers/" + c.ID)
	_, hist, _ := strings.Cut(body, `id="history"`)
	for _, want := range []string{"staff: Sam Staff &lt;" + who.email + "&gt;", "app crm sync"} {
		if !strings.Contains(hist, want) {
			t.Errorf("the history does not name %q: %s", want, hist)
		}
	}
	if strings.Contains(hist, "· user<") || strings.Contains(hist, "· service_account<") {
		t.Errorf("the history shows a bare actor type: %s", hist)
	}
}

// A merge the use case refuses is shown on the merge page, which keeps the
// chooser; a confirmed opt-in to email set in the console is pending until
// the customer confirms.
func TestConsoleMergeRefusalsAndConfirmedOptIn(t *testing.T) {
	s := newSystem(t)
	b := s.browser()
	b.login(s.newStaff("MANAGE_USERS"))
	c := s.createCustomer(map[string]any{"email": "refusals@example.com"})
	page := "/admin/customers/" + c.ID
	resp, body := b.post(page+"/merge", url.Values{"source_id": {c.ID}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "The merge did not happen") || !strings.Contains(body, `id="f-q"`) {
		t.Fatalf("merging a customer into itself: %d %s", resp.StatusCode, body)
	}
	resp, body = b.get(page + "/merge?source_id=0193a5c0-0000-7000-8000-000000000000")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `role="alert"`) || strings.Contains(body, `id="preview-h"`) {
		t.Fatalf("the preview of an unknown source: %d %s", resp.StatusCode, body)
	}
	if got := s.count(`SELECT count(*) FROM customers WHERE id = $1`, c.ID); got != 1 {
		t.Fatalf("the refused merge removed the customer: %d", got)
	}

	if resp, body := b.post(page+"/consent/email", url.Values{"state": {"subscribed"}, "opt_in_level": {"confirmed_opt_in"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed opt-in: %d %s", resp.StatusCode, body)
	}
	var got customerJSONWithConsent
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if got.Email.State != "pending" || got.Email.OptInLevel != "confirmed_opt_in" || got.Email.CollectedFrom != "staff" {
		t.Fatalf("email consent after a confirmed opt-in: %+v", got.Email)
	}
	if _, body := b.get(page); !strings.Contains(body, "Pending confirmation") {
		t.Fatalf("the page does not show the pending consent: %s", body)
	}
}
