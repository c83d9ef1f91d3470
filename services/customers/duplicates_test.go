package customers_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"
)

// duplicateJSON is an entry of GET /v1/customers/{id}/duplicates.
type duplicateJSON struct {
	Customer customerJSON `json:"customer"`
	Score    float64      `json:"score"`
	Reasons  []string     `json:"reasons"`
}

// The duplicates of a customer are found by each reason, scored likeliest
// first, filtered and paginated; a dismissed pair is not suggested again,
// and a merged one is gone.
func TestDuplicatesAreFoundScoredAndDismissed(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	sfx := randomSuffix()
	addr := func(street string) []any {
		return []any{map[string]any{"first_name": "Dana", "last_name": "Smith", "street_address_1": street,
			"city": "Berlin", "postal_code": "10115", "country": "DE"}}
	}
	me := s.createCustomer(map[string]any{"email": "Dana.Smith" + sfx + "@gmail.com", "first_name": "Dana", "last_name": "Smith",
		"phone": "+4930111" + sfx[:3], "company_name": "Acme " + sfx, "addresses": addr("Lindenweg 5 " + sfx),
		"metadata": map[string]string{"external_reference": "crm-" + sfx}})
	byReference := s.createCustomer(map[string]any{"email": "shop-" + sfx + "@example.com", "metadata": map[string]string{"external_reference": "crm-" + sfx}})
	byEmail := s.createCustomer(map[string]any{"email": "danasmith" + sfx + "+promo@googlemail.com"})
	byPhone := s.createCustomer(map[string]any{"email": "other-" + sfx + "@example.com", "phone": "+4930111" + sfx[:3]})
	byCompany := s.createCustomer(map[string]any{"email": "d.smith-" + sfx + "@example.com", "first_name": "Dana", "last_name": "Smith", "company_name": "ACME " + sfx})
	byAddress := s.createCustomer(map[string]any{"email": "ds-" + sfx + "@example.com", "first_name": "Dana", "last_name": "Smithe", "addresses": addr("LINDENWEG 5 " + sfx)})
	s.createCustomer(map[string]any{"email": "bob-" + sfx + "@example.com", "first_name": "Bob", "last_name": "Jones", "company_name": "Acme " + sfx}) // a colleague: not her
	s.createCustomer(map[string]any{"email": "dana.smith" + sfx + "@example.com", "first_name": "Dana", "last_name": "Smith"})                         // the same name alone is not enough

	list := func(query string) ([]duplicateJSON, *string) {
		t.Helper()
		var page struct {
			Duplicates []duplicateJSON `json:"duplicates"`
			NextCursor *string         `json:"next_cursor"`
		}
		r := request(t, s, http.MethodGet, "/v1/customers/"+me.ID+"/duplicates"+query, nil, nil)
		r.expectStatus(t, http.StatusOK)
		r.decode(t, &page)
		return page.Duplicates, page.NextCursor
	}
	all, _ := list("")
	want := map[string][]string{
		byEmail.ID: {"email"}, byPhone.ID: {"phone"}, byCompany.ID: {"name_and_company"}, byAddress.ID: {"name_and_address"},
		byReference.ID: {"metadata_reference"},
	}
	if len(all) != len(want) {
		t.Fatalf("%d duplicates, want %d: %+v", len(all), len(want), all)
	}
	for i, d := range all {
		if !slices.Equal(d.Reasons, want[d.Customer.ID]) || d.Score <= 0 || d.Score > 1 || d.Customer.Email == "" {
			t.Errorf("duplicate %s: reasons %v score %v, want %v", d.Customer.ID, d.Reasons, d.Score, want[d.Customer.ID])
		}
		if i > 0 && d.Score > all[i-1].Score {
			t.Errorf("duplicate %d scores %v, more than the one before (%v)", i, d.Score, all[i-1].Score)
		}
	}
	if all[0].Customer.ID != byEmail.ID || all[1].Customer.ID != byReference.ID || all[2].Customer.ID != byPhone.ID {
		t.Errorf("the likeliest are %v, %v, %v; want the folded email's, the reference's, the phone's", all[0].Reasons, all[1].Reasons, all[2].Reasons)
	}

	// Filters and pages.
	if got, _ := list("?reason=phone"); len(got) != 1 || got[0].Customer.ID != byPhone.ID {
		t.Errorf("reason=phone: %+v", got)
	}
	if got, _ := list("?min_score=0.9"); len(got) != 2 || got[0].Customer.ID != byEmail.ID {
		t.Errorf("min_score=0.9: %+v, want the folded email's and the reference's", got)
	}
	first, next := list("?limit=3")
	if len(first) != 3 || next == nil {
		t.Fatalf("limit=3: %d and cursor %v", len(first), next)
	}
	rest, last := list("?limit=3&cursor=" + *next)
	if got := append(first, rest...); len(got) != 5 || last != nil || got[4].Customer.ID != all[4].Customer.ID {
		t.Errorf("pages of 3 read %+v", got)
	}
	request(t, s, http.MethodGet, "/v1/customers/"+me.ID+"/duplicates?reason=shoe_size", nil, nil).expectProblem(t, http.StatusBadRequest, "reason", "invalid")

	// Dismissed, then merged: neither is suggested again.
	dismiss := func(ids ...string) reply {
		return request(t, s, http.MethodPost, "/v1/customer-duplicates/dismissals", map[string]any{"customer_ids": ids}, nil)
	}
	dismiss(byPhone.ID, me.ID).expectStatus(t, http.StatusNoContent)
	dismiss(me.ID, byPhone.ID).expectStatus(t, http.StatusNoContent) // again, the other way round
	dismiss(me.ID, me.ID).expectProblem(t, http.StatusBadRequest, "customer_ids", "invalid")
	dismiss(me.ID, "01a23247-d763-7c0d-8750-6c49f282b509").expectProblem(t, http.StatusBadRequest, "customer_ids", "not_found")
	request(t, s, http.MethodPost, "/v1/customers/"+me.ID+"/merge", map[string]any{"source_id": byEmail.ID}, nil).expectStatus(t, http.StatusOK)
	after, _ := list("")
	for _, d := range after {
		if d.Customer.ID == byPhone.ID || d.Customer.ID == byEmail.ID {
			t.Errorf("after the dismissal and the merge, %s is still suggested", d.Customer.ID)
		}
	}
	if len(after) != 3 {
		t.Errorf("after the dismissal and the merge: %+v, want the reference's, the company's and the address's", after)
	}
	request(t, s, http.MethodGet, "/v1/customers/"+byEmail.ID+"/duplicates", nil, nil).expectProblem(t, http.StatusNotFound, "id", "merged")
}

// pairJSON is an entry of GET /v1/customer-duplicates.
type pairJSON struct {
	Customers []customerJSON `json:"customers"`
	Score     float64        `json:"score"`
	Reasons   []string       `json:"reasons"`
}

// The global list holds every pair once, the likeliest first by score
// whatever the reasons, the same in one page or in pages of one. The
// finder follows changes: a pair no longer alike leaves it, as do a
// dismissed pair and a deleted customer's.
func TestAllDuplicatesListEveryPairOnceLikeliestFirst(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands() // the duplicate finder runs with the bus adapter
	sfx := randomSuffix()
	c := func(body map[string]any) string { return s.createCustomer(body).ID }
	e1, e2 := c(map[string]any{"email": "a.b" + sfx + "@gmail.com"}), c(map[string]any{"email": "ab" + sfx + "+x@gmail.com"})
	e3, e4 := c(map[string]any{"email": "cd" + sfx + "@example.com", "phone": "+4930222111"}), c(map[string]any{"email": "cd" + sfx + "+y@example.com", "phone": "+4930222111"})
	p1, p2 := c(map[string]any{"email": "p1-" + sfx + "@example.com", "phone": "+4930333444"}), c(map[string]any{"email": "p2-" + sfx + "@example.com", "phone": "+4930333444"})
	ref := map[string]string{"external_reference": "erp-" + sfx}
	r1, r2 := c(map[string]any{"email": "r1-" + sfx + "@example.com", "metadata": ref}), c(map[string]any{"email": "r2-" + sfx + "@example.com", "metadata": ref})
	place := []any{map[string]any{"first_name": "Ola", "last_name": "Nordmann", "street_address_1": "Storgata 1", "city": "Oslo", "postal_code": "0155", "country": "NO"}}
	a1 := c(map[string]any{"email": "o1-" + sfx + "@example.com", "first_name": "Ola", "last_name": "Nordmann", "addresses": place})
	a2 := c(map[string]any{"email": "o2-" + sfx + "@example.com", "first_name": "Ola", "last_name": "Nordmann", "addresses": place})
	k1 := c(map[string]any{"email": "k1-" + sfx + "@example.com", "first_name": "Kari", "last_name": "Hansen", "company_name": "Fjord AS"})
	k2 := c(map[string]any{"email": "k2-" + sfx + "@example.com", "first_name": "Kari", "last_name": "Hansen", "company_name": "fjord as"})
	c(map[string]any{"email": "k3-" + sfx + "@example.com", "first_name": "Per", "last_name": "Berg", "company_name": "Fjord AS"}) // a colleague

	key := func(p pairJSON) string { return p.Customers[0].ID + "+" + p.Customers[1].ID }
	pair := func(a, b string) string {
		if a > b {
			a, b = b, a
		}
		return a + "+" + b
	}
	read := func(query string) []pairJSON {
		t.Helper()
		var all []pairJSON
		cursor := ""
		for range 50 {
			q := query
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			var page struct {
				Pairs      []pairJSON `json:"pairs"`
				NextCursor *string    `json:"next_cursor"`
			}
			r := request(t, s, http.MethodGet, "/v1/customer-duplicates?"+q, nil, nil)
			r.expectStatus(t, http.StatusOK)
			r.decode(t, &page)
			all = append(all, page.Pairs...)
			if page.NextCursor == nil {
				return all
			}
			cursor = *page.NextCursor
		}
		t.Fatal("more than 50 pages")
		return nil
	}
	keys := func(ps []pairJSON) []string {
		var out []string
		for _, p := range ps {
			out = append(out, key(p))
		}
		return out
	}
	// until reads the whole list until ok says it is as wanted: the finder
	// scores a customer once its event has come.
	until := func(what string, ok func([]string) bool) []pairJSON {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			whole := read("limit=100")
			if ok(keys(whole)) {
				return whole
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the list still holds %v", what, keys(whole))
			}
		}
	}
	want := []string{pair(e1, e2), pair(e3, e4), pair(r1, r2), pair(p1, p2), pair(a1, a2), pair(k1, k2)}
	whole := until("every pair listed", func(got []string) bool {
		return len(got) == len(want) && !slices.ContainsFunc(want, func(w string) bool { return !slices.Contains(got, w) })
	})
	got := keys(whole)
	for i, p := range whole {
		if i > 0 && p.Score > whole[i-1].Score {
			t.Errorf("pair %d scores %v, more than the one before (%v): %v", i, p.Score, whole[i-1].Score, got)
		}
		if key(p) == pair(e3, e4) && !slices.Equal(p.Reasons, []string{"email", "phone"}) {
			t.Errorf("the pair sharing email and phone has reasons %v", p.Reasons)
		}
		if p.Customers[0].Email == "" || p.Customers[1].Email == "" {
			t.Errorf("pair %d lacks its customers: %+v", i, p.Customers)
		}
	}
	// By score, not by reason: two reasons beat one, and identical names
	// at one address (0.95) beat a shared reference (0.9).
	if got[0] != pair(e3, e4) || slices.Index(got, pair(a1, a2)) > slices.Index(got, pair(r1, r2)) {
		t.Errorf("order %v: want email+phone first, and the address's before the reference's", got)
	}
	if paged := keys(read("limit=1")); !slices.Equal(paged, got) {
		t.Errorf("in pages of one: %v, want %v", paged, got)
	}
	if phones := keys(read("reason=phone")); !slices.Equal(phones, []string{pair(e3, e4), pair(p1, p2)}) {
		t.Errorf("reason=phone: %v", phones)
	}
	if hi := read("min_score=0.9"); len(hi) != 4 {
		t.Errorf("min_score=0.9: %v, want the 2 email pairs, the address's and the reference's", keys(hi))
	}
	request(t, s, http.MethodGet, "/v1/customer-duplicates?cursor=bogus", nil, nil).expectProblem(t, http.StatusBadRequest, "cursor", "invalid")

	// A dismissal and a deletion take their pairs out at once; a change
	// does once the finder has its event.
	request(t, s, http.MethodPost, "/v1/customer-duplicates/dismissals", map[string]any{"customer_ids": []string{p2, p1}}, nil).expectStatus(t, http.StatusNoContent)
	request(t, s, http.MethodDelete, "/v1/customers/"+a2, nil, nil).expectStatus(t, http.StatusNoContent)
	if now := keys(read("limit=100")); slices.Contains(now, pair(p1, p2)) || slices.Contains(now, pair(a1, a2)) {
		t.Errorf("after the dismissal and the deletion: %v", now)
	}
	request(t, s, http.MethodPatch, "/v1/customers/"+k2, map[string]any{"company_name": "Havet AS"}, nil).expectStatus(t, http.StatusOK)
	request(t, s, http.MethodPatch, "/v1/customers/"+r1, map[string]any{"phone": "+4930222111"}, nil).expectStatus(t, http.StatusOK)
	until("the changes followed", func(got []string) bool {
		return !slices.Contains(got, pair(k1, k2)) && slices.Contains(got, pair(r1, e3)) && slices.Contains(got, pair(r1, e4))
	})
}

// Customers written without events (restored from a backup, say) are
// paired by the build the finder runs once per database.
func TestDuplicatePairsAreBuiltOnceForCustomersWrittenWithoutEvents(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	ctx := context.Background()
	sfx := randomSuffix()
	var ids []string
	for _, email := range []string{"x" + sfx + "@example.com", "x" + sfx + "+old@example.com"} {
		var id string
		err := s.pool.QueryRow(ctx, `
			INSERT INTO customers (id, email, first_name, last_name, company_name, is_active, language_code,
			                       metadata, has_account, is_verified, version, created_at, updated_at)
			VALUES (gen_random_uuid(), $1, '', '', '', true, 'en', '{}', false, false, 1, now(), now()) RETURNING id`, email).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	s.runCommands()
	want := ids[0] + "+" + ids[1]
	if ids[0] > ids[1] {
		want = ids[1] + "+" + ids[0]
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var page struct {
			Pairs []pairJSON `json:"pairs"`
		}
		request(t, s, http.MethodGet, "/v1/customer-duplicates", nil, nil).decode(t, &page)
		if len(page.Pairs) == 1 && page.Pairs[0].Customers[0].ID+"+"+page.Pairs[0].Customers[1].ID == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pair %s was not built: %+v", want, page.Pairs)
		}
	}
	// The build's pairs show as it writes them; its end is recorded after.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var built bool
		err := s.pool.QueryRow(ctx, `SELECT built_at IS NOT NULL FROM duplicate_finder`).Scan(&built)
		if err == nil && built {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("built_at not recorded (%v)", err)
		}
	}
}
