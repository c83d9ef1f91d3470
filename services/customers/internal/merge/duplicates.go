package merge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

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

// ScoredPair is two customers' ids that may be one person, as the global
// list keeps them.
type ScoredPair struct {
	A, B    uuid.UUID
	Score   float64
	Reasons []string
}

// pairsOf scores the customers sharing a reason with this one (A is it).
func (s *Service) pairsOf(ctx context.Context, id uuid.UUID) ([]ScoredPair, error) {
	found, err := s.dups.DuplicateCandidates(ctx, id, maxCandidates)
	if err != nil {
		return nil, err
	}
	var pairs []ScoredPair
	for _, c := range found {
		if sc, reasons := score(c); len(reasons) > 0 {
			pairs = append(pairs, ScoredPair{A: id, B: c.ID, Score: sc, Reasons: reasons})
		}
	}
	return pairs, nil
}

// scoreScale is a score's precision: three decimals, so a cursor carries
// it exactly as an integer.
const scoreScale = 1000

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
	return math.Round((1-miss)*scoreScale) / scoreScale, reasons
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
	found, err := s.pairsOf(ctx, id)
	if err != nil {
		return DuplicatesPage{}, err
	}
	var all []Duplicate
	for _, p := range found {
		if p.Score < in.MinScore || (in.Reason != "" && !slices.Contains(p.Reasons, in.Reason)) {
			continue
		}
		all = append(all, Duplicate{Customer: customer.Customer{ID: p.B}, Score: p.Score, Reasons: p.Reasons})
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

// GroupStore keeps the scored pairs of the global list, and walks each
// reason's index to build them all.
type GroupStore interface {
	// DuplicateGroups reads up to limit groups of the reason with a key
	// after after, in key order; each lists at most maxGroup customers.
	DuplicateGroups(ctx context.Context, reason, after string, limit, maxGroup int) ([]DuplicateGroup, error)
	// ScorePairs tells for each pair (as[i], bs[i]) what the two share, as
	// a Candidate (ID the second); a pair dismissed, or with a customer
	// gone, is left out.
	ScorePairs(ctx context.Context, as, bs []uuid.UUID) (map[[2]uuid.UUID]Candidate, error)
	// ReplaceDuplicatePairs writes the pairs of the customers of afresh.
	ReplaceDuplicatePairs(ctx context.Context, of []uuid.UUID, pairs []ScoredPair, at time.Time) error
	// UpsertDuplicatePairs writes pairs, keeping the others.
	UpsertDuplicatePairs(ctx context.Context, pairs []ScoredPair, at time.Time) error
	// DuplicatePairs reads up to limit pairs after after (by score
	// descending, then ids descending) with at least minScore and the
	// reason (any when empty).
	DuplicatePairs(ctx context.Context, after ScoredPair, minScore float64, reason string, limit int) ([]ScoredPair, error)
	// BuildDuplicatesOnce runs build unless it runs elsewhere now or
	// (unless again) ran to its end before, and tells whether it ran.
	BuildDuplicatesOnce(ctx context.Context, again bool, build func(context.Context) (time.Time, error)) (bool, error)
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

// RefreshDuplicates scores the pairs of these customers afresh (the finder
// does on each of their events): pairs found now are listed, those no
// longer found are not, and a customer gone has none.
func (s *Service) RefreshDuplicates(ctx context.Context, ids []uuid.UUID) error {
	found := make([][]ScoredPair, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(refreshReaders)
	for i, id := range ids {
		g.Go(func() error {
			var err error
			found[i], err = s.pairsOf(gctx, id)
			if errors.Is(err, customer.ErrNotFound) {
				return nil // gone: its pairs go
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return s.groups.ReplaceDuplicatePairs(ctx, ids, slices.Concat(found...), s.now())
}

// refreshReaders is how many customers' candidates a refresh reads at once.
const refreshReaders = 4

// maxGroup bounds the customers of one group the build pairs (a company
// with thousands of customers is a weak hint): the others are paired when
// an event of theirs is refreshed, which looks at maxCandidates.
const maxGroup = 20

// buildChunk is how many groups the build scores at a time.
const buildChunk = 500

// BuildDuplicates scores every pair, for the customers that were there
// before the finder was (or were written without events, as by a restore
// or a bulk load); it does nothing when another instance is doing it or
// (unless again) it was done before, and tells whether it ran.
func (s *Service) BuildDuplicates(ctx context.Context, again bool) (bool, error) {
	return s.groups.BuildDuplicatesOnce(ctx, again, func(ctx context.Context) (time.Time, error) {
		at := s.now()
		for _, reason := range Reasons {
			for after := ""; ; {
				groups, err := s.groups.DuplicateGroups(ctx, reason, after, buildChunk, maxGroup)
				if err != nil {
					return at, err
				}
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
					return at, err
				}
				var pairs []ScoredPair
				for ab, c := range scored {
					if sc, reasons := score(c); len(reasons) > 0 {
						pairs = append(pairs, ScoredPair{A: ab[0], B: ab[1], Score: sc, Reasons: reasons})
					}
				}
				if err := s.groups.UpsertDuplicatePairs(ctx, pairs, at); err != nil {
					return at, err
				}
				if len(groups) < buildChunk {
					break
				}
				after = groups[len(groups)-1].Key
			}
		}
		return at, nil
	})
}

// pairsOrder names the global list's cursor.
const pairsOrder = "-score,pair"

// AllDuplicates lists the pairs of customers that may be one person across
// all customers, the likeliest first (then by the pair's ids), with the
// filters of one customer's duplicates. The pairs are those the finder
// keeps: a change shows here once its event has been handled, within
// moments.
func (s *Service) AllDuplicates(ctx context.Context, in DuplicatesInput) (PairsPage, error) {
	limit, errs := in.check()
	after := ScoredPair{Score: 2} // above every score: from the first
	if in.Cursor != "" {
		c, ok := customer.DecodeCursor(in.Cursor)
		var b uuid.UUID
		var err error
		if ok && c.Order == pairsOrder {
			b, err = uuid.Parse(c.Text)
		}
		if !ok || c.Order != pairsOrder || err != nil {
			errs = append(errs, customer.FieldError{Field: "cursor", Code: customer.CodeInvalid, Message: "cursor is not valid here; start again without it"})
		} else {
			after = ScoredPair{A: c.ID, B: b, Score: float64(c.Int) / scoreScale}
		}
	}
	if len(errs) > 0 {
		return PairsPage{}, &customer.ValidationError{Errors: errs}
	}
	// One more than the page tells whether another follows.
	found, err := s.groups.DuplicatePairs(ctx, after, in.MinScore, in.Reason, limit+1)
	if err != nil {
		return PairsPage{}, err
	}
	var page PairsPage
	if len(found) > limit {
		found = found[:limit]
		last := found[limit-1]
		page.NextCursor = customer.Cursor{Order: pairsOrder, ID: last.A, Text: last.B.String(), Int: int(math.Round(last.Score * scoreScale))}.Encode()
	}
	ids := make([]uuid.UUID, 0, 2*len(found))
	for _, p := range found {
		ids = append(ids, p.A, p.B)
	}
	cs, err := s.groups.GetMany(ctx, ids)
	if err != nil {
		return PairsPage{}, err
	}
	for _, p := range found {
		a, okA := cs[p.A]
		b, okB := cs[p.B]
		if okA && okB { // else deleted since the page was read
			page.Pairs = append(page.Pairs, Pair{A: a, B: b, Score: p.Score, Reasons: p.Reasons})
		}
	}
	return page, nil
}
