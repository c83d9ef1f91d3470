package merge

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Reasons two customers may be one person.
const (
	ReasonEmail          = "email"            // the same email once provider variants are folded (+tags, Gmail's dots)
	ReasonPhone          = "phone"            // the same phone number
	ReasonNameAndCompany = "name_and_company" // similar names, the same company
	ReasonNameAndAddress = "name_and_address" // similar names, an address at the same street and postal code
)

// Reasons lists every reason.
var Reasons = []string{ReasonEmail, ReasonPhone, ReasonNameAndCompany, ReasonNameAndAddress}

// minNameSimilarity is how alike (trigram similarity, 0–1) two names must
// be for a shared company or address to count.
const minNameSimilarity = 0.5

// Candidate is a customer the store found sharing something with another.
type Candidate struct {
	ID             uuid.UUID
	Reasons        []string
	NameSimilarity float64
}

// Duplicate is a customer that may be the same person, with a score (0–1,
// higher is likelier) and the reasons.
type Duplicate struct {
	Customer customer.Customer
	Score    float64
	Reasons  []string
}

// DuplicatesInput filters a customer's duplicates.
type DuplicatesInput struct {
	Reason   string  // one of Reasons, or any
	MinScore float64 // 0–1
	Limit    int
	Cursor   string
}

// DuplicatesPage is one page of a customer's duplicates, likeliest first.
type DuplicatesPage struct {
	Duplicates []Duplicate
	NextCursor string
}

// DuplicateStore finds candidates and keeps dismissals.
type DuplicateStore interface {
	// DuplicateCandidates reads up to limit customers sharing a reason
	// with the customer, dismissed pairs left out; ErrNotFound when the
	// customer does not exist.
	DuplicateCandidates(ctx context.Context, id uuid.UUID, limit int) ([]Candidate, error)
	// DismissDuplicate records that the two are not the same person.
	DismissDuplicate(ctx context.Context, a, b uuid.UUID, actor customer.Origin, at time.Time) error
	Get(ctx context.Context, id uuid.UUID) (customer.Customer, error)
}

// maxCandidates bounds the candidates scored for one customer (a company
// shared by thousands of customers, say).
const maxCandidates = 500

// duplicatesOrder names the duplicates cursor's order.
const duplicatesOrder = "-score"

// score is how likely the reasons make it that two customers are one:
// each reason's weight, combined as independent evidence.
func score(c Candidate) (float64, []string) {
	var reasons []string
	miss := 1.0
	for _, r := range c.Reasons {
		var w float64
		switch r {
		case ReasonEmail:
			w = 0.95
		case ReasonPhone:
			w = 0.85
		case ReasonNameAndAddress:
			w = 0.5 + 0.45*c.NameSimilarity
		case ReasonNameAndCompany:
			w = 0.4 + 0.4*c.NameSimilarity
		}
		if (r == ReasonNameAndAddress || r == ReasonNameAndCompany) && c.NameSimilarity < minNameSimilarity {
			continue
		}
		reasons = append(reasons, r)
		miss *= 1 - w
	}
	slices.Sort(reasons)
	return math.Round((1-miss)*1000) / 1000, reasons
}

// Duplicates finds the customers that may be the same person as this one,
// likeliest first.
func (s *Service) Duplicates(ctx context.Context, id uuid.UUID, in DuplicatesInput) (DuplicatesPage, error) {
	var errs []customer.FieldError
	if in.Reason != "" && !slices.Contains(Reasons, in.Reason) {
		errs = append(errs, customer.FieldError{Field: "reason", Code: customer.CodeInvalid, Message: "reason is one of " + strings.Join(Reasons, ", ")})
	}
	if in.MinScore < 0 || in.MinScore > 1 {
		errs = append(errs, customer.FieldError{Field: "min_score", Code: customer.CodeInvalid, Message: "min_score is between 0 and 1"})
	}
	limit := in.Limit
	if limit == 0 {
		limit = customer.DefaultLimit
	}
	if limit < 1 || limit > customer.MaxLimit {
		errs = append(errs, customer.FieldError{Field: "limit", Code: customer.CodeInvalid, Message: "limit is between 1 and 100"})
	}
	offset := 0
	if in.Cursor != "" {
		c, ok := customer.DecodeCursor(in.Cursor)
		if !ok || c.Order != duplicatesOrder || c.ID != id {
			errs = append(errs, customer.FieldError{Field: "cursor", Code: customer.CodeInvalid, Message: "cursor is not valid here; start again without it"})
		}
		offset = c.Int
	}
	if len(errs) > 0 {
		return DuplicatesPage{}, &customer.ValidationError{Errors: errs}
	}
	found, err := s.dups.DuplicateCandidates(ctx, id, maxCandidates)
	if err != nil {
		return DuplicatesPage{}, err
	}
	var all []Duplicate
	for _, c := range found {
		sc, reasons := score(c)
		if len(reasons) == 0 || sc < in.MinScore || (in.Reason != "" && !slices.Contains(reasons, in.Reason)) {
			continue
		}
		all = append(all, Duplicate{Customer: customer.Customer{ID: c.ID}, Score: sc, Reasons: reasons})
	}
	slices.SortFunc(all, func(a, b Duplicate) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Customer.ID.String(), b.Customer.ID.String())
	})
	page := DuplicatesPage{}
	if offset < len(all) {
		page.Duplicates = all[offset:min(offset+limit, len(all))]
	}
	if offset+limit < len(all) {
		page.NextCursor = customer.Cursor{Order: duplicatesOrder, ID: id, Int: offset + limit}.Encode()
	}
	for i, d := range page.Duplicates {
		if page.Duplicates[i].Customer, err = s.dups.Get(ctx, d.Customer.ID); err != nil {
			return DuplicatesPage{}, err
		}
	}
	return page, nil
}

// DismissInput names a pair that is not one person.
type DismissInput struct {
	CustomerIDs []string `json:"customer_ids"`
}

// Dismiss records that the two customers are not the same person, so the
// pair is never suggested again.
func (s *Service) Dismiss(ctx context.Context, o customer.Origin, in DismissInput) error {
	var ids []uuid.UUID
	for _, raw := range in.CustomerIDs {
		id, err := uuid.Parse(raw)
		if err != nil {
			return customer.FieldErr("customer_ids", customer.CodeInvalid, "customer_ids holds two customers' UUIDs")
		}
		ids = append(ids, id)
	}
	if len(ids) != 2 || ids[0] == ids[1] {
		return customer.FieldErr("customer_ids", customer.CodeInvalid, "customer_ids holds two different customers' ids")
	}
	return s.dups.DismissDuplicate(ctx, ids[0], ids[1], o, s.now())
}
