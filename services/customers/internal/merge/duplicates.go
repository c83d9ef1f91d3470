package merge

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// Reasons two customers may be one person.
const (
	ReasonEmail          = "email"              // the same email once provider variants are folded (+tags, Gmail's dots)
	ReasonPhone          = "phone"              // the same phone number
	ReasonReference      = "metadata_reference" // the same metadata external_reference (another system's id)
	ReasonNameAndCompany = "name_and_company"   // similar names, the same company
	ReasonNameAndAddress = "name_and_address"   // similar names, an address at the same street and postal code
)

// Reasons lists every reason.
var Reasons = []string{ReasonEmail, ReasonPhone, ReasonReference, ReasonNameAndCompany, ReasonNameAndAddress}

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
		case ReasonReference:
			w = 0.9
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

// check checks the filters and the limit (its default when 0) that one
// customer's duplicates and the global list share; the cursor is each's.
func (in DuplicatesInput) check() (limit int, errs []customer.FieldError) {
	if in.Reason != "" && !slices.Contains(Reasons, in.Reason) {
		errs = append(errs, customer.FieldError{Field: "reason", Code: customer.CodeInvalid, Message: "reason is one of " + strings.Join(Reasons, ", ")})
	}
	if in.MinScore < 0 || in.MinScore > 1 {
		errs = append(errs, customer.FieldError{Field: "min_score", Code: customer.CodeInvalid, Message: "min_score is between 0 and 1"})
	}
	limit = cmp.Or(in.Limit, customer.DefaultLimit)
	if limit < 1 || limit > customer.MaxLimit {
		errs = append(errs, customer.FieldError{Field: "limit", Code: customer.CodeInvalid, Message: fmt.Sprintf("limit is between 1 and %d", customer.MaxLimit)})
	}
	return limit, errs
}

// Duplicates finds the customers that may be the same person as this one,
// likeliest first.
func (s *Service) Duplicates(ctx context.Context, id uuid.UUID, in DuplicatesInput) (DuplicatesPage, error) {
	limit, errs := in.check()
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

// DuplicateGroup is customers sharing one key of a reason (an email once
// folded, a phone, a company, an address's place).
type DuplicateGroup struct {
	Key string
	IDs []uuid.UUID
}

// GroupStore walks a reason's index for groups, and scores pairs.
type GroupStore interface {
	// DuplicateGroups reads up to limit groups of the reason with a key
	// after after, in key order; each lists at most maxGroup customers.
	DuplicateGroups(ctx context.Context, reason, after string, limit, maxGroup int) ([]DuplicateGroup, error)
	// ScorePairs tells for each pair (as[i], bs[i]) what the two share, as
	// a Candidate (ID the second); a pair dismissed, or with a customer
	// gone, is left out.
	ScorePairs(ctx context.Context, as, bs []uuid.UUID) (map[[2]uuid.UUID]Candidate, error)
	// GetMany reads customers by id; those gone are left out.
	GetMany(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]customer.Customer, error)
}

// Pair is two customers that may be one person.
type Pair struct {
	A, B    customer.Customer
	Score   float64
	Reasons []string
}

// PairsPage is one page of GET /v1/customer-duplicates.
type PairsPage struct {
	Pairs      []Pair
	NextCursor string
}

// walkOrder is the order the global list walks the reasons in: the
// likeliest first.
var walkOrder = []string{ReasonEmail, ReasonReference, ReasonPhone, ReasonNameAndAddress, ReasonNameAndCompany}

// maxGroup bounds the customers of one group a page looks at (a company
// with thousands of customers).
const maxGroup = 20

// pairsOrder names the global list's cursor.
const pairsOrder = "duplicates"

// AllDuplicates lists pairs of customers that may be one person across all
// customers: the pairs found by the folded email first, then the phone, the
// address and the company (or those of one reason), each scored as for one
// customer's duplicates and listed once, under the first reason that finds
// it. A page ends with a group's last pair, so it can hold a few more than
// limit; with min_score it can hold fewer, and a cursor still follows.
func (s *Service) AllDuplicates(ctx context.Context, in DuplicatesInput) (PairsPage, error) {
	limit, errs := in.check()
	reasons := walkOrder
	if in.Reason != "" {
		reasons = []string{in.Reason}
	}
	at, after := 0, ""
	if in.Cursor != "" {
		c, ok := customer.DecodeCursor(in.Cursor)
		if !ok || c.Order != pairsOrder || c.Int < 0 || c.Int >= len(reasons) {
			errs = append(errs, customer.FieldError{Field: "cursor", Code: customer.CodeInvalid, Message: "cursor is not valid here; start again without it"})
		} else {
			at, after = c.Int, c.Text
		}
	}
	if len(errs) > 0 {
		return PairsPage{}, &customer.ValidationError{Errors: errs}
	}
	var page PairsPage
	for ; at < len(reasons); at, after = at+1, "" {
		reason := reasons[at]
		for {
			groups, err := s.groups.DuplicateGroups(ctx, reason, after, limit, maxGroup)
			if err != nil {
				return PairsPage{}, err
			}
			// The groups' pairs, scored together; a page takes whole
			// groups until it holds limit pairs.
			var as, bs []uuid.UUID
			for _, g := range groups {
				for i, a := range g.IDs {
					for _, b := range g.IDs[i+1:] {
						as, bs = append(as, a), append(bs, b)
					}
				}
			}
			scored, err := s.groups.ScorePairs(ctx, as, bs)
			if err != nil {
				return PairsPage{}, err
			}
			var ids []uuid.UUID
			var kept []Pair
			for _, g := range groups {
				for i, a := range g.IDs {
					for _, b := range g.IDs[i+1:] {
						c, ok := scored[[2]uuid.UUID{a, b}]
						if !ok {
							continue
						}
						sc, rs := score(c)
						// Listed once: under the first reason walked that finds it.
						if !slices.Contains(rs, reason) || sc < in.MinScore || slices.ContainsFunc(reasons[:at], func(r string) bool { return slices.Contains(rs, r) }) {
							continue
						}
						kept = append(kept, Pair{A: customer.Customer{ID: a}, B: customer.Customer{ID: b}, Score: sc, Reasons: rs})
						ids = append(ids, a, b)
					}
				}
				after = g.Key
				if len(page.Pairs)+len(kept) >= limit {
					page.NextCursor = customer.Cursor{Order: pairsOrder, ID: g.IDs[0], Int: at, Text: g.Key}.Encode()
					break
				}
			}
			if kept, err = s.fill(ctx, kept, ids); err != nil {
				return PairsPage{}, err
			}
			page.Pairs = append(page.Pairs, kept...)
			if page.NextCursor != "" {
				return page, nil
			}
			if len(groups) < limit {
				break // this reason's index is done
			}
		}
	}
	return page, nil
}

// fill reads the pairs' customers; a pair with a customer gone since is
// dropped.
func (s *Service) fill(ctx context.Context, pairs []Pair, ids []uuid.UUID) ([]Pair, error) {
	if len(pairs) == 0 {
		return pairs, nil
	}
	cs, err := s.groups.GetMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := pairs[:0]
	for _, p := range pairs {
		a, okA := cs[p.A.ID]
		b, okB := cs[p.B.ID]
		if okA && okB {
			p.A, p.B = a, b
			out = append(out, p)
		}
	}
	return out, nil
}
