package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/merge"
)

var _ merge.Store = (*Store)(nil)

// errPreview rolls a preview's transaction back.
var errPreview = errors.New("store: merge preview")

// Merge runs a merge in one transaction (see merge.Store). Locks, in this
// order: the two merge locks (try only), the source's groups the target
// will join (in id order, as a membership change takes a group before its
// customers), then both customers (in id order).
func (s *Store) Merge(ctx context.Context, targetID, sourceID uuid.UUID, commit bool, fn func(merge.Parties) (*merge.Plan, error)) (customer.Customer, merge.Parties, error) {
	var result customer.Customer
	var p merge.Parties
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		for _, id := range customer.SortIDs([]uuid.UUID{targetID, sourceID}) {
			ok, err := q.TryMergeLock(ctx, id.String())
			if err != nil {
				return fmt.Errorf("store: merge lock: %w", err)
			}
			if !ok {
				return merge.ErrRunning
			}
		}
		groups, err := s.lockJoinGroups(ctx, q, targetID, sourceID)
		if err != nil {
			return err
		}
		current, err := lockCustomers(ctx, q, []uuid.UUID{targetID, sourceID})
		var nf *customer.NotFoundError
		if errors.As(err, &nf) {
			if slices.Contains(nf.IDs, targetID) {
				return notFound(ctx, q, targetID)
			}
			return &merge.SourceNotFoundError{Err: notFound(ctx, q, sourceID)}
		}
		if err != nil {
			return err
		}
		if p, err = s.parties(ctx, q, current[targetID], current[sourceID], groups); err != nil {
			return err
		}
		plan, err := fn(p)
		if err != nil {
			return err
		}
		if err := writeMerge(ctx, q, p, plan); err != nil {
			return err
		}
		row, err := q.GetCustomer(ctx, targetID)
		if err != nil {
			return mapError(err)
		}
		if result, err = fromRow(row); err != nil {
			return err
		}
		if !commit {
			return errPreview
		}
		return nil
	})
	if errors.Is(err, errPreview) {
		err = nil
	}
	return result, p, err
}

// lockJoinGroups locks the groups of the source that the target is not in.
func (s *Store) lockJoinGroups(ctx context.Context, q *gen.Queries, targetID, sourceID uuid.UUID) (map[uuid.UUID]customer.Group, error) {
	target, err1 := q.GetCustomer(ctx, targetID)
	source, err2 := q.GetCustomer(ctx, sourceID)
	if err1 != nil || err2 != nil {
		return nil, nil // lockCustomers says which is missing
	}
	out := map[uuid.UUID]customer.Group{}
	for _, g := range customer.SortIDs(slices.Clone(source.GroupIds)) {
		if slices.Contains(target.GroupIds, g) {
			continue
		}
		locked, err := lockGroup(ctx, q, g)
		if err != nil {
			return nil, err
		}
		out[g] = locked
	}
	return out, nil
}

// parties reads what the merge moves.
func (s *Store) parties(ctx context.Context, q *gen.Queries, target, source customer.Customer, locked map[uuid.UUID]customer.Group) (merge.Parties, error) {
	p := merge.Parties{Target: target, Source: source}
	rows, err := q.ListAllCustomerOrders(ctx, &source.ID)
	if err != nil {
		return p, fmt.Errorf("store: merge: orders: %w", err)
	}
	for _, r := range rows {
		o, err := fromOrderRow(gen.GetOrderRow(r))
		if err != nil {
			return p, err
		}
		p.Orders = append(p.Orders, o)
	}
	addresses, err := q.ListCustomerAddresses(ctx, gen.ListCustomerAddressesParams{CustomerID: source.ID, RowLimit: 1 << 30})
	if err != nil {
		return p, fmt.Errorf("store: merge: addresses: %w", err)
	}
	for _, a := range addresses {
		p.AddressIDs = append(p.AddressIDs, a.ID)
	}
	notes, err := q.ListCustomerNotes(ctx, gen.ListCustomerNotesParams{CustomerID: source.ID, RowLimit: 1 << 30})
	if err != nil {
		return p, fmt.Errorf("store: merge: notes: %w", err)
	}
	for _, n := range notes {
		p.NoteIDs = append(p.NoteIDs, n.ID)
	}
	for _, id := range []uuid.UUID{target.ID, source.ID} {
		open, err := q.OpenTransfersOf(ctx, &id)
		if err != nil {
			return p, fmt.Errorf("store: merge: transfers: %w", err)
		}
		p.OpenTransfers = p.OpenTransfers || len(open) > 0
	}
	for _, g := range customer.SortIDs(slices.Clone(source.Groups)) {
		if slices.Contains(target.Groups, g) {
			continue
		}
		locked, ok := locked[g]
		if !ok { // joined in the moment between: take it now
			var err error
			if locked, err = lockGroup(ctx, q, g); err != nil {
				return p, err
			}
		}
		p.JoinGroups = append(p.JoinGroups, locked)
	}
	return p, nil
}

// writeMerge writes the plan: the source's belongings move, the source
// goes, then the target takes its new values.
func writeMerge(ctx context.Context, q *gen.Queries, p merge.Parties, plan *merge.Plan) error {
	t, src := p.Target.ID, p.Source.ID
	for what, move := range map[string]func() error{
		"addresses": func() error {
			return q.MoveCustomerAddresses(ctx, gen.MoveCustomerAddressesParams{TargetID: t, SourceID: src})
		},
		"notes": func() error { return q.MoveCustomerNotes(ctx, gen.MoveCustomerNotesParams{TargetID: t, SourceID: src}) },
		"consent history": func() error {
			return q.MoveConsentChanges(ctx, gen.MoveConsentChangesParams{TargetID: t, SourceID: src})
		},
		"transfers": func() error {
			return q.MoveTransferRequests(ctx, gen.MoveTransferRequestsParams{TargetID: &t, SourceID: &src})
		},
		"history": func() error {
			return q.MoveEventLog(ctx, gen.MoveEventLogParams{TargetID: t.String(), SourceID: src.String()})
		},
		"commands": func() error {
			return q.MoveProcessedCommands(ctx, gen.MoveProcessedCommandsParams{TargetID: &t, SourceID: &src})
		},
		// The source's identities sign in to the target, as its email logs in to it.
		"identities": func() error {
			return q.MoveCustomerIdentities(ctx, gen.MoveCustomerIdentitiesParams{TargetID: t, SourceID: src})
		},
	} {
		if err := move(); err != nil {
			return fmt.Errorf("store: merge: move %s: %w", what, err)
		}
	}
	for _, o := range plan.Orders {
		if err := q.SetOrderOwner(ctx, gen.SetOrderOwnerParams{ID: o.ID, CustomerID: o.CustomerID, Version: o.Version, UpdatedAt: o.UpdatedAt}); err != nil {
			return fmt.Errorf("store: merge: move order: %w", err)
		}
	}
	// The source goes before the target takes its values: its email and
	// external reference are unique.
	if _, err := q.DeleteCustomers(ctx, []uuid.UUID{src}); err != nil {
		return mapError(err)
	}
	// The source's email lives on as the target's, when the target did not
	// take it (logins, and guest orders when it was verified).
	var email *string
	if plan.Target.Customer.Email != p.Source.Email {
		email = &p.Source.Email
	}
	if err := q.RecordMerge(ctx, gen.RecordMergeParams{SourceID: src, TargetID: t, MergedAt: time.Now(), Email: email, EmailVerified: p.Source.IsVerified}); err != nil {
		return fmt.Errorf("store: merge: record: %w", err)
	}
	for i, gm := range plan.Groups {
		if _, err := q.AddGroupMembers(ctx, gen.AddGroupMembersParams{GroupID: gm.Group.ID, CustomerIds: []uuid.UUID{t}}); err != nil {
			return fmt.Errorf("store: merge: join group: %w", err)
		}
		if _, err := applyGroup(ctx, q, p.JoinGroups[i], &plan.Groups[i]); err != nil {
			return err
		}
	}
	if _, err := apply(ctx, q, p.Target, plan.Target); err != nil {
		return err
	}
	if err := q.RecountCustomerOrders(ctx, t); err != nil {
		return fmt.Errorf("store: merge: recount orders: %w", err)
	}
	return writeOutbox(ctx, q, plan.Events)
}

// notFound is the error for a customer id no customer has: where it was
// merged into, when it was.
func notFound(ctx context.Context, q *gen.Queries, id uuid.UUID) error {
	into, err := q.MergedInto(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return customer.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: merged into: %w", err)
	}
	return &customer.MergedError{Into: into}
}

// DuplicateCandidates reads the customers sharing a reason with this one.
func (s *Store) DuplicateCandidates(ctx context.Context, id uuid.UUID, limit int) ([]merge.Candidate, error) {
	exists, err := s.q.CustomerExists(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("store: duplicates: %w", err)
	}
	if !exists {
		return nil, notFound(ctx, s.q, id)
	}
	rows, err := s.q.DuplicateCandidates(ctx, gen.DuplicateCandidatesParams{ID: id, RowLimit: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("store: duplicates: %w", err)
	}
	out := make([]merge.Candidate, len(rows))
	for i, r := range rows {
		out[i] = merge.Candidate{ID: r.ID, Reasons: r.Reasons, NameSimilarity: r.NameSimilarity}
	}
	return out, nil
}

// DismissDuplicate records that the two customers are not one person.
func (s *Store) DismissDuplicate(ctx context.Context, a, b uuid.UUID, o customer.Origin, at time.Time) error {
	err := s.q.DismissDuplicate(ctx, gen.DismissDuplicateParams{X: a, Y: b, ActorType: o.Actor.Type, ActorID: o.Actor.ID, DismissedAt: at})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // a foreign key: no such customer
		return customer.FieldErr("customer_ids", customer.CodeNotFound, "no customer has one of these ids")
	}
	if err != nil {
		return fmt.Errorf("store: dismiss duplicate: %w", err)
	}
	return nil
}

// DuplicateGroups walks a reason's index for groups of customers sharing a
// key, after the key after.
func (s *Store) DuplicateGroups(ctx context.Context, reason, after string, limit, maxGroup int) ([]merge.DuplicateGroup, error) {
	type row struct {
		key string
		ids []uuid.UUID
	}
	var rows []row
	var err error
	lim, per := int32(limit), int32(maxGroup)
	switch reason {
	case merge.ReasonEmail:
		var rs []gen.DuplicateGroupsByEmailRow
		rs, err = s.q.DuplicateGroupsByEmail(ctx, gen.DuplicateGroupsByEmailParams{After: after, RowLimit: lim, GroupLimit: per})
		for _, r := range rs {
			rows = append(rows, row{r.Key, r.Ids})
		}
	case merge.ReasonPhone:
		var rs []gen.DuplicateGroupsByPhoneRow
		rs, err = s.q.DuplicateGroupsByPhone(ctx, gen.DuplicateGroupsByPhoneParams{After: after, RowLimit: lim, GroupLimit: per})
		for _, r := range rs {
			rows = append(rows, row{r.Key, r.Ids})
		}
	case merge.ReasonReference:
		var rs []gen.DuplicateGroupsByReferenceRow
		rs, err = s.q.DuplicateGroupsByReference(ctx, gen.DuplicateGroupsByReferenceParams{After: after, RowLimit: lim, GroupLimit: per})
		for _, r := range rs {
			rows = append(rows, row{r.Key, r.Ids})
		}
	case merge.ReasonNameAndCompany:
		var rs []gen.DuplicateGroupsByCompanyRow
		rs, err = s.q.DuplicateGroupsByCompany(ctx, gen.DuplicateGroupsByCompanyParams{After: after, RowLimit: lim, GroupLimit: per})
		for _, r := range rs {
			rows = append(rows, row{r.Key, r.Ids})
		}
	case merge.ReasonNameAndAddress:
		var rs []gen.DuplicateGroupsByAddressRow
		rs, err = s.q.DuplicateGroupsByAddress(ctx, gen.DuplicateGroupsByAddressParams{After: after, RowLimit: lim, GroupLimit: per})
		for _, r := range rs {
			rows = append(rows, row{r.Key, r.Ids})
		}
	default:
		return nil, fmt.Errorf("store: duplicates: no reason %q", reason)
	}
	if err != nil {
		return nil, fmt.Errorf("store: duplicate groups (%s): %w", reason, err)
	}
	out := make([]merge.DuplicateGroup, len(rows))
	for i, r := range rows {
		out[i] = merge.DuplicateGroup{Key: r.key, IDs: customer.SortIDs(r.ids)}
	}
	return out, nil
}

// ScorePairs tells what each pair shares.
func (s *Store) ScorePairs(ctx context.Context, as, bs []uuid.UUID) (map[[2]uuid.UUID]merge.Candidate, error) {
	out := map[[2]uuid.UUID]merge.Candidate{}
	if len(as) == 0 {
		return out, nil
	}
	rows, err := s.q.ScorePairs(ctx, gen.ScorePairsParams{As: as, Bs: bs})
	if err != nil {
		return nil, fmt.Errorf("store: score pairs: %w", err)
	}
	for _, r := range rows {
		if r.Dismissed {
			continue
		}
		c := merge.Candidate{ID: r.B, NameSimilarity: r.NameSimilarity}
		for _, f := range []struct {
			ok     bool
			reason string
		}{{r.SameEmail, merge.ReasonEmail}, {r.SamePhone, merge.ReasonPhone}, {r.SameReference, merge.ReasonReference},
			{r.SameCompany, merge.ReasonNameAndCompany}, {r.SameAddress, merge.ReasonNameAndAddress}} {
			if f.ok {
				c.Reasons = append(c.Reasons, f.reason)
			}
		}
		out[[2]uuid.UUID{r.A, r.B}] = c
	}
	return out, nil
}

// GetMany reads customers by id.
func (s *Store) GetMany(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]customer.Customer, error) {
	rows, err := s.q.GetCustomersByIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("store: customers: %w", err)
	}
	out := make(map[uuid.UUID]customer.Customer, len(rows))
	for _, r := range rows {
		c, err := fromRow(r)
		if err != nil {
			return nil, err
		}
		out[c.ID] = c
	}
	return out, nil
}

// GetByMergedEmail reads the customer that a merged customer's email lives
// on in.
func (s *Store) GetByMergedEmail(ctx context.Context, email string) (customer.Customer, error) {
	row, err := s.q.GetCustomerByMergedEmail(ctx, gen.GetCustomerByMergedEmailParams{Email: &email})
	if err != nil {
		return customer.Customer{}, mapError(err)
	}
	return fromRow(row)
}

// ReplaceDuplicatePairs writes the pairs of these customers afresh: those
// found now stay, the rest go.
func (s *Store) ReplaceDuplicatePairs(ctx context.Context, of []uuid.UUID, pairs []merge.ScoredPair, at time.Time) error {
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.DeleteDuplicatePairsOf(ctx, of); err != nil {
			return err
		}
		return q.UpsertDuplicatePairs(ctx, pairParams(pairs, at))
	})
	if err != nil {
		return fmt.Errorf("store: replace duplicate pairs: %w", err)
	}
	return nil
}

// UpsertDuplicatePairs writes these pairs, keeping the others.
func (s *Store) UpsertDuplicatePairs(ctx context.Context, pairs []merge.ScoredPair, at time.Time) error {
	if err := s.q.UpsertDuplicatePairs(ctx, pairParams(pairs, at)); err != nil {
		return fmt.Errorf("store: upsert duplicate pairs: %w", err)
	}
	return nil
}

// pairParams lists each pair once, however often it was found (from either
// side): one statement may not write a row twice.
func pairParams(pairs []merge.ScoredPair, at time.Time) gen.UpsertDuplicatePairsParams {
	p := gen.UpsertDuplicatePairsParams{FoundAt: at}
	seen := make(map[[2]uuid.UUID]bool, len(pairs))
	for _, pair := range pairs {
		k := [2]uuid.UUID{pair.A, pair.B}
		if pair.B.String() < pair.A.String() {
			k = [2]uuid.UUID{pair.B, pair.A}
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		p.Xs, p.Ys = append(p.Xs, pair.A), append(p.Ys, pair.B)
		p.Scores, p.Reasons = append(p.Scores, pair.Score), append(p.Reasons, strings.Join(pair.Reasons, ","))
	}
	return p
}

// DuplicatePairs reads up to limit pairs after after, highest score first.
func (s *Store) DuplicatePairs(ctx context.Context, after merge.ScoredPair, minScore float64, reason string, limit int) ([]merge.ScoredPair, error) {
	rows, err := s.q.ListDuplicatePairs(ctx, gen.ListDuplicatePairsParams{
		AfterScore: after.Score, AfterA: after.A, AfterB: after.B, MinScore: minScore, Reason: reason, RowLimit: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("store: duplicate pairs: %w", err)
	}
	out := make([]merge.ScoredPair, len(rows))
	for i, r := range rows {
		out[i] = merge.ScoredPair{A: r.A, B: r.B, Score: r.Score, Reasons: r.Reasons}
	}
	return out, nil
}

// BuildDuplicatesOnce runs build unless another instance is building the
// pairs or (unless again) they were built before, and records when it
// succeeded; it tells whether build ran.
func (s *Store) BuildDuplicatesOnce(ctx context.Context, again bool, build func(context.Context) (time.Time, error)) (bool, error) {
	ran := false
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		builtAt, err := q.ClaimDuplicateBuild(ctx)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && builtAt != nil && !again) {
			return nil // another instance is at it, or it is done
		}
		if err != nil {
			return err
		}
		at, err := build(ctx)
		if err != nil {
			return err
		}
		ran = true
		return q.MarkDuplicatesBuilt(ctx, &at)
	})
	if err != nil {
		return false, fmt.Errorf("store: build duplicate pairs: %w", err)
	}
	return ran, nil
}
