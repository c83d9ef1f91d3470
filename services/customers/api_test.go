package customers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/customerbus/customerbus/services/customers"
)

func TestBadInputGetsProblemWithStatusAndCode(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	existing := s.createCustomer(map[string]any{"email": "taken@example.com", "external_reference": "ERP-1"})
	bigNote := strings.Repeat("x", 70<<10) // over the test server's 64 KiB body limit
	manyKeys := map[string]string{}
	for i := range 101 {
		manyKeys[fmt.Sprint("k", i)] = "v"
	}
	tests := []struct {
		name         string
		method, path string
		body         any
		contentType  string
		wantStatus   int
		wantField    string
		wantCode     string
	}{
		{"malformed JSON", "POST", "/v1/customers", `{"email": `, "", 400, "", "malformed"},
		{"empty body", "POST", "/v1/customers", ``, "", 400, "", "malformed"},
		{"array instead of object", "POST", "/v1/customers", `[{"email":"a@b.co"}]`, "", 400, "", "malformed"},
		{"trailing data after the object", "POST", "/v1/customers", `{"email":"a@b.co"} {}`, "", 400, "", "malformed"},
		{"unknown field", "POST", "/v1/customers", `{"email":"a@b.co","age":3}`, "", 400, "age", "unknown_field"},
		{"wrong type", "POST", "/v1/customers", `{"email":"a@b.co","is_active":"yes"}`, "", 400, "is_active", "invalid_type"},
		{"metadata value not a string", "POST", "/v1/customers", `{"email":"a@b.co","metadata":{"a":1}}`, "", 400, "metadata", "invalid_type"},
		{"missing email", "POST", "/v1/customers", `{"first_name":"Ann"}`, "", 400, "email", "required"},
		{"invalid email", "POST", "/v1/customers", `{"email":"not-an-email"}`, "", 400, "email", "invalid"},
		{"email with display name", "POST", "/v1/customers", `{"email":"Ann <ann@example.com>"}`, "", 400, "email", "invalid"},
		{"invalid phone", "POST", "/v1/customers", `{"email":"a@b.co","phone":"12345"}`, "", 400, "phone", "invalid"},
		{"invalid language code", "POST", "/v1/customers", `{"email":"a@b.co","language_code":"not a language"}`, "", 400, "language_code", "invalid"},
		{"name too long", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "first_name": strings.Repeat("n", 257)}, "", 400, "first_name", "max_length"},
		{"too many metadata keys", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "metadata": manyKeys}, "", 400, "metadata", "max_items"},
		{"duplicate email, other case", "POST", "/v1/customers", `{"email":"TAKEN@example.com"}`, "", 409, "email", "unique"},
		{"duplicate external reference", "POST", "/v1/customers", `{"email":"new@example.com","external_reference":"ERP-1"}`, "", 409, "external_reference", "unique"},
		{"body over the size limit", "POST", "/v1/customers", map[string]any{"email": "a@b.co", "note": bigNote}, "", 413, "", "too_large"},
		{"not JSON content type", "POST", "/v1/customers", `email=a@b.co`, "application/x-www-form-urlencoded", 415, "", "unsupported_media_type"},
		{"NUL in a name", "POST", "/v1/customers", `{"email":"a@b.co","first_name":"a\u0000b"}`, "", 400, "first_name", "invalid"},
		{"NUL in a metadata value", "POST", "/v1/customers", `{"email":"a@b.co","metadata":{"k":"a\u0000"}}`, "", 400, "metadata", "invalid"},
		{"NUL in a metadata key", "POST", "/v1/customers", `{"email":"a@b.co","private_metadata":{"k\u0000":"v"}}`, "", 400, "private_metadata", "invalid"},
		{"NUL in external reference", "POST", "/v1/customers", `{"email":"a@b.co","external_reference":"x\u0000"}`, "", 400, "external_reference", "invalid"},
		{"list q not UTF-8", "GET", "/v1/customers?q=%ff", nil, "", 400, "q", "invalid"},
		{"list q with NUL", "GET", "/v1/customers?q=%00", nil, "", 400, "q", "invalid"},
		{"list email with NUL", "GET", "/v1/customers?email=a%00b", nil, "", 400, "email", "invalid"},
		{"get unknown id", "GET", "/v1/customers/01970000-0000-7000-8000-000000000000", nil, "", 404, "id", "not_found"},
		{"get id that is not a uuid", "GET", "/v1/customers/42", nil, "", 404, "id", "not_found"},
		{"patch unknown id", "PATCH", "/v1/customers/01970000-0000-7000-8000-000000000000", `{"first_name":"X"}`, "", 404, "id", "not_found"},
		{"delete unknown id", "DELETE", "/v1/customers/01970000-0000-7000-8000-000000000000", nil, "", 404, "id", "not_found"},
		{"patch to a taken email", "PATCH", "/v1/customers/" + existing.ID, `{"email":"a@b.co","phone":"+1"}`, "", 400, "phone", "invalid"},
		{"patch with invalid email", "PATCH", "/v1/customers/" + existing.ID, `{"email":"nope"}`, "", 400, "email", "invalid"},
		{"list limit too large", "GET", "/v1/customers?limit=101", nil, "", 400, "limit", "invalid"},
		{"list limit not a number", "GET", "/v1/customers?limit=ten", nil, "", 400, "limit", "invalid"},
		{"list unknown order", "GET", "/v1/customers?order=phone", nil, "", 400, "order", "invalid"},
		{"list garbage cursor", "GET", "/v1/customers?cursor=zzz", nil, "", 400, "cursor", "invalid"},
		{"list unknown parameter", "GET", "/v1/customers?colour=red", nil, "", 400, "colour", "unknown_field"},
		{"list time not RFC 3339", "GET", "/v1/customers?created_after=yesterday", nil, "", 400, "created_after", "invalid"},
		{"list boolean not a boolean", "GET", "/v1/customers?has_account=maybe", nil, "", 400, "has_account", "invalid"},
		{"list metadata filter without key", "GET", "/v1/customers?metadata[]=x", nil, "", 400, "metadata[]", "unknown_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p problemJSON
			headers := map[string]string{"Authorization": "Bearer " + s.token}
			if tt.contentType != "" {
				headers["Content-Type"] = tt.contentType
			}
			resp := s.send(tt.method, tt.path, tt.body, &p, headers)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%+v)", resp.StatusCode, tt.wantStatus, p)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			if p.Status != tt.wantStatus || len(p.Errors) == 0 {
				t.Fatalf("problem %+v", p)
			}
			if p.Errors[0].Code != tt.wantCode || p.Errors[0].Field != tt.wantField || p.Errors[0].Message == "" {
				t.Errorf("errors[0] = %+v, want field %q code %q", p.Errors[0], tt.wantField, tt.wantCode)
			}
		})
	}
	// Never a half-written change: only the one valid customer and its event.
	if n := s.count("SELECT count(*) FROM customers"); n != 1 {
		t.Errorf("customers rows = %d, want 1", n)
	}
	if n := s.count("SELECT count(*) FROM outbox"); n != 1 {
		t.Errorf("outbox rows = %d, want 1", n)
	}
	var after customerJSON
	s.do(http.MethodGet, "/v1/customers/"+existing.ID, nil, &after)
	if after.Email != "taken@example.com" || after.Version != 1 {
		t.Errorf("rejected patches changed the customer: %+v", after)
	}
}

// TestEveryRouteNeedsATokenWithItsPermission walks the service's own route
// table, so a route added later is covered without touching this test.
func TestEveryRouteNeedsATokenWithItsPermission(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	if len(s.routes) == 0 {
		t.Fatal("the service lists no routes")
	}
	// Valid bodies per method, so a caller holding the permission succeeds.
	bodies := map[string]string{"POST": `{"email":"fresh@example.com"}`, "PATCH": `{"note":"n"}`}
	for _, rt := range s.routes {
		method, pattern, _ := strings.Cut(rt.Pattern, " ")
		t.Run(rt.Pattern, func(t *testing.T) {
			// Each route gets a customer of its own: DELETE must not remove another's.
			c := s.createCustomer(map[string]any{"email": strings.ToLower(method) + "-" + randomSuffix() + "@example.com"})
			path := strings.ReplaceAll(pattern, "{id}", c.ID)
			withoutPerm := ""
			for _, p := range customers.Permissions {
				if p != rt.Permission {
					tok, err := customers.CreateToken(context.Background(), s.pool, "other", false, []string{p})
					if err != nil {
						t.Fatal(err)
					}
					withoutPerm = tok
					break
				}
			}
			callers := []struct {
				name       string
				token      string
				wantStatus int // 0: any success
			}{
				{"no token", "", 401},
				{"malformed token", "not-a-token", 401},
				{"unknown token", "cbk_" + strings.Repeat("A", 43), 401},
				{"token without " + rt.Permission, withoutPerm, 403},
				{"token with " + rt.Permission, s.token, 0},
			}
			for _, caller := range callers {
				var body any
				if b, ok := bodies[method]; ok {
					body = strings.Replace(b, "fresh@", randomSuffix()+"@", 1)
				}
				switch {
				case strings.HasSuffix(pattern, "metadata"):
					body = `{"set":{"k":"` + randomSuffix() + `"}}`
				case method == "POST" && strings.HasSuffix(pattern, "/notes"):
					body = `{"text":"note"}`
				}
				resp := s.doWith(caller.token, method, path, body, nil)
				switch {
				case caller.wantStatus == 0 && resp.StatusCode >= 300:
					t.Errorf("%s: status %d, want success", caller.name, resp.StatusCode)
				case caller.wantStatus != 0 && resp.StatusCode != caller.wantStatus:
					t.Errorf("%s: status %d, want %d", caller.name, resp.StatusCode, caller.wantStatus)
				}
			}
		})
	}
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestCreateNormalisesInputAndReturnsTheStoredCustomer(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{
		"email": "  Ann.Lee@Example.COM ", "phone": "+49 30 1234567", "language_code": "pt-br",
		"first_name": " Ann ", "private_metadata": map[string]string{"crm": "7"},
	})
	if c.Email != "ann.lee@example.com" || c.Phone == nil || *c.Phone != "+49301234567" || c.LanguageCode != "pt-BR" || c.FirstName != "Ann" {
		t.Errorf("not normalised: %+v", c)
	}
	if !c.IsActive || c.HasAccount || c.IsVerified || c.Version != 1 || c.Metadata == nil || c.PrivateMetadata["crm"] != "7" {
		t.Errorf("defaults wrong: %+v", c)
	}
	var got customerJSON
	s.do(http.MethodGet, "/v1/customers/"+c.ID, nil, &got)
	if got.Email != c.Email || !got.CreatedAt.Equal(c.CreatedAt) || got.PrivateMetadata["crm"] != "7" {
		t.Errorf("GET returned %+v, want %+v", got, c)
	}
}

func TestPatchChangesOnlyTheGivenFields(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	c := s.createCustomer(map[string]any{"email": "p@example.com", "first_name": "Pat", "phone": "+14155550100", "external_reference": "X1"})
	var got customerJSON
	s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"last_name": "Lee"}, &got)
	if got.FirstName != "Pat" || got.LastName != "Lee" || got.Phone == nil || got.Version != 2 {
		t.Errorf("after last_name patch: %+v", got)
	}
	s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"phone": nil, "external_reference": nil}, &got)
	if got.Phone != nil || got.ExternalReference != nil || got.Version != 3 {
		t.Errorf("null did not clear: %+v", got)
	}
	s.do(http.MethodPatch, "/v1/customers/"+c.ID, map[string]any{"first_name": "Pat"}, &got)
	if got.Version != 3 {
		t.Errorf("a patch that changes nothing bumped the version to %d", got.Version)
	}
}

func TestListPagesThroughEveryOrderWithKeysetCursors(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	var created []customerJSON
	for i := range 23 {
		// Emails in an order unrelated to creation order.
		created = append(created, s.createCustomer(map[string]any{
			"email": fmt.Sprintf("u%02d@example.com", (i*7)%23), "is_active": i%3 != 0,
		}))
	}
	byCreated := slices.Clone(created) // ids are UUIDv7: creation order
	byEmail := slices.Clone(created)
	sort.Slice(byEmail, func(i, j int) bool { return byEmail[i].Email < byEmail[j].Email })
	orders := map[string][]customerJSON{
		"created_at": byCreated, "-created_at": reversed(byCreated),
		"email": byEmail, "-email": reversed(byEmail),
	}
	for order, want := range orders {
		t.Run(order, func(t *testing.T) {
			var got []string
			cursor := ""
			for page := 0; ; page++ {
				var resp struct {
					Customers  []customerJSON `json:"customers"`
					Count      *int           `json:"count"`
					NextCursor *string        `json:"next_cursor"`
				}
				q := url.Values{"order": {order}, "limit": {"5"}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				if r := s.do(http.MethodGet, "/v1/customers?"+q.Encode(), nil, &resp); r.StatusCode != 200 {
					t.Fatalf("status %d", r.StatusCode)
				}
				if resp.Count == nil || *resp.Count != 23 {
					t.Fatalf("count = %v, want 23", resp.Count)
				}
				for _, c := range resp.Customers {
					got = append(got, c.ID)
				}
				if resp.NextCursor == nil {
					break
				}
				if page > 10 {
					t.Fatal("pagination does not end")
				}
				cursor = *resp.NextCursor
			}
			if len(got) != 23 {
				t.Fatalf("paged %d customers, want 23", len(got))
			}
			for i := range want {
				if got[i] != want[i].ID {
					t.Fatalf("position %d: %s, want %s (%s order)", i, got[i], want[i].ID, order)
				}
			}
		})
	}

	t.Run("cursor of another order is refused", func(t *testing.T) {
		var resp struct {
			NextCursor *string `json:"next_cursor"`
		}
		s.do(http.MethodGet, "/v1/customers?order=email&limit=2", nil, &resp)
		var p problemJSON
		if r := s.do(http.MethodGet, "/v1/customers?order=created_at&cursor="+*resp.NextCursor, nil, &p); r.StatusCode != 400 || p.Errors[0].Field != "cursor" {
			t.Errorf("status %d problem %+v", r.StatusCode, p)
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
	at := url.QueryEscape(john.CreatedAt.Format(time.RFC3339Nano))
	tests := []struct {
		query      string
		wantEmails []string
	}{
		{"q=GONZ", []string{"maria@shop.example"}},
		{"q=muller", []string{"jose@acme.example"}},      // accents ignored in the data
		{"q=JOS%C3%89", []string{"jose@acme.example"}},   // and in the query (JOSÉ)
		{"q=cafe+zur", []string{"jose@acme.example"}},    // company
		{"q=%2B41446", []string{"jose@acme.example"}},    // phone, E.164
		{"q=jose+muller", []string{"jose@acme.example"}}, // a full name spans first and last name
		{"q=other.exa", []string{"john@other.example", "rate@other.example"}},
		{"q=%25", []string{"rate@other.example"}}, // % matches literally
		{"q=_", nil}, // so does _
		{"email=John@Other.example", []string{"john@other.example"}},
		{"is_active=false", []string{"john@other.example"}},
		{"is_active=true&q=example", []string{"jose@acme.example", "maria@shop.example", "rate@other.example"}},
		{"metadata[tier]=gold", []string{"jose@acme.example", "maria@shop.example"}},
		{"metadata[tier]=gold&metadata[region]=eu", []string{"maria@shop.example"}},
		{"metadata[tier]=silver", nil},
		{"has_account=true", nil},
		{"is_verified=false&has_account=false", []string{"john@other.example", "jose@acme.example", "maria@shop.example", "rate@other.example"}},
		{"created_after=" + at, []string{"jose@acme.example", "rate@other.example"}},
		{"created_before=" + at, []string{"maria@shop.example"}},
		{"updated_after=" + at + "&q=o", []string{"jose@acme.example", "rate@other.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var resp struct {
				Customers []customerJSON `json:"customers"`
				Count     *int           `json:"count"`
			}
			if r := s.do(http.MethodGet, "/v1/customers?order=email&"+tt.query, nil, &resp); r.StatusCode != 200 {
				t.Fatalf("status %d", r.StatusCode)
			}
			var got []string
			for _, c := range resp.Customers {
				got = append(got, c.Email)
			}
			if !slices.Equal(got, tt.wantEmails) || resp.Count == nil || *resp.Count != len(tt.wantEmails) {
				t.Errorf("got %v (count %v), want %v", got, resp.Count, tt.wantEmails)
			}
		})
	}
	t.Run("count=false skips the total", func(t *testing.T) {
		var resp map[string]any
		s.do(http.MethodGet, "/v1/customers?count=false", nil, &resp)
		if v, ok := resp["count"]; !ok || v != nil {
			t.Errorf("count = %v (present %v), want null", v, ok)
		}
	})
}

func reversed(s []customerJSON) []customerJSON {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}
