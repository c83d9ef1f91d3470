// Package merge merges a duplicate customer (the source) into another (the
// target): the source's orders, addresses, notes, memberships, consents and
// history move to the target, the source is removed, and its id answers
// with the target's from then on. One transaction, or none.
package merge

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/order"
)

// Refusals of a merge (409 each, with its code).
var (
	ErrSameCustomer = errors.New("a customer cannot be merged into itself")
	ErrRunning      = errors.New("another merge of one of the customers is running")
	ErrTransferOpen = errors.New("one of the customers has an open order transfer")
)

// Input is POST /v1/customers/{id}/merge: the source to merge into the
// customer of the path, and for each of customer.MergeFields whose value
// to keep (the id of the target or of the source; the target's when not
// named).
type Input struct {
	SourceID string            `json:"source_id"`
	Override map[string]string `json:"override"`
}

// Parties is what a merge reads under its locks.
type Parties struct {
	Target, Source customer.Customer
	// The source's belongings that move.
	Orders     []order.Order
	AddressIDs []uuid.UUID
	NoteIDs    []uuid.UUID
	// JoinGroups are the source's groups the target is not in, locked.
	JoinGroups []customer.Group
	// OpenTransfers: either customer has an open order transfer.
	OpenTransfers bool
}

// Plan is what a merge writes.
type Plan struct {
	Target *customer.Mutation
	Orders []order.Order // the moved orders as they become
	Groups []customer.GroupMutation
	// Events are the target's and the orders'; the groups' are in Groups.
	Events []cloudevents.Event
}

// Store runs a merge in one transaction.
type Store interface {
	// Merge takes both customers' merge locks (ErrRunning at once when
	// another merge holds one), locks and reads the parties, lets fn plan,
	// and writes the plan; then it commits, or for a preview rolls back.
	// It returns the target as it is after the plan. An unknown target is
	// customer.ErrNotFound, an unknown source a SourceNotFoundError.
	Merge(ctx context.Context, targetID, sourceID uuid.UUID, commit bool, fn func(Parties) (*Plan, error)) (customer.Customer, Parties, error)
}

// SourceNotFoundError: no customer has the source id (it may have been
// merged itself: Into).
type SourceNotFoundError struct{ Err error }

func (e *SourceNotFoundError) Error() string { return "merge source: " + e.Err.Error() }
func (e *SourceNotFoundError) Unwrap() error { return e.Err }

// Service merges customers.
type Service struct {
	store  Store
	dups   DuplicateStore
	groups GroupStore
	now    func() time.Time
}

// NewService returns a Service.
func NewService[S interface {
	Store
	DuplicateStore
	GroupStore
}](store S) *Service {
	return &Service{store: store, dups: store, groups: store, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
}

// Preview is what a merge would do, written nowhere.
type Preview struct {
	Customer customer.Customer
	Parties  Parties
	Plan     *Plan
}

// Merge merges the source into the target (see customer.Merged for which
// values stay) and returns the target after it. customer.merged and the
// target's customer.updated, each moved order's order.transferred and
// each newly joined group's customer_group.customers_added are its events.
func (s *Service) Merge(ctx context.Context, o customer.Origin, targetID uuid.UUID, in Input) (customer.Customer, error) {
	p, err := s.run(ctx, o, targetID, in, true)
	return p.Customer, err
}

// Preview answers what Merge would do, writing nothing: the same
// transaction, rolled back.
func (s *Service) Preview(ctx context.Context, o customer.Origin, targetID uuid.UUID, in Input) (Preview, error) {
	return s.run(ctx, o, targetID, in, false)
}

func (s *Service) run(ctx context.Context, o customer.Origin, targetID uuid.UUID, in Input, commit bool) (Preview, error) {
	sourceID, fromSource, err := in.validate(targetID)
	if err != nil {
		return Preview{}, err
	}
	var plan *Plan
	c, parties, err := s.store.Merge(ctx, targetID, sourceID, commit, func(p Parties) (*Plan, error) {
		plan, err = s.plan(o, p, fromSource)
		return plan, err
	})
	return Preview{Customer: c, Parties: parties, Plan: plan}, err
}

// plan decides the merge of the parties.
func (s *Service) plan(o customer.Origin, p Parties, fromSource map[string]bool) (*Plan, error) {
	switch {
	case p.Target.IsAnonymized || p.Source.IsAnonymized:
		return nil, customer.ErrAnonymized
	case p.OpenTransfers:
		return nil, ErrTransferOpen
	}
	now := s.now()
	m, err := customer.Merged(o, p.Target, p.Source, fromSource, now)
	if err != nil {
		return nil, err
	}
	orders, orderEvents, err := order.Reassigned(o, p.Orders, p.Target.ID, now)
	if err != nil {
		return nil, err
	}
	plan := &Plan{Target: m, Orders: orders, Events: append(slices.Clone(m.Events), orderEvents...)}
	for _, g := range p.JoinGroups {
		gm, err := customer.MembersChanged(o, g, []uuid.UUID{p.Target.ID}, nil, now)
		if err != nil {
			return nil, err
		}
		plan.Groups = append(plan.Groups, *gm)
	}
	return plan, nil
}

// validate checks the input: the source's id, and the fields to take from
// it.
func (in Input) validate(targetID uuid.UUID) (uuid.UUID, map[string]bool, error) {
	var errs []customer.FieldError
	fail := func(field, code, msg string) {
		errs = append(errs, customer.FieldError{Field: field, Code: code, Message: msg})
	}
	sourceID, err := uuid.Parse(in.SourceID)
	switch {
	case in.SourceID == "":
		fail("source_id", customer.CodeRequired, "source_id is required: the customer to merge into this one")
	case err != nil:
		fail("source_id", customer.CodeInvalid, "source_id must be a customer's UUID")
	}
	fromSource := map[string]bool{}
	for field, who := range in.Override {
		switch {
		case !slices.Contains(customer.MergeFields, field):
			fail("override."+field, customer.CodeInvalid, "override names one of "+strings.Join(customer.MergeFields, ", "))
		case who == in.SourceID && err == nil:
			fromSource[field] = true
		case who != targetID.String():
			fail("override."+field, customer.CodeInvalid, "override."+field+" must be the id of the target or of the source")
		}
	}
	if len(errs) > 0 {
		return uuid.Nil, nil, &customer.ValidationError{Errors: errs}
	}
	if sourceID == targetID {
		return uuid.Nil, nil, ErrSameCustomer
	}
	return sourceID, fromSource, nil
}
