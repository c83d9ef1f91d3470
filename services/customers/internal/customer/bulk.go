package customer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Limits on how many ids one call may name.
const (
	MaxBulkIDs        = 1000
	MaxGroupsAtCreate = 100
)

// BulkDeleteInput names the customers to delete.
type BulkDeleteInput struct {
	IDs []string `json:"ids"`
}

// BulkUpdateInput applies one partial update to many customers.
type BulkUpdateInput struct {
	IDs    []string    `json:"ids"`
	Update UpdateInput `json:"update"`
}

// NotFoundError names customers that do not exist. It is ErrNotFound for
// errors.Is, so single-customer callers need not know about it.
type NotFoundError struct {
	IDs []uuid.UUID
	// MergedInto says where those of IDs merged into another went.
	MergedInto map[uuid.UUID]uuid.UUID
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("customers not found: %v", e.IDs) }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// As makes errors.As(err, **MergedError) say where the one customer not
// found went, when it was merged into another.
func (e *NotFoundError) As(target any) bool {
	m, ok := target.(**MergedError)
	if !ok || len(e.IDs) != 1 {
		return false
	}
	into, ok := e.MergedInto[e.IDs[0]]
	if ok {
		*m = &MergedError{Into: into}
	}
	return ok
}

// BulkDelete deletes every named customer or none: one customer.deleted each.
func (s *Service) BulkDelete(ctx context.Context, o Origin, in BulkDeleteInput) ([]uuid.UUID, error) {
	var r rules
	ids := r.ids("ids", in.IDs, MaxBulkIDs)
	if len(in.IDs) == 0 {
		r.fail("ids", CodeRequired, "give the ids of the customers to delete")
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := s.endTransfers(ctx, o, id); err != nil {
			return nil, err
		}
	}
	err := s.store.DeleteMany(ctx, ids, func(cur Customer) (*Mutation, error) {
		return s.deletion(o, cur)
	})
	if err != nil {
		return nil, idsNotFound(err)
	}
	return ids, nil
}

// BulkUpdate applies the update to every named customer or to none, with one
// event per customer that changed. Unique fields cannot be set in bulk.
func (s *Service) BulkUpdate(ctx context.Context, o Origin, in BulkUpdateInput) (customers []Customer, changed []uuid.UUID, err error) {
	var r rules
	ids := r.ids("ids", in.IDs, MaxBulkIDs)
	if len(in.IDs) == 0 {
		r.fail("ids", CodeRequired, "give the ids of the customers to update")
	}
	if in.Update.Email != nil {
		r.fail("update.email", CodeInvalid, "email is unique per customer and cannot be set in bulk")
	}
	if in.Update.ExternalReference.Set {
		r.fail("update.external_reference", CodeInvalid, "external_reference is unique per customer and cannot be set in bulk")
	}
	if err := r.err(); err != nil {
		return nil, nil, err
	}
	defs, err := s.updateDefinitions(ctx, in.Update)
	if err != nil {
		return nil, nil, err
	}
	customers, err = s.store.UpdateMany(ctx, ids, func(cur Customer) (*Mutation, error) {
		if cur.IsAnonymized {
			return nil, &ConflictError{FieldError{Field: "ids", Code: CodeAnonymized,
				Message: "customer " + cur.ID.String() + " is anonymized and cannot be changed"}}
		}
		m, err := s.applyUpdate(o, cur, in.Update, defs)
		if m != nil {
			changed = append(changed, cur.ID)
		}
		return m, err
	})
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			for i := range ve.Errors {
				ve.Errors[i].Field = "update." + ve.Errors[i].Field
			}
		}
		return nil, nil, idsNotFound(err)
	}
	if changed == nil {
		changed = []uuid.UUID{}
	}
	return customers, changed, nil
}

// idsNotFound turns the store's NotFoundError into a field error on "ids".
func idsNotFound(err error) error {
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		return err
	}
	names := make([]string, len(nf.IDs))
	for i, id := range nf.IDs {
		names[i] = id.String()
	}
	return &ValidationError{Errors: []FieldError{{Field: "ids", Code: CodeNotFound,
		Message: "no customer has these ids: " + strings.Join(names, ", ")}}}
}

// ids parses a list of ids: not too many, each a UUID; duplicates are
// dropped. Ids travel as strings so that a bad one is named by its index.
func (r *rules) ids(field string, raw []string, max int) []uuid.UUID {
	if len(raw) > max {
		r.fail(field, CodeTooMany, "%s may hold at most %d ids", field, max)
		return nil
	}
	var out []uuid.UUID
	seen := make(map[uuid.UUID]bool, len(raw))
	for i, s := range raw {
		id, err := uuid.Parse(s)
		if err != nil || id == uuid.Nil {
			r.fail(fmt.Sprintf("%s[%d]", field, i), CodeInvalid, "%q is not a UUID", s)
			continue
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
