package customers_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/customerbus/customerbus/services/customers"
)

// forTest is s with its helpers reporting to t, so a subtest (a parallel one
// included) fails itself instead of calling FailNow on its parent.
func (s *system) forTest(t *testing.T) *system {
	c := *s
	c.t = t
	return &c
}

// reply is an answer with its body read.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// request sends a request with the system's token. headers override the
// defaults; an empty "Authorization" sends no Authorization header at all.
func request(t *testing.T, s *system, method, path string, body any, headers map[string]string) reply {
	t.Helper()
	h := map[string]string{"Authorization": "Bearer " + s.token}
	maps.Copy(h, headers)
	if v, ok := h["Authorization"]; ok && v == "" {
		delete(h, "Authorization")
	}
	resp := s.forTest(t).send(method, path, body, nil, h)
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (r reply) decode(t *testing.T, out any) {
	t.Helper()
	if err := json.Unmarshal(r.body, out); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// expectStatus fails the test unless the answer has the status.
func (r reply) expectStatus(t *testing.T, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
}

// expectProblem checks that the answer is a problem+json with the status and,
// as its first error, the field and code.
func (r reply) expectProblem(t *testing.T, status int, field, code string) problemJSON {
	t.Helper()
	r.expectStatus(t, status)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problemJSON
	r.decode(t, &p)
	if p.Status != status || p.Type == "" || len(p.Errors) == 0 {
		t.Fatalf("problem %s: want status %d, a type and errors", r.body, status)
	}
	if e := p.Errors[0]; e.Field != field || e.Code != code || e.Message == "" {
		t.Errorf("errors[0] = %+v, want field %q code %q and a message", e, field, code)
	}
	return p
}

// listPage is the answer of GET /v1/customers.
type listPage struct {
	Customers      []customerJSON `json:"customers"`
	Count          *int           `json:"count"`
	CountPrecision *string        `json:"count_precision"`
	NextCursor     *string        `json:"next_cursor"`
}

func listCustomers(t *testing.T, s *system, query string) listPage {
	t.Helper()
	r := request(t, s, http.MethodGet, "/v1/customers?"+query, nil, nil)
	r.expectStatus(t, http.StatusOK)
	var p listPage
	r.decode(t, &p)
	return p
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// badInput is a request the API must refuse with a problem.
type badInput struct {
	name         string
	method, path string
	body         any
	contentType  string
	wantStatus   int
	wantField    string
	wantCode     string
}

func runBadInputs(t *testing.T, s *system, cases []badInput) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h map[string]string
			if tt.contentType != "" {
				h = map[string]string{"Content-Type": tt.contentType}
			}
			request(t, s, tt.method, tt.path, tt.body, h).expectProblem(t, tt.wantStatus, tt.wantField, tt.wantCode)
		})
	}
}

func TestBadInputGetsProblemWithStatusAndCode(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	const unknownID = "01970000-0000-7000-8000-000000000000"
	bigNote := strings.Repeat("x", 70<<10) // over the test server's 64 KiB body limit
	manyKeys := map[string]string{}
	for i := range 101 {
		manyKeys[fmt.Sprint("k", i)] = "v"
	}

	// Bad input that needs no customer to exist: afterwards the database must be empty.
	t.Run("on an empty database", func(t *testing.T) {
		runBadInputs(t, s, []badInput{
			// The body as a whole.
			{"malformed JSON", "POST", "/v1/customers", `{"email": `, "", 400, "", "malformed"},
			{"empty body", "POST", "/v1/customers", ``, "", 400, "", "malformed"},
			{"whitespace-only body", "POST", "/v1/customers", " \n\t", "", 400, "", "malformed"},
			{"JSON array body", "POST", "/v1/customers", `[{"email":"a@b.co"}]`, "", 400, "", "malformed"},
			{"JSON string body", "POST", "/v1/customers", `"a@b.co"`, "", 400, "", "malformed"},
			{"trailing garbage after the object", "POST", "/v1/customers", `{"email":"a@b.co"} x`, "", 400, "", "malformed"},
			{"second object after the first", "POST", "/v1/customers", `{"email":"a@b.co"}{"email":"c@d.co"}`, "", 400, "", "malformed"},
			{"body over the size limit", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "note": bigNote}, "", 413, "", "too_large"},
			{"form content type", "POST", "/v1/customers", `email=a@b.co`, "application/x-www-form-urlencoded", 415, "", "unsupported_media_type"},
			{"text/plain content type", "POST", "/v1/customers", `{"email":"a@b.co"}`, "text/plain", 415, "", "unsupported_media_type"},
			{"+json alone as the content type", "POST", "/v1/customers", `{"email":"a@b.co"}`, "+json", 415, "", "unsupported_media_type"},
			{"a +json type that is not application's", "POST", "/v1/customers", `{"email":"a@b.co"}`, "text/x+json", 415, "", "unsupported_media_type"},
			// Fields the decoder refuses.
			{"unknown field", "POST", "/v1/customers", `{"email":"a@b.co","age":3}`, "", 400, "age", "unknown_field"},
			{"field name in another case", "POST", "/v1/customers", `{"email":"a@b.co","EMAIL":"c@d.co"}`, "", 400, "EMAIL", "unknown_field"},
			{"nested field name in another case", "POST", "/v1/customers", `{"email":"a@b.co","addresses":[{"Country":"DE"}]}`, "", 400, "Country", "unknown_field"},
			{"wrong type: string for boolean", "POST", "/v1/customers", `{"email":"a@b.co","is_active":"yes"}`, "", 400, "is_active", "invalid_type"},
			{"wrong type: number for email", "POST", "/v1/customers", `{"email":5}`, "", 400, "email", "invalid_type"},
			{"wrong type: metadata value not a string", "POST", "/v1/customers", `{"email":"a@b.co","metadata":{"a":1}}`, "", 400, "metadata", "invalid_type"},
			// Field rules.
			{"missing email", "POST", "/v1/customers", `{"first_name":"Ann"}`, "", 400, "email", "required"},
			{"blank email", "POST", "/v1/customers", `{"email":"   "}`, "", 400, "email", "required"},
			{"invalid email", "POST", "/v1/customers", `{"email":"not-an-email"}`, "", 400, "email", "invalid"},
			{"email without a dot in the domain", "POST", "/v1/customers", `{"email":"a@localhost"}`, "", 400, "email", "invalid"},
			{"email with display name", "POST", "/v1/customers", `{"email":"Ann <ann@example.com>"}`, "", 400, "email", "invalid"},
			{"email with a domain that is no host name", "POST", "/v1/customers", `{"email":"r@e.}"}`, "", 400, "email", "invalid"},
			{"email too long", "POST", "/v1/customers", map[string]any{"email": strings.Repeat("a", 250) + "@b.co"}, "", 400, "email", "max_length"},
			{"invalid phone", "POST", "/v1/customers", `{"email":"a@b.co","phone":"12345"}`, "", 400, "phone", "invalid"},
			{"invalid language code", "POST", "/v1/customers", `{"email":"a@b.co","language_code":"not a language"}`, "", 400, "language_code", "invalid"},
			{"first name too long", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "first_name": strings.Repeat("n", 257)}, "", 400, "first_name", "max_length"},
			{"note too long", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "note": strings.Repeat("n", 10_001)}, "", 400, "note", "max_length"},
			{"external reference too long", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "external_reference": strings.Repeat("r", 257)}, "", 400, "external_reference", "max_length"},
			{"metadata value too long", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "metadata": map[string]string{"k": strings.Repeat("v", 4097)}}, "", 400, "metadata.k", "max_length"},
			{"metadata key too long", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "metadata": map[string]string{strings.Repeat("k", 257): "v"}}, "", 400, "metadata." + strings.Repeat("k", 257), "max_length"},
			{"blank metadata key", "POST", "/v1/customers", `{"email":"a@b.co","metadata":{" ":"v"}}`, "", 400, "metadata", "invalid"},
			{"101 metadata keys", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "metadata": manyKeys}, "", 400, "metadata", "max_items"},
			{"101 private metadata keys", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "private_metadata": manyKeys}, "", 400, "private_metadata", "max_items"},
			{"invalid UTF-8 in a string", "POST", "/v1/customers", "{\"email\":\"a@b.co\",\"first_name\":\"Ren\xe9\"}", "", 400, "first_name", "invalid"},
			{"NUL in a name", "POST", "/v1/customers", `{"email":"a@b.co","first_name":"a\u0000b"}`, "", 400, "first_name", "invalid"},
			{"NUL in a metadata value", "POST", "/v1/customers", `{"email":"a@b.co","metadata":{"k":"a\u0000"}}`, "", 400, "metadata", "invalid"},
			{"NUL in a private metadata key", "POST", "/v1/customers", `{"email":"a@b.co","private_metadata":{"k\u0000":"v"}}`, "", 400, "private_metadata", "invalid"},
			{"NUL in external reference", "POST", "/v1/customers", `{"email":"a@b.co","external_reference":"x\u0000"}`, "", 400, "external_reference", "invalid"},
			{"order placed before year 1 in UTC", "POST", "/v1/orders", `{"id":"` + unknownID + `","number":"R-1","email":"b@example.com","channel":"web",` +
				`"total":"1","currency":"EUR","status":"placed","placed_at":"0000-01-01T00:00:00+01:00"}`, "", 400, "placed_at", "invalid"},
			// Unknown and impossible ids.
			{"GET unknown id", "GET", "/v1/customers/" + unknownID, nil, "", 404, "id", "not_found"},
			{"GET id that is not a UUID", "GET", "/v1/customers/42", nil, "", 404, "id", "not_found"},
			{"PATCH unknown id", "PATCH", "/v1/customers/" + unknownID, `{"first_name":"X"}`, "", 404, "id", "not_found"},
			{"PATCH id that is not a UUID", "PATCH", "/v1/customers/not-a-uuid", `{"first_name":"X"}`, "", 404, "id", "not_found"},
			{"DELETE unknown id", "DELETE", "/v1/customers/" + unknownID, nil, "", 404, "id", "not_found"},
			{"DELETE id that is not a UUID", "DELETE", "/v1/customers/%20", nil, "", 404, "id", "not_found"},
			// List parameters.
			{"list limit 0", "GET", "/v1/customers?limit=0", nil, "", 400, "limit", "invalid"},
			{"list limit 101", "GET", "/v1/customers?limit=101", nil, "", 400, "limit", "invalid"},
			{"list negative limit", "GET", "/v1/customers?limit=-1", nil, "", 400, "limit", "invalid"},
			{"list limit not a number", "GET", "/v1/customers?limit=ten", nil, "", 400, "limit", "invalid"},
			{"list unknown order", "GET", "/v1/customers?order=phone", nil, "", 400, "order", "invalid"},
			{"list garbage cursor", "GET", "/v1/customers?cursor=zzz", nil, "", 400, "cursor", "invalid"},
			{"list unknown parameter", "GET", "/v1/customers?colour=red", nil, "", 400, "colour", "unknown_field"},
			{"list is_active not a boolean", "GET", "/v1/customers?is_active=yes", nil, "", 400, "is_active", "invalid"},
			{"list count not a boolean", "GET", "/v1/customers?count=maybe", nil, "", 400, "count", "invalid"},
			{"list count_limit 0", "GET", "/v1/customers?count_limit=0", nil, "", 400, "count_limit", "invalid"},
			{"list count_limit not a number", "GET", "/v1/customers?count_limit=all", nil, "", 400, "count_limit", "invalid"},
			{"list count_limit above 10,000,000", "GET", "/v1/customers?count_limit=10000001", nil, "", 400, "count_limit", "invalid"},
			{"list time not RFC 3339", "GET", "/v1/customers?created_after=yesterday", nil, "", 400, "created_after", "invalid"},
			{"list time with a one-digit hour", "GET", "/v1/customers?created_after=2025-01-01T9:00:00Z", nil, "", 400, "created_after", "invalid"},
			{"list q not UTF-8", "GET", "/v1/customers?q=%ff", nil, "", 400, "q", "invalid"},
			{"list q with NUL", "GET", "/v1/customers?q=%00", nil, "", 400, "q", "invalid"},
			{"list q too long", "GET", "/v1/customers?q=" + strings.Repeat("q", 257), nil, "", 400, "q", "max_length"},
			{"list email with NUL", "GET", "/v1/customers?email=a%00b", nil, "", 400, "email", "invalid"},
			{"list metadata filter without key", "GET", "/v1/customers?metadata[]=x", nil, "", 400, "metadata[]", "unknown_field"},
		})
	})
	// Never a half-written change: no customer and no event.
	if n := s.count("SELECT count(*) FROM customers"); n != 0 {
		t.Errorf("after refused creates: customers rows = %d, want 0", n)
	}
	if n := s.count("SELECT count(*) FROM outbox"); n != 0 {
		t.Errorf("after refused creates: outbox rows = %d, want 0", n)
	}

	// Bad input against existing customers: they and the outbox stay as they were.
	taken := s.createCustomer(map[string]any{"email": "taken@example.com", "external_reference": "ERP-1"})
	other := s.createCustomer(map[string]any{"email": "other@example.com", "first_name": "Olga"})
	t.Run("against existing customers", func(t *testing.T) {
		p := "/v1/customers/" + other.ID
		runBadInputs(t, s, []badInput{
			{"create with a taken email in other case", "POST", "/v1/customers", `{"email":"TAKEN@Example.com"}`, "", 409, "email", "unique"},
			{"create with a taken external reference", "POST", "/v1/customers", `{"email":"new@example.com","external_reference":"ERP-1"}`, "", 409, "external_reference", "unique"},
			{"create with a taken external reference, padded", "POST", "/v1/customers", `{"email":"new2@example.com","external_reference":" ERP-1 "}`, "", 409, "external_reference", "unique"},
			{"patch to a taken email in other case", "PATCH", p, `{"email":"Taken@example.COM"}`, "", 409, "email", "unique"},
			{"patch to a taken external reference", "PATCH", p, `{"external_reference":"ERP-1"}`, "", 409, "external_reference", "unique"},
			{"patch with one valid and one invalid field", "PATCH", p, `{"first_name":"Changed","phone":"12345"}`, "", 400, "phone", "invalid"},
			{"patch with invalid email", "PATCH", p, `{"email":"nope"}`, "", 400, "email", "invalid"},
			{"patch with blank email", "PATCH", p, `{"email":" "}`, "", 400, "email", "required"},
			{"patch with unknown field", "PATCH", p, `{"first_name":"Changed","id":"x"}`, "", 400, "id", "unknown_field"},
			{"patch with number for a nullable string", "PATCH", p, `{"phone":5}`, "", 400, "phone", "invalid_type"},
			{"patch with malformed JSON", "PATCH", p, `{"first_name":`, "", 400, "", "malformed"},
			{"patch with empty body", "PATCH", p, ``, "", 400, "", "malformed"},
			{"patch with JSON array body", "PATCH", p, `[]`, "", 400, "", "malformed"},
			{"patch with trailing garbage", "PATCH", p, `{"first_name":"Changed"},`, "", 400, "", "malformed"},
			{"patch with 101 metadata keys", "PATCH", p, map[string]any{"metadata": manyKeys}, "", 400, "metadata", "max_items"},
			{"patch with a metadata value too long", "PATCH", p, map[string]any{"metadata": map[string]string{"k": strings.Repeat("v", 4097)}}, "", 400, "metadata.k", "max_length"},
			{"patch with invalid UTF-8", "PATCH", p, "{\"last_name\":\"M\xfcller\"}", "", 400, "last_name", "invalid"},
			{"patch over the size limit", "PATCH", p, map[string]any{"note": bigNote}, "", 413, "", "too_large"},
			{"patch with a non-JSON content type", "PATCH", p, `{"first_name":"Changed"}`, "text/plain", 415, "", "unsupported_media_type"},
		})
	})
	if n := s.count("SELECT count(*) FROM customers"); n != 2 {
		t.Errorf("customers rows = %d, want the 2 created", n)
	}
	if n := s.count("SELECT count(*) FROM outbox"); n != 2 {
		t.Errorf("outbox rows = %d, want the 2 customer.created events", n)
	}
	for _, want := range []customerJSON{taken, other} {
		var got customerJSON
		request(t, s, http.MethodGet, "/v1/customers/"+want.ID, nil, nil).decode(t, &got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("refused requests changed the customer:\n got %+v\nwant %+v", got, want)
		}
	}
}

func TestAuthorizationOnEveryRoute(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	ctx := context.Background()
	withoutUsers, err := customers.CreateToken(ctx, s.pool, "orders only", false, []string{"MANAGE_ORDERS"})
	if err != nil {
		t.Fatal(err)
	}
	type caller struct {
		name          string
		authorization string // the header's value; "" sends none
		wantStatus    int    // 0: the route's success status
		wantCode      string
	}
	callers := []caller{
		{"no token", "", 401, "unauthorized"},
		{"empty bearer token", "Bearer ", 401, "unauthorized"},
		{"other scheme", "Basic dXNlcjpwYXNz", 401, "unauthorized"},
		{"malformed token", "Bearer not-a-token", 401, "unauthorized"},
		{"unknown well-formed token", "Bearer cbk_" + strings.Repeat("A", 43), 401, "unauthorized"},
		{"token too long", "Bearer cbk_" + strings.Repeat("A", 200), 401, "unauthorized"},
		{"token without MANAGE_USERS", "Bearer " + withoutUsers, 403, "forbidden"},
		{"good token, lower-case scheme", "bearer " + s.token, 0, ""},
		{"good token", "Bearer " + s.token, 0, ""},
	}

	// The five customer routes of the contract's "Staff and apps" section.
	routes := []struct {
		name        string
		method      string
		pattern     string
		body        func() any
		wantSuccess int
	}{
		{"POST /v1/customers creates", http.MethodPost, "/v1/customers", func() any {
			return map[string]any{"email": "new-" + randomSuffix() + "@example.com"}
		}, 201},
		{"GET /v1/customers lists", http.MethodGet, "/v1/customers", nil, 200},
		{"GET /v1/customers/{id} reads one", http.MethodGet, "/v1/customers/{id}", nil, 200},
		{"PATCH /v1/customers/{id} updates", http.MethodPatch, "/v1/customers/{id}", func() any {
			return map[string]any{"note": "note " + randomSuffix()}
		}, 200},
		{"DELETE /v1/customers/{id} deletes", http.MethodDelete, "/v1/customers/{id}", nil, 204},
	}
	for _, rt := range routes {
		if !slices.Contains(s.routes, customers.Route{Pattern: rt.method + " " + rt.pattern, Permission: "MANAGE_USERS"}) {
			t.Errorf("route table lacks %s %s with MANAGE_USERS: %v", rt.method, rt.pattern, s.routes)
		}
	}
	for _, rt := range routes {
		for _, c := range callers {
			t.Run(rt.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				// A customer of its own, so that a DELETE or PATCH that wrongly
				// passes shows, and no subtest disturbs another.
				target := s.forTest(t).createCustomer(map[string]any{"email": "target-" + randomSuffix() + "@example.com"})
				path := strings.ReplaceAll(rt.pattern, "{id}", target.ID)
				var body any
				if rt.body != nil {
					body = rt.body()
				}
				r := request(t, s, rt.method, path, body, map[string]string{"Authorization": c.authorization})
				if c.wantStatus != 0 {
					r.expectProblem(t, c.wantStatus, "Authorization", c.wantCode)
					if c.wantStatus == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("401 without a Bearer challenge: WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
					}
					// Refused: nothing changed.
					var got customerJSON
					request(t, s, http.MethodGet, "/v1/customers/"+target.ID, nil, nil).decode(t, &got)
					if !reflect.DeepEqual(got, target) {
						t.Errorf("a refused %s changed the customer: %+v", rt.method, got)
					}
					if rt.method == http.MethodPost {
						// Parallel subtests create their own targets, so only
						// an address of this request may not appear.
						email := body.(map[string]any)["email"]
						if n := s.forTest(t).count("SELECT count(*) FROM customers WHERE email = $1", email); n != 0 {
							t.Errorf("a refused create stored the customer")
						}
					}
					return
				}
				r.expectStatus(t, rt.wantSuccess)
				switch {
				case rt.method == http.MethodDelete:
					request(t, s, http.MethodGet, path, nil, nil).expectProblem(t, 404, "id", "not_found")
				case rt.method == http.MethodPatch:
					var got customerJSON
					r.decode(t, &got)
					if got.Version != 2 || got.Note != body.(map[string]any)["note"] {
						t.Errorf("patched customer %+v, want version 2 and the new note", got)
					}
				case rt.method == http.MethodPost:
					var got customerJSON
					r.decode(t, &got)
					if got.Email != body.(map[string]any)["email"] || s.forTest(t).count("SELECT count(*) FROM customers WHERE id = $1", got.ID) != 1 {
						t.Errorf("create answered %s but stored no such customer", r.body)
					}
				}
			})
		}
	}

	// Every route the service lists, also those added after this test was
	// written, refuses callers without a token or without its permission.
	t.Run("route table", func(t *testing.T) {
		if len(s.routes) < len(routes) {
			t.Fatalf("the service lists %d routes", len(s.routes))
		}
		for _, rt := range s.routes {
			method, pattern, _ := strings.Cut(rt.Pattern, " ")
			t.Run(rt.Pattern, func(t *testing.T) {
				t.Parallel()
				st := s.forTest(t)
				switch rt.Permission {
				case "PUBLIC":
					// Sign-up, login and the emails' links need no token.
					path, body, _ := storeRouteCall(st, method, pattern)
					if r := st.public(method, path, body); r.status < 200 || r.status >= 300 {
						t.Errorf("without a token: status %d (%s), want success", r.status, r.body)
					}
					return
				case "CUSTOMER":
					path, body, token := storeRouteCall(st, method, pattern)
					refuse(t, s, method, path, body, []refusal{
						{"no token", "", 401},
						{"malformed token", "Bearer not-a-token", 401},
						{"unknown customer token", "Bearer cbc_" + strings.Repeat("B", 43), 401},
						{"staff token with every permission", "Bearer " + s.token, 403},
					})
					if r := st.as(token, method, path, body); r.status < 200 || r.status >= 300 {
						t.Errorf("the customer's token: status %d (%s), want success", r.status, r.body)
					}
					return
				}
				path, body := routeCall(st, method, pattern)
				var lacking string
				for _, p := range customers.Permissions {
					if p != rt.Permission {
						tok, err := customers.CreateToken(ctx, s.pool, "lacking", false, []string{p})
						if err != nil {
							t.Fatal(err)
						}
						lacking = tok
						break
					}
				}
				refuse(t, s, method, path, body, []refusal{
					{"no token", "", 401},
					{"malformed token", "Bearer not-a-token", 401},
					{"unknown token", "Bearer cbk_" + strings.Repeat("B", 43), 401},
					{"token without " + rt.Permission, "Bearer " + lacking, 403},
					{"a customer's token", "Bearer " + st.newShopper().AccessToken, 403},
				})
				if r := request(t, s, method, path, body, nil); r.status < 200 || r.status >= 300 {
					t.Errorf("token with %s: status %d (%s), want success", rt.Permission, r.status, r.body)
				}
			})
		}
	})
}

// refusal is a caller a route must turn away.
type refusal struct {
	name, authorization string
	want                int
}

func refuse(t *testing.T, s *system, method, path string, body any, callers []refusal) {
	t.Helper()
	for _, c := range callers {
		r := request(t, s, method, path, body, map[string]string{"Authorization": c.authorization})
		if r.status != c.want {
			t.Errorf("%s: status %d, want %d", c.name, r.status, c.want)
		}
	}
}

func TestCreateNormalisesAndDefaults(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	tests := []struct {
		name        string
		body        map[string]any
		contentType string
		want        map[string]any // JSON values of the answer, as encoding/json decodes them
	}{
		{"email is trimmed and lower-cased",
			map[string]any{"email": "  Ann.Lee@Example.COM "}, "",
			map[string]any{"email": "ann.lee@example.com"}},
		{"phone with spaces becomes E.164",
			map[string]any{"email": "p1@example.com", "phone": "+49 30 1234567"}, "",
			map[string]any{"phone": "+49301234567"}},
		{"phone with punctuation becomes E.164",
			map[string]any{"email": "p2@example.com", "phone": "+1 (415) 555-0100"}, "",
			map[string]any{"phone": "+14155550100"}},
		{"blank phone is no phone",
			map[string]any{"email": "p3@example.com", "phone": "   "}, "",
			map[string]any{"phone": nil}},
		{"language code defaults to en",
			map[string]any{"email": "l1@example.com"}, "",
			map[string]any{"language_code": "en"}},
		{"pt-br becomes pt-BR",
			map[string]any{"email": "l2@example.com", "language_code": "pt-br"}, "",
			map[string]any{"language_code": "pt-BR"}},
		{"EN-us becomes en-US",
			map[string]any{"email": "l3@example.com", "language_code": " EN-us "}, "",
			map[string]any{"language_code": "en-US"}},
		{"defaults of a customer given only an email",
			map[string]any{"email": "d@example.com"}, "",
			map[string]any{
				"first_name": "", "last_name": "", "company_name": "", "note": "", "phone": nil,
				"is_active": true, "has_account": false, "is_verified": false, "version": float64(1),
				"language_code": "en", "external_reference": nil,
				"metadata": map[string]any{}, "private_metadata": map[string]any{},
			}},
		{"is_active false is kept",
			map[string]any{"email": "inactive@example.com", "is_active": false}, "",
			map[string]any{"is_active": false}},
		{"names, company, note and external reference are trimmed",
			map[string]any{"email": "t@example.com", "first_name": " Ann ", "last_name": "\tLee\n", "company_name": " ACME ", "note": " hi ", "external_reference": " ERP-7 "}, "",
			map[string]any{"first_name": "Ann", "last_name": "Lee", "company_name": "ACME", "note": "hi", "external_reference": "ERP-7"}},
		{"blank external reference is none",
			map[string]any{"email": "r@example.com", "external_reference": "  "}, "",
			map[string]any{"external_reference": nil}},
		{"metadata and private metadata are returned to staff",
			map[string]any{"email": "m@example.com", "metadata": map[string]string{"a": "1"}, "private_metadata": map[string]string{"crm": "7"}}, "",
			map[string]any{"metadata": map[string]any{"a": "1"}, "private_metadata": map[string]any{"crm": "7"}}},
		{"length limits count characters, not bytes",
			map[string]any{"email": "long@example.com", "first_name": strings.Repeat("é", 256)}, "",
			map[string]any{"first_name": strings.Repeat("é", 256)}},
		{"JSON content type with charset is accepted",
			map[string]any{"email": "charset@example.com"}, "application/json; charset=utf-8",
			map[string]any{"email": "charset@example.com"}},
		{"no content type is read as JSON",
			map[string]any{"email": "noct@example.com"}, "-",
			map[string]any{"email": "noct@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h map[string]string
			switch tt.contentType {
			case "":
			case "-":
				h = map[string]string{"Content-Type": ""}
			default:
				h = map[string]string{"Content-Type": tt.contentType}
			}
			start := time.Now()
			r := request(t, s, http.MethodPost, "/v1/customers", tt.body, h)
			r.expectStatus(t, http.StatusCreated)
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var created map[string]any
			r.decode(t, &created)
			for k, want := range tt.want {
				if got, ok := created[k]; !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v (present %v), want %#v", k, got, ok, want)
				}
			}
			var c customerJSON
			r.decode(t, &c)
			if loc := r.header.Get("Location"); loc != "/v1/customers/"+c.ID {
				t.Errorf("Location %q, want /v1/customers/%s", loc, c.ID)
			}
			if c.Version != 1 || !c.CreatedAt.Equal(c.UpdatedAt) || c.CreatedAt.Location() != time.UTC ||
				c.CreatedAt.Before(start.Add(-time.Second)) || c.CreatedAt.After(time.Now().Add(time.Second)) {
				t.Errorf("version %d, created_at %v, updated_at %v: want version 1 and both now, in UTC", c.Version, c.CreatedAt, c.UpdatedAt)
			}
			// GET and the list give the very same resource.
			var got map[string]any
			request(t, s, http.MethodGet, "/v1/customers/"+c.ID, nil, nil).decode(t, &got)
			if !reflect.DeepEqual(got, created) {
				t.Errorf("GET returned\n%v\nwant\n%v", got, created)
			}
			var page struct {
				Customers []map[string]any `json:"customers"`
			}
			request(t, s, http.MethodGet, "/v1/customers?email="+url.QueryEscape(c.Email), nil, nil).decode(t, &page)
			if len(page.Customers) != 1 || !reflect.DeepEqual(page.Customers[0], created) {
				t.Errorf("list by email returned %v, want [%v]", page.Customers, created)
			}
		})
	}
}

func TestPatchChangesOnlyGivenFields(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{
		"email": "p@example.com", "first_name": "Pat", "last_name": "Old", "company_name": "Co",
		"phone": "+14155550100", "external_reference": "X1", "note": "n", "language_code": "de",
		"metadata": map[string]string{"a": "1"}, "private_metadata": map[string]string{"p": "1"},
	})
	other := s.createCustomer(map[string]any{"email": "o@example.com", "external_reference": "X2"})
	path := "/v1/customers/" + c.ID

	// The customer's JSON fields as they are expected after each step; steps apply in order.
	want := map[string]any{
		"email": "p@example.com", "first_name": "Pat", "last_name": "Old", "company_name": "Co",
		"phone": "+14155550100", "external_reference": "X1", "note": "n", "language_code": "de",
		"is_active": true, "metadata": map[string]any{"a": "1"}, "private_metadata": map[string]any{"p": "1"},
	}
	steps := []struct {
		name        string
		body        any
		wantStatus  int
		wantField   string // of the problem, when wantStatus is not 200
		wantCode    string
		changes     map[string]any // fields that change in want
		wantVersion int64
	}{
		{"last_name alone changes only last_name", `{"last_name":"X"}`, 200, "", "",
			map[string]any{"last_name": "X"}, 2},
		{"phone null clears the phone", `{"phone":null}`, 200, "", "",
			map[string]any{"phone": nil}, 3},
		{"external_reference null clears it", `{"external_reference":null}`, 200, "", "",
			map[string]any{"external_reference": nil}, 4},
		{"the current values change nothing", `{"first_name":"Pat","last_name":"X","phone":null,"metadata":{"a":"1"}}`, 200, "", "",
			nil, 4},
		{"values that normalise to the current ones change nothing", `{"email":"  P@Example.COM ","first_name":" Pat ","language_code":"DE"}`, 200, "", "",
			nil, 4},
		{"an empty object changes nothing", `{}`, 200, "", "",
			nil, 4},
		{"two fields in one patch raise the version once", `{"first_name":"Pia","is_active":false}`, 200, "", "",
			map[string]any{"first_name": "Pia", "is_active": false}, 5},
		{"a phone set again is normalised", `{"phone":"+49 30 1234567"}`, 200, "", "",
			map[string]any{"phone": "+49301234567"}, 6},
		{"another customer's email in other case is refused", `{"email":"O@Example.com"}`, 409, "email", "unique",
			nil, 6},
		{"another customer's external reference is refused", `{"external_reference":"X2","first_name":"Refused"}`, 409, "external_reference", "unique",
			nil, 6},
		{"an invalid field refuses the valid ones too", `{"first_name":"Zed","phone":"123"}`, 400, "phone", "invalid",
			nil, 6},
		{"a free email is normalised", `{"email":"New@Example.com"}`, 200, "", "",
			map[string]any{"email": "new@example.com"}, 7},
		{"the old email is free for another customer afterwards", nil, 0, "", "", nil, 7},
		{"metadata is replaced as a whole", `{"metadata":{"b":"2"}}`, 200, "", "",
			map[string]any{"metadata": map[string]any{"b": "2"}}, 8},
		{"external_reference set again", `{"external_reference":" X9 "}`, 200, "", "",
			map[string]any{"external_reference": "X9"}, 9},
		{"blank external_reference clears it like null", `{"external_reference":"  "}`, 200, "", "",
			map[string]any{"external_reference": nil}, 10},
	}
	var last map[string]any
	request(t, s, http.MethodGet, path, nil, nil).decode(t, &last)
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.body == nil {
				// Not a patch: the address given up in the step before can be taken.
				s.forTest(t).createCustomer(map[string]any{"email": "P@example.com"})
				return
			}
			r := request(t, s, http.MethodPatch, path, st.body, nil)
			if st.wantStatus == 200 {
				r.expectStatus(t, 200)
			} else {
				r.expectProblem(t, st.wantStatus, st.wantField, st.wantCode)
			}
			maps.Copy(want, st.changes)
			var got map[string]any
			request(t, s, http.MethodGet, path, nil, nil).decode(t, &got)
			for k, v := range want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			if got["version"] != float64(st.wantVersion) {
				t.Errorf("version %v, want %d", got["version"], st.wantVersion)
			}
			if bumped := got["version"] != last["version"]; bumped != (got["updated_at"] != last["updated_at"]) {
				t.Errorf("updated_at %v -> %v while version %v -> %v: they must move together", last["updated_at"], got["updated_at"], last["version"], got["version"])
			}
			if got["created_at"] != last["created_at"] || got["id"] != c.ID {
				t.Errorf("id or created_at changed: %v", got)
			}
			if st.wantStatus == 200 {
				var answered map[string]any
				r.decode(t, &answered)
				if !reflect.DeepEqual(answered, got) {
					t.Errorf("PATCH answered\n%v\nbut GET reads\n%v", answered, got)
				}
			}
			// One event per version: the create and each effective change, nothing for the rest.
			if n := s.forTest(t).count("SELECT count(*) FROM outbox WHERE partition_key = $1", c.ID); n != int(st.wantVersion) {
				t.Errorf("outbox holds %d events of the customer, want %d", n, st.wantVersion)
			}
			last = got
		})
	}
	var o customerJSON
	request(t, s, http.MethodGet, "/v1/customers/"+other.ID, nil, nil).decode(t, &o)
	if !reflect.DeepEqual(o, other) {
		t.Errorf("the other customer changed: %+v, want %+v", o, other)
	}
}

func TestListPaginatesEveryOrder(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	const total = 25
	var created []customerJSON
	for i := range total {
		// Email order unrelated to creation order (7 and 25 are coprime); some
		// given in upper case, so the order must use the stored, normalised email.
		email := fmt.Sprintf("u%02d@example.com", (i*7)%total)
		if i%2 == 0 {
			email = strings.ToUpper(email)
		}
		// Last names repeat (five of each), so ties must be broken by id.
		lastName := fmt.Sprintf("Name%d", (i*3)%5)
		created = append(created, s.createCustomer(map[string]any{"email": email, "last_name": lastName, "is_active": i%4 != 0}))
	}
	byCreated := slices.Clone(created)
	sort.Slice(byCreated, func(i, j int) bool {
		a, b := byCreated[i], byCreated[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	if !slices.EqualFunc(byCreated, created, func(a, b customerJSON) bool { return a.ID == b.ID }) {
		t.Error("customers created one after the other are not in created_at order")
	}
	byEmail := slices.Clone(created)
	sort.Slice(byEmail, func(i, j int) bool { return byEmail[i].Email < byEmail[j].Email })
	desc := func(cs []customerJSON) []customerJSON { out := slices.Clone(cs); slices.Reverse(out); return out }
	byLastName := slices.Clone(created)
	sort.Slice(byLastName, func(i, j int) bool {
		a, b := byLastName[i], byLastName[j]
		return a.LastName < b.LastName || a.LastName == b.LastName && a.ID < b.ID
	})

	// pages lists every page of a query, checking what every page must satisfy.
	pages := func(t *testing.T, query url.Values, wantCount int) (ids []string, sizes []int, all []customerJSON) {
		t.Helper()
		cursor := ""
		for page := 1; ; page++ {
			q := maps.Clone(query)
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			p := listCustomers(t, s, q.Encode())
			if p.Count == nil || *p.Count != wantCount {
				t.Fatalf("page %d: count %v, want %d", page, p.Count, wantCount)
			}
			sizes = append(sizes, len(p.Customers))
			for _, c := range p.Customers {
				ids = append(ids, c.ID)
				all = append(all, c)
			}
			if p.NextCursor == nil {
				return ids, sizes, all
			}
			if *p.NextCursor == "" || page > total {
				t.Fatalf("page %d: next_cursor %q", page, *p.NextCursor)
			}
			cursor = *p.NextCursor
		}
	}

	t.Run("every order", func(t *testing.T) {
		for _, tt := range []struct {
			order string
			want  []customerJSON
		}{
			{"", desc(byCreated)}, // the default: newest first
			{"-created_at", desc(byCreated)},
			{"created_at", byCreated},
			{"email", byEmail},
			{"-email", desc(byEmail)},
			{"last_name", byLastName},
			{"-last_name", desc(byLastName)},
		} {
			name := tt.order
			if name == "" {
				name = "default order"
			}
			t.Run(name+" pages of 7", func(t *testing.T) {
				t.Parallel()
				q := url.Values{"limit": {"7"}}
				if tt.order != "" {
					q.Set("order", tt.order)
				}
				ids, sizes, all := pages(t, q, total)
				if !slices.Equal(sizes, []int{7, 7, 7, 4}) {
					t.Errorf("page sizes %v, want [7 7 7 4]", sizes)
				}
				seen := map[string]bool{}
				for _, id := range ids {
					if seen[id] {
						t.Errorf("customer %s on two pages", id)
					}
					seen[id] = true
				}
				if len(seen) != total {
					t.Errorf("saw %d distinct customers, want %d", len(seen), total)
				}
				wantIDs := make([]string, len(tt.want))
				for i, c := range tt.want {
					wantIDs[i] = c.ID
				}
				if !slices.Equal(ids, wantIDs) {
					t.Errorf("ids in order\n%v\nwant\n%v", ids, wantIDs)
				}
				// The order itself, read from the data.
				for i := 1; i < len(all); i++ {
					a, b := all[i-1], all[i]
					var ok bool
					switch tt.order {
					case "email":
						ok = a.Email < b.Email
					case "-email":
						ok = a.Email > b.Email
					case "last_name":
						ok = a.LastName < b.LastName || a.LastName == b.LastName && a.ID < b.ID
					case "-last_name":
						ok = a.LastName > b.LastName || a.LastName == b.LastName && a.ID > b.ID
					case "created_at":
						ok = a.CreatedAt.Before(b.CreatedAt) || a.CreatedAt.Equal(b.CreatedAt) && a.ID < b.ID
					default:
						ok = a.CreatedAt.After(b.CreatedAt) || a.CreatedAt.Equal(b.CreatedAt) && a.ID > b.ID
					}
					if !ok {
						t.Errorf("positions %d and %d out of %q order: %s %v, %s %v", i-1, i, tt.order, a.Email, a.CreatedAt, b.Email, b.CreatedAt)
					}
				}
			})
		}
		t.Run("a limit dividing the total leaves no empty last page", func(t *testing.T) {
			t.Parallel()
			_, sizes, _ := pages(t, url.Values{"limit": {"5"}, "order": {"email"}}, total)
			if !slices.Equal(sizes, []int{5, 5, 5, 5, 5}) {
				t.Errorf("page sizes %v, want five pages of 5", sizes)
			}
		})
		t.Run("count_limit caps the count and says so", func(t *testing.T) {
			t.Parallel()
			for _, tt := range []struct {
				query         string
				wantCount     int
				wantPrecision string
			}{
				{"limit=5&count_limit=10", 10, "at_least"},
				{"limit=5&count_limit=25", total, "exact"},            // exactly at the limit
				{"limit=5&count_limit=24", 24, "at_least"},            // one short of it
				{"limit=5", total, "exact"},                           // the default limit, 1,000
				{"limit=30&count_limit=3", 3, "at_least"},             // everything on the page, counted from it
				{"limit=30&count_limit=25", total, "exact"},           // likewise
				{"limit=5&is_active=false&count_limit=7", 7, "exact"}, // 7 of the 25 are inactive
				{"limit=5&is_active=false&count_limit=6", 6, "at_least"},
			} {
				p := listCustomers(t, s, tt.query)
				if p.Count == nil || *p.Count != tt.wantCount || p.CountPrecision == nil || *p.CountPrecision != tt.wantPrecision {
					t.Errorf("%s: count %v %v, want %d %s", tt.query, deref(p.Count), deref(p.CountPrecision), tt.wantCount, tt.wantPrecision)
				}
			}
			// A later page counts the same as the first.
			first := listCustomers(t, s, "limit=5&count_limit=10")
			next := listCustomers(t, s, "limit=5&count_limit=10&cursor="+url.QueryEscape(*first.NextCursor))
			if next.Count == nil || *next.Count != 10 || *next.CountPrecision != "at_least" {
				t.Errorf("second page: count %v %v, want 10 at_least", deref(next.Count), deref(next.CountPrecision))
			}
		})
		t.Run("limit 100 gives everything on one page", func(t *testing.T) {
			t.Parallel()
			_, sizes, _ := pages(t, url.Values{"limit": {"100"}}, total)
			if !slices.Equal(sizes, []int{total}) {
				t.Errorf("page sizes %v", sizes)
			}
		})
		t.Run("the default limit is 20", func(t *testing.T) {
			t.Parallel()
			p := listCustomers(t, s, "")
			if len(p.Customers) != 20 || p.NextCursor == nil {
				t.Errorf("%d customers, next_cursor %v; want 20 and a cursor", len(p.Customers), p.NextCursor)
			}
		})
		t.Run("pages of a filter hold only matches and count the matches", func(t *testing.T) {
			t.Parallel()
			_, sizes, all := pages(t, url.Values{"limit": {"2"}, "is_active": {"false"}, "order": {"-email"}}, 7)
			if !slices.Equal(sizes, []int{2, 2, 2, 1}) {
				t.Errorf("page sizes %v, want [2 2 2 1]", sizes)
			}
			for _, c := range all {
				if c.IsActive {
					t.Errorf("active customer %s in is_active=false", c.Email)
				}
			}
		})
		t.Run("count=false pages without a count", func(t *testing.T) {
			t.Parallel()
			var raw map[string]json.RawMessage
			r := request(t, s, http.MethodGet, "/v1/customers?count=false&limit=3", nil, nil)
			r.expectStatus(t, 200)
			r.decode(t, &raw)
			if string(raw["count"]) != "null" {
				t.Errorf("count %s, want null", raw["count"])
			}
			var p listPage
			r.decode(t, &p)
			if len(p.Customers) != 3 || p.NextCursor == nil {
				t.Fatalf("%d customers, next_cursor %v", len(p.Customers), p.NextCursor)
			}
			next := listCustomers(t, s, "count=false&limit=3&cursor="+url.QueryEscape(*p.NextCursor))
			if len(next.Customers) != 3 || next.Customers[0].ID != desc(byCreated)[3].ID {
				t.Errorf("second page %v", next.Customers)
			}
		})
		t.Run("a default-order cursor works with -created_at", func(t *testing.T) {
			t.Parallel()
			p := listCustomers(t, s, "limit=3")
			next := listCustomers(t, s, "limit=3&order=-created_at&cursor="+url.QueryEscape(*p.NextCursor))
			if len(next.Customers) != 3 || next.Customers[0].ID != desc(byCreated)[3].ID {
				t.Errorf("second page %v", next.Customers)
			}
		})
	})

	t.Run("refused cursors", func(t *testing.T) {
		orders := []string{"-created_at", "created_at", "email", "-email"}
		for _, from := range orders {
			p := listCustomers(t, s, "limit=2&order="+url.QueryEscape(from))
			if p.NextCursor == nil {
				t.Fatalf("order %s: no next_cursor", from)
			}
			for _, to := range orders {
				if to == from {
					continue
				}
				t.Run("cursor of "+from+" used with "+to, func(t *testing.T) {
					t.Parallel()
					request(t, s, http.MethodGet, "/v1/customers?order="+url.QueryEscape(to)+"&cursor="+url.QueryEscape(*p.NextCursor), nil, nil).
						expectProblem(t, 400, "cursor", "invalid")
				})
			}
		}
		b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for name, cursor := range map[string]string{
			"garbage":                   "zzz!",
			"base64 of not JSON":        b64("hello"),
			"base64 of an empty object": b64("{}"),
			"id not a UUID":             b64(`{"o":"-created_at","id":"42","t":"2025-01-01T00:00:00Z"}`),
			"padded base64":             base64.URLEncoding.EncodeToString([]byte(`{"o":"-created_at"}`)),
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				request(t, s, http.MethodGet, "/v1/customers?cursor="+url.QueryEscape(cursor), nil, nil).
					expectProblem(t, 400, "cursor", "invalid")
			})
		}
	})

	// Keyset pages stay exact when customers are added between pages, which
	// offset pagination would not.
	t.Run("a customer created between pages is neither repeated nor makes one skipped", func(t *testing.T) {
		first := listCustomers(t, s, "limit=10&order=-created_at")
		s.forTest(t).createCustomer(map[string]any{"email": "late@example.com"})
		rest, _, _ := pages(t, url.Values{"limit": {"10"}, "order": {"-created_at"}, "cursor": {*first.NextCursor}}, total+1)
		var ids []string
		for _, c := range first.Customers {
			ids = append(ids, c.ID)
		}
		ids = append(ids, rest...)
		var want []string
		for _, c := range desc(byCreated) {
			want = append(want, c.ID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("paged\n%v\nwant\n%v", ids, want)
		}
	})
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.createCustomer(map[string]any{"email": "maria@shop.example", "last_name": "Gonzalez", "metadata": map[string]string{"tier": "gold", "region": "eu"}})
	john := s.createCustomer(map[string]any{"email": "john@other.example", "last_name": "Smith", "is_active": false})
	s.createCustomer(map[string]any{"email": "rate@other.example", "first_name": "100%"})
	s.createCustomer(map[string]any{"email": "jose@acme.example", "first_name": "José", "last_name": "Müller", "company_name": "Café Zürich GmbH", "phone": "+41 44 668 18 00", "metadata": map[string]string{"tier": "gold"}})
	s.createCustomer(map[string]any{"email": "us@other.example", "first_name": "Under_Score"})
	all := []string{"john@other.example", "jose@acme.example", "maria@shop.example", "rate@other.example", "us@other.example"}
	at := url.QueryEscape(john.CreatedAt.Format(time.RFC3339Nano))
	tests := []struct {
		name       string
		query      string
		wantEmails []string
		wantCount  int // -1: len(wantEmails)
	}{
		{"q matches part of an email, ignoring case", "q=SHOP.EX", []string{"maria@shop.example"}, -1},
		{"q matches part of a last name, ignoring case", "q=onZAL", []string{"maria@shop.example"}, -1},
		{"q matches across emails", "q=other.exa", []string{"john@other.example", "rate@other.example", "us@other.example"}, -1},
		{"q matches across the @ of an email", "q=ria%40shop.e", []string{"maria@shop.example"}, -1},
		// The search index spells . and @ as letters (customer_search_key); a
		// letter typed in their place must still not match them.
		{"q's letters do not match an email's dots", "q=shopqexample", nil, -1},
		{"q's letters do not match an email's @", "q=mariaxshop", nil, -1},
		{"q ignores accents in the data", "q=muller", []string{"jose@acme.example"}, -1},
		{"q ignores accents in the query", "q=JOS%C3%89", []string{"jose@acme.example"}, -1},
		{"q matches the company", "q=cafe+zur", []string{"jose@acme.example"}, -1},
		{"q matches the phone in E.164", "q=%2B41446", []string{"jose@acme.example"}, -1},
		{"q matches first and last name together", "q=jose+muller", []string{"jose@acme.example"}, -1},
		{"q=% matches only a literal %", "q=%25", []string{"rate@other.example"}, -1},
		{"q=_ matches only a literal _", "q=_", []string{"us@other.example"}, -1},
		{"_ inside q is no wildcard", "q=a_s", nil, -1}, // a wildcard would find maria@shop
		// Folding turns full-width signs into % and _, which must not become
		// wildcards either.
		{"a full-width ％ in q matches only a literal %", "q=%EF%BC%85", []string{"rate@other.example"}, -1},
		{"a full-width ＿ in q matches only a literal _", "q=%EF%BC%BF", []string{"us@other.example"}, -1},
		{"a backslash in q matches literally", "q=%5C", nil, -1},
		{"blank q does not filter", "q=+++", all, -1},
		{"q of 200 accented letters is within the 256-character limit", "q=" + strings.Repeat("%C3%A9", 200), nil, -1},
		{"email is exact and its case does not matter", "email=John@Other.example", []string{"john@other.example"}, -1},
		{"email is trimmed", "email=+john@other.example+", []string{"john@other.example"}, -1},
		{"email is not a substring search", "email=john@other", nil, -1},
		{"is_active=false", "is_active=false", []string{"john@other.example"}, -1},
		{"is_active=true with q", "is_active=true&q=example", []string{"jose@acme.example", "maria@shop.example", "rate@other.example", "us@other.example"}, -1},
		{"metadata pair", "metadata[tier]=gold", []string{"jose@acme.example", "maria@shop.example"}, -1},
		{"metadata pairs all must match", "metadata[tier]=gold&metadata[region]=eu", []string{"maria@shop.example"}, -1},
		{"metadata pair nobody has", "metadata[tier]=silver", nil, -1},
		{"has_account=true", "has_account=true", nil, -1},
		{"is_verified=false and has_account=false", "is_verified=false&has_account=false", all, -1},
		{"created_after", "created_after=" + at, []string{"jose@acme.example", "rate@other.example", "us@other.example"}, -1},
		{"created_before", "created_before=" + at, []string{"maria@shop.example"}, -1},
		{"updated_after with q", "updated_after=" + at + "&q=o", []string{"jose@acme.example", "rate@other.example", "us@other.example"}, -1},
		{"count is of all matches, not of the page", "q=example&limit=1", []string{"john@other.example"}, 5},
		{"count follows the filter, not the table", "is_active=true&limit=2", []string{"jose@acme.example", "maria@shop.example"}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := listCustomers(t, s, "order=email&"+tt.query)
			var got []string
			for _, c := range p.Customers {
				got = append(got, c.Email)
			}
			wantCount := tt.wantCount
			if wantCount < 0 {
				wantCount = len(tt.wantEmails)
			}
			if !slices.Equal(got, tt.wantEmails) {
				t.Errorf("got %v, want %v", got, tt.wantEmails)
			}
			if p.Count == nil || *p.Count != wantCount {
				t.Errorf("count %v, want %d", p.Count, wantCount)
			}
		})
	}
	t.Run("count=false gives a null count", func(t *testing.T) {
		t.Parallel()
		var raw map[string]json.RawMessage
		r := request(t, s, http.MethodGet, "/v1/customers?count=false&q=other", nil, nil)
		r.expectStatus(t, 200)
		r.decode(t, &raw)
		if c, ok := raw["count"]; !ok || string(c) != "null" {
			t.Errorf("count %s (present %v), want null", c, ok)
		}
		var p listPage
		r.decode(t, &p)
		if len(p.Customers) != 3 {
			t.Errorf("%d customers, want 3", len(p.Customers))
		}
	})
	for _, tt := range []struct{ query, field, code string }{
		{"limit=0", "limit", "invalid"},
		{"limit=101", "limit", "invalid"},
		{"limit=abc", "limit", "invalid"},
		{"limit=-3", "limit", "invalid"},
		{"is_active=maybe", "is_active", "invalid"},
		{"colour=red", "colour", "unknown_field"},
		{"Q=x", "Q", "unknown_field"},
	} {
		t.Run("refused: "+tt.query, func(t *testing.T) {
			t.Parallel()
			request(t, s, http.MethodGet, "/v1/customers?"+tt.query, nil, nil).expectProblem(t, 400, tt.field, tt.code)
		})
	}
}

// routeCall makes the resources a route needs (a customer, its address, a
// group) and returns a path and body with which the route succeeds. A route
// without an entry here fails the test, so a new route cannot skip the matrix.
func routeCall(s *system, method, pattern string) (path string, body any) {
	s.t.Helper()
	if strings.HasPrefix(pattern, "/v1/webhooks") {
		return webhookRouteCall(s, method, pattern)
	}
	if strings.HasPrefix(pattern, "/v1/settings/oidc-providers") {
		return oidcSettingsRouteCall(s, method, pattern)
	}
	target := s.createCustomer(map[string]any{"email": "table-" + randomSuffix() + "@example.com"})
	path = strings.NewReplacer("{id}", target.ID, "{channel}", "email").Replace(pattern)
	if strings.Contains(pattern, "{aid}") {
		var a struct{ ID string }
		s.do(http.MethodPost, "/v1/customers/"+target.ID+"/addresses", validAddress(), &a)
		path = strings.ReplaceAll(path, "{aid}", a.ID)
	}
	if strings.HasPrefix(pattern, "/v1/orders/{id}/transfer-requests") {
		return transferRouteCall(s, method, pattern)
	}
	if strings.HasPrefix(pattern, "/v1/import-jobs/{id}") {
		var job struct{ ID string }
		s.do(http.MethodPost, "/v1/customers/import", file{"text/csv", "email\n"}, &job)
		path = strings.ReplaceAll(pattern, "{id}", job.ID)
	}
	if strings.HasPrefix(pattern, "/v1/customer-groups/{id}") {
		g := s.createGroup("table-" + randomSuffix())
		path = strings.ReplaceAll(pattern, "{id}", g.ID)
	}
	if strings.HasPrefix(pattern, "/v1/settings/customer-attributes/{key}") {
		key := "table_" + strings.ToLower(randomSuffix())
		s.define(map[string]any{"key": key, "label": "Table", "type": "string"})
		path = strings.ReplaceAll(pattern, "{key}", key)
	}
	ids := []string{target.ID}
	source := s.createCustomer(map[string]any{"email": "table-source-" + randomSuffix() + "@example.com"})
	if pattern == "/v1/customers/{id}/merge-preview" {
		path += "?source_id=" + source.ID
	}
	bodies := map[string]any{
		"POST /v1/customers":                        map[string]any{"email": "table-new-" + randomSuffix() + "@example.com"},
		"GET /v1/customers":                         nil,
		"GET /v1/customers/export":                  nil,
		"POST /v1/customers/import":                 file{"text/csv", "email\ntable-import-" + randomSuffix() + "@example.com\n"},
		"GET /v1/import-jobs/{id}":                  nil,
		"GET /v1/import-jobs/{id}/errors":           nil,
		"GET /v1/customers/{id}":                    nil,
		"PATCH /v1/customers/{id}":                  map[string]any{"note": "n"},
		"DELETE /v1/customers/{id}":                 nil,
		"POST /v1/customers/{id}/anonymize":         nil,
		"GET /v1/customers/{id}/history":            nil,
		"GET /v1/customers/{id}/data-export":        nil,
		"POST /v1/customers/{id}/merge":             map[string]any{"source_id": source.ID},
		"GET /v1/customers/{id}/merge-preview":      nil,
		"GET /v1/customers/{id}/duplicates":         nil,
		"GET /v1/customer-duplicates":               nil,
		"POST /v1/customer-duplicates/dismissals":   map[string]any{"customer_ids": []string{target.ID, source.ID}},
		"PUT /v1/customers/{id}/consent/{channel}":  map[string]any{"state": "unsubscribed"},
		"PATCH /v1/customers/{id}/metadata":         map[string]any{"set": map[string]string{"k": "v"}},
		"PATCH /v1/customers/{id}/private-metadata": map[string]any{"set": map[string]string{"k": "v"}},
		"POST /v1/customers/{id}/notes":             map[string]any{"text": "note"},
		"GET /v1/customers/{id}/notes":              nil,
		"POST /v1/customers/bulk-delete":            map[string]any{"ids": ids},
		"POST /v1/customers/bulk-update":            map[string]any{"ids": ids, "update": map[string]any{"is_active": false}},
		"GET /v1/customers/{id}/addresses":          nil,
		"POST /v1/customers/{id}/addresses":         validAddress(),
		"PATCH /v1/customers/{id}/addresses/{aid}":  map[string]any{"city": "Hamburg"},
		"DELETE /v1/customers/{id}/addresses/{aid}": nil,
		"GET /v1/settings/address-form":             nil,
		// The defaults again: other subtests share the settings.
		"PUT /v1/settings/address-form":                 map[string]any{"required_fields": []string{"first_name", "last_name", "street_address_1", "city", "postal_code", "country"}},
		"POST /v1/customer-groups":                      map[string]any{"name": "table-new-" + randomSuffix()},
		"GET /v1/settings/customer-attributes":          nil,
		"POST /v1/settings/customer-attributes":         map[string]any{"key": "table_new_" + strings.ToLower(randomSuffix()), "label": "New", "type": "boolean"},
		"GET /v1/settings/customer-attributes/{key}":    nil,
		"PATCH /v1/settings/customer-attributes/{key}":  map[string]any{"label": "Changed"},
		"DELETE /v1/settings/customer-attributes/{key}": nil,
		"GET /v1/customer-groups":                       nil,
		"GET /v1/customer-groups/{id}":                  nil,
		"PATCH /v1/customer-groups/{id}":                map[string]any{"description": "d"},
		"DELETE /v1/customer-groups/{id}":               nil,
		"POST /v1/customer-groups/{id}/customers":       map[string]any{"add": ids},
		"POST /v1/orders":                               orderBody(nil, time.Now()),
		"POST /v1/orders/{id}/transfer-requests":        nil, // see transferRouteCall
		"DELETE /v1/orders/{id}/transfer-requests":      nil,
		"GET /v1/customers/{id}/orders":                 nil,
	}
	body, ok := bodies[method+" "+pattern]
	if !ok {
		s.t.Fatalf("no request for route %s %s in routeCall: add one", method, pattern)
	}
	return path, body
}

// validAddress is an address the default address form accepts.
func validAddress() map[string]any {
	return map[string]any{
		"first_name": "Ann", "last_name": "Lee", "street_address_1": "Invalidenstraße 1",
		"city": "Berlin", "postal_code": "10115", "country": "DE",
	}
}

func TestUnknownPathsAndMethodsGetProblems(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	r := request(t, s, http.MethodGet, "/v1/nowhere", nil, nil)
	r.expectProblem(t, 404, "", "no_route")
	r = request(t, s, http.MethodPut, "/v1/customers", map[string]any{}, nil)
	r.expectProblem(t, 405, "", "no_route")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("405 Allow header %q", allow)
	}
}
