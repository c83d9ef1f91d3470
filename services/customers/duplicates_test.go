package customers_test

import (
	"net/http"
	"slices"
	"testing"
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
		"phone": "+4930111" + sfx[:3], "company_name": "Acme " + sfx, "addresses": addr("Lindenweg 5 " + sfx)})
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
	if all[0].Customer.ID != byEmail.ID || all[1].Customer.ID != byPhone.ID {
		t.Errorf("the likeliest are %v, %v; want the folded email's, then the phone's", all[0].Reasons, all[1].Reasons)
	}

	// Filters and pages.
	if got, _ := list("?reason=phone"); len(got) != 1 || got[0].Customer.ID != byPhone.ID {
		t.Errorf("reason=phone: %+v", got)
	}
	if got, _ := list("?min_score=0.9"); len(got) != 1 || got[0].Customer.ID != byEmail.ID {
		t.Errorf("min_score=0.9: %+v, want the folded email's alone", got)
	}
	first, next := list("?limit=3")
	if len(first) != 3 || next == nil {
		t.Fatalf("limit=3: %d and cursor %v", len(first), next)
	}
	rest, last := list("?limit=3&cursor=" + *next)
	if got := append(first, rest...); len(got) != 4 || last != nil || got[3].Customer.ID != all[3].Customer.ID {
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
	if len(after) != 2 {
		t.Errorf("after the dismissal and the merge: %+v, want the company's and the address's", after)
	}
	request(t, s, http.MethodGet, "/v1/customers/"+byEmail.ID+"/duplicates", nil, nil).expectProblem(t, http.StatusNotFound, "id", "merged")
}
