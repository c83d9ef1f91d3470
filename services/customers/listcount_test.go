package customers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A list's page and its count come from two queries that repeat one WHERE
// clause (sqlc cannot share it), once without attribute filters and once
// with them: for each combination of filters, the count is the number of
// customers the pages walk through. Each filter of a combination leaves out
// some customer the others let through (checked first), so a filter that
// one of the two queries missed, or tested otherwise, shows.
func TestListCountIsWhatItsPagesHold(t *testing.T) {
	s := newSystem(t)
	// Three of each kind, keys in the order the list sorts its attribute
	// filters: the first two of a kind take the queries' slots, the third
	// its kind's arrays.
	for _, d := range []map[string]any{
		{"key": "a_tier", "label": "Tier", "type": "enum", "values": []string{"bronze", "silver", "gold"}, "indexed": true},
		{"key": "b_points", "label": "Points", "type": "integer", "indexed": true},
		{"key": "c_dob", "label": "Date of birth", "type": "date", "indexed": true},
		{"key": "d_b2b", "label": "B2B", "type": "boolean", "indexed": true},
		{"key": "e_score", "label": "Score", "type": "decimal", "indexed": true},
		{"key": "f_since", "label": "Since", "type": "datetime", "indexed": true},
		{"key": "g_region", "label": "Region", "type": "string", "max_length": 64, "indexed": true},
		{"key": "h_level", "label": "Level", "type": "integer", "indexed": true},
		{"key": "i_seen", "label": "Last seen", "type": "datetime", "indexed": true},
	} {
		s.define(d)
	}
	var group struct{ ID string }
	if r := s.do(http.MethodPost, "/v1/customer-groups", map[string]any{"name": "listcount"}, &group); r.StatusCode != http.StatusCreated {
		t.Fatalf("create group: %d", r.StatusCode)
	}

	// Each property holds for about three customers in four, independently,
	// so that combinations of several filters still match some.
	r := rand.New(rand.NewPCG(24, 36))
	likely := func() bool { return r.IntN(4) != 0 }
	pick := func(yes, no string) string {
		if likely() {
			return yes
		}
		return no
	}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 90
	for i := range n {
		attrs := map[string]any{}
		if likely() {
			attrs["a_tier"] = pick("gold", []string{"bronze", "silver"}[r.IntN(2)])
		}
		if likely() {
			attrs["b_points"] = 250 + r.IntN(1000) // 300 or more three times in four
		}
		if likely() {
			attrs["c_dob"] = time.Date(1965+r.IntN(40), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
		}
		if likely() {
			attrs["d_b2b"] = likely()
		}
		if likely() {
			attrs["e_score"] = json.Number(fmt.Sprintf("%d.%d", r.IntN(8), r.IntN(10)))
		}
		if likely() {
			attrs["f_since"] = base.AddDate(-3, 0, r.IntN(4*365)).Format(time.RFC3339)
		}
		if likely() {
			attrs["g_region"] = pick("north", "south")
		}
		if likely() {
			attrs["h_level"] = r.IntN(40) // 10 or more three times in four
		}
		if likely() {
			attrs["i_seen"] = base.Add(time.Duration(r.IntN(400)) * time.Hour).Format(time.RFC3339) // after 100 h three times in four
		}
		body := map[string]any{
			"email": fmt.Sprintf("lc%02d@example.com", i), "last_name": pick("Nowak", "Smith"),
			"is_active": likely(), "metadata": map[string]string{"src": pick("web", "pos")}, "attributes": attrs,
		}
		if likely() {
			body["groups"] = []string{group.ID}
		}
		c := s.createCustomer(body)
		// What the API does not set directly, set here: the account, the
		// consent, the times; orders through the API, which counts them.
		if _, err := s.pool.Exec(context.Background(), `UPDATE customers SET has_account = $2, is_verified = $3,
			email_consent_state = $4, created_at = $5, updated_at = $6 WHERE id = $1`,
			c.ID, likely(), likely(), pick("subscribed", "not_subscribed"),
			base.Add(time.Duration(i)*time.Hour), base.Add(time.Duration(n+r.IntN(n))*time.Hour)); err != nil {
			t.Fatal(err)
		}
		for range r.IntN(4) {
			s.recordOrder(orderBody(&c.ID, base.AddDate(0, r.IntN(12), r.IntN(28))))
		}
	}

	at := func(h int) string { return base.Add(time.Duration(h) * time.Hour).Format(time.RFC3339) }
	filters := map[string]string{
		"q":             "q=nowak",
		"is_active":     "is_active=true",
		"has_account":   "has_account=true",
		"is_verified":   "is_verified=true",
		"consent":       "email_marketing_consent=subscribed",
		"created_after": "created_after=" + at(n/5),
		"created_bef":   "created_before=" + at(n-n/5),
		"updated_after": "updated_after=" + at(n+n/4),
		"metadata":      "metadata[src]=web",
		"group":         "group_id=" + group.ID,
		"orders_min":    "number_of_orders_min=1",
		"orders_max":    "number_of_orders_max=2",
		"placed_after":  "placed_orders_after=" + base.AddDate(0, 2, 0).Format(time.RFC3339),
		"placed_before": "placed_orders_before=" + base.AddDate(0, 10, 0).Format(time.RFC3339),
		"tier":          "attributes[a_tier]=gold",
		"points":        "attributes[b_points][gte]=300",
		"points_range":  "attributes[b_points][gte]=300&attributes[b_points][lte]=1100",
		"dob":           "attributes[c_dob][gte]=1970-01-01&attributes[c_dob][lte]=1999-12-31",
		"b2b":           "attributes[d_b2b]=true",
		"score":         "attributes[e_score][lte]=6",
		"since":         "attributes[f_since][gte]=" + base.AddDate(-3, 2, 0).Format(time.RFC3339),
		"region":        "attributes[g_region]=north",
		"level":         "attributes[h_level][gte]=10",
		"seen":          "attributes[i_seen][gte]=" + at(100),
	}
	combinations := [][]string{
		// Each alone: the queries without attribute filters, and with one.
		{"q"}, {"is_active"}, {"has_account"}, {"is_verified"}, {"consent"}, {"created_after"}, {"created_bef"},
		{"updated_after"}, {"metadata"}, {"group"}, {"orders_min"}, {"orders_max"}, {"placed_after"}, {"placed_before"},
		{"placed_after", "placed_before"},
		{"tier"}, {"points"}, {"points_range"}, {"dob"}, {"b2b"}, {"score"}, {"since"}, {"region"}, {"level"}, {"seen"},
		// An attribute filter with each of the others.
		{"tier", "q"}, {"points", "is_active"}, {"dob", "has_account"}, {"b2b", "is_verified"}, {"score", "consent"},
		{"since", "created_after"}, {"tier", "created_bef"}, {"points_range", "updated_after"}, {"dob", "metadata"},
		{"b2b", "group"}, {"score", "orders_min"}, {"since", "orders_max"}, {"tier", "placed_after"},
		{"points", "placed_before"}, {"dob", "placed_after", "placed_before"},
		// Slots of every kind together, then past them: every kind's arrays.
		{"tier", "points"}, {"points", "dob"}, {"tier", "points", "dob"}, {"tier", "b2b"}, {"points", "score"}, {"dob", "since"},
		{"tier", "points_range", "dob", "b2b"}, {"tier", "points", "dob", "b2b", "score", "since"},
		{"tier", "b2b", "region"}, {"points", "score", "level"}, {"dob", "since", "seen"},
		{"tier", "b2b", "region", "points", "is_active"}, {"points_range", "score", "level", "dob", "metadata"},
		{"dob", "since", "seen", "b2b", "group"},
	}
	query := func(names []string) string {
		var parts []string
		for _, name := range names {
			parts = append(parts, filters[name])
		}
		return strings.Join(parts, "&")
	}
	countOfQuery := func(q string) int {
		t.Helper()
		p := listCustomers(t, s, q+"&limit=1")
		if p.Count == nil || p.CountPrecision == nil || *p.CountPrecision != "exact" {
			t.Fatalf("%s: count %s, precision %v: want an exact count", q, countOf(p), p.CountPrecision)
		}
		return *p.Count
	}
	for _, names := range combinations {
		q := query(names)
		t.Run(strings.Join(names, "+"), func(t *testing.T) {
			want := countOfQuery(q)
			if want == 0 {
				t.Fatalf("%s matches no customer: the data show nothing", q)
			}
			seen := map[string]bool{}
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > n {
					t.Fatalf("%s: more pages than customers", q)
				}
				page := listCustomers(t, s, q+"&limit=7&count=false"+cursor)
				for _, c := range page.Customers {
					if seen[c.ID] {
						t.Fatalf("%s: customer %s on two pages", q, c.ID)
					}
					seen[c.ID] = true
				}
				if page.NextCursor == nil {
					break
				}
				cursor = "&cursor=" + url.QueryEscape(*page.NextCursor)
			}
			if len(seen) != want {
				t.Errorf("%s: the pages hold %d customers, the count says %d", q, len(seen), want)
			}
			// Last, so that a count that misses a filter fails above, not as
			// data that would not show it.
			for i := range names {
				others := append(append([]string{}, names[:i]...), names[i+1:]...)
				if n := countOfQuery(query(others)); n <= want {
					t.Errorf("without %s the count is %d, with it %d: the data do not show whether the queries test it", names[i], n, want)
				}
			}
		})
	}
}
