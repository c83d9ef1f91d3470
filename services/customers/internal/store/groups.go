package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/db/outbox"
	"github.com/customerbus/customerbus/events/tracing"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

// CreateGroup inserts the group and its events in one statement.
func (s *Store) CreateGroup(ctx context.Context, g customer.Group, evs []cloudevents.Event) (err error) {
	ctx, span := outbox.Start(ctx, evs)
	defer func() { tracing.End(span, err) }()
	ob, err := outbox.Rows(evs)
	if err != nil {
		return err
	}
	return mapError(s.q.InsertCustomerGroupWithEvents(ctx, gen.InsertCustomerGroupWithEventsParams{
		ID: g.ID, Name: g.Name, Description: g.Description, Version: g.Version,
		CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
		EventIds: ob.EventIds, NatsSubjects: ob.NatsSubjects, PartitionKeys: ob.PartitionKeys, Events: ob.Events,
	}))
}

// UpdateGroup locks the group, runs fn and writes what it decides.
func (s *Store) UpdateGroup(ctx context.Context, id uuid.UUID, fn func(customer.Group) (*customer.GroupMutation, error)) (customer.Group, error) {
	var result customer.Group
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		cur, err := lockGroup(ctx, q, id)
		if err != nil {
			return err
		}
		m, err := fn(cur)
		if err != nil {
			return err
		}
		result, err = applyGroup(ctx, q, cur, m)
		return err
	})
	return result, err
}

// ChangeMembers locks the group and the customers to add, changes the
// memberships and lets fn build the events from what changed.
func (s *Store) ChangeMembers(ctx context.Context, id uuid.UUID, add, remove []uuid.UUID,
	fn func(customer.Group, []uuid.UUID, []uuid.UUID) (*customer.GroupMutation, error)) (customer.MembersChange, error) {
	var result customer.MembersChange
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		cur, err := lockGroup(ctx, q, id)
		if err != nil {
			return err
		}
		// Both lists' customers are locked at once, in id order, before any
		// is changed: LockCustomerIDs explains why.
		found, err := q.LockCustomerIDs(ctx, append(slices.Clone(add), remove...))
		if err != nil {
			return fmt.Errorf("store: lock customers: %w", err)
		}
		if missing := missingIDs(add, found); len(missing) > 0 {
			return &customer.NotFoundError{IDs: missing}
		}
		var added, removed []uuid.UUID
		if len(add) > 0 {
			if added, err = q.AddGroupMembers(ctx, gen.AddGroupMembersParams{GroupID: id, CustomerIds: add}); err != nil {
				return fmt.Errorf("store: add members: %w", err)
			}
		}
		if len(remove) > 0 {
			if removed, err = q.RemoveGroupMembers(ctx, gen.RemoveGroupMembersParams{GroupID: id, CustomerIds: remove}); err != nil {
				return fmt.Errorf("store: remove members: %w", err)
			}
		}
		m, err := fn(cur, customer.SortIDs(added), customer.SortIDs(removed))
		if err != nil {
			return err
		}
		g, err := applyGroup(ctx, q, cur, m)
		result = customer.MembersChange{Group: g, Added: added, Removed: removed}
		return err
	})
	return result, err
}

// DeleteGroup locks the group, builds its events with fn and deletes it.
func (s *Store) DeleteGroup(ctx context.Context, id uuid.UUID, fn func(customer.Group) ([]cloudevents.Event, error)) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		cur, err := lockGroup(ctx, q, id)
		if err != nil {
			return err
		}
		evs, err := fn(cur)
		if err != nil {
			return err
		}
		if err := q.RemoveGroupFromAllCustomers(ctx, id); err != nil {
			return fmt.Errorf("store: empty group: %w", err)
		}
		if _, err := q.DeleteCustomerGroup(ctx, id); err != nil {
			return fmt.Errorf("store: delete group: %w", err)
		}
		return writeOutbox(ctx, q, evs)
	})
}

// GetGroup reads one group.
func (s *Store) GetGroup(ctx context.Context, id uuid.UUID) (customer.Group, error) {
	row, err := s.q.GetCustomerGroup(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return customer.Group{}, customer.ErrGroupNotFound
	}
	if err != nil {
		return customer.Group{}, fmt.Errorf("store: read group: %w", err)
	}
	return fromGroupRow(row.CustomerGroup, row.CustomerCount), nil
}

// ListGroups reads one page of groups, oldest first.
func (s *Store) ListGroups(ctx context.Context, search *string, limit int, after *customer.Cursor) ([]customer.Group, error) {
	p := gen.ListCustomerGroupsParams{Q: search, RowLimit: int32(limit)}
	if after != nil {
		p.AfterID, p.AfterTime = &after.ID, &after.Time
	}
	rows, err := s.q.ListCustomerGroups(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("store: list groups: %w", err)
	}
	out := make([]customer.Group, len(rows))
	for i, r := range rows {
		out[i] = fromGroupRow(r.CustomerGroup, r.CustomerCount)
	}
	return out, nil
}

func lockGroup(ctx context.Context, q *gen.Queries, id uuid.UUID) (customer.Group, error) {
	row, err := q.GetCustomerGroupForUpdate(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return customer.Group{}, customer.ErrGroupNotFound
	}
	if err != nil {
		return customer.Group{}, fmt.Errorf("store: lock group: %w", err)
	}
	return fromGroupRow(row.CustomerGroup, row.CustomerCount), nil
}

// applyGroup writes a group mutation and its events; nil leaves cur as it is.
func applyGroup(ctx context.Context, q *gen.Queries, cur customer.Group, m *customer.GroupMutation) (customer.Group, error) {
	if m == nil {
		return cur, nil
	}
	g := m.Group
	n, err := q.UpdateCustomerGroup(ctx, gen.UpdateCustomerGroupParams{
		ID: g.ID, Name: g.Name, Description: g.Description, Version: g.Version,
		UpdatedAt: g.UpdatedAt, ExpectedVersion: cur.Version,
	})
	if err != nil {
		return cur, mapError(err)
	}
	if n != 1 {
		return cur, fmt.Errorf("store: update group %s: version moved", g.ID)
	}
	return g, writeOutbox(ctx, q, m.Events)
}

func fromGroupRow(r gen.CustomerGroup, count int64) customer.Group {
	return customer.Group{
		ID: r.ID, Name: r.Name, Description: r.Description, CustomerCount: count,
		Version: r.Version, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}
