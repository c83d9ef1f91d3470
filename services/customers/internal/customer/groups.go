package customer

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// groupsOrder names the groups cursor's order (oldest first).
const groupsOrder = "groups"

// Group is a customer group.
type Group struct {
	ID            uuid.UUID
	Name          string
	Description   string
	CustomerCount int64 // read-only: members at the time of reading
	Version       int64
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Public is the group as the API and events show it.
func (g Group) Public() events.CustomerGroup {
	return events.CustomerGroup{
		ID: g.ID, Name: g.Name, Description: g.Description, CustomerCount: g.CustomerCount,
		Version: g.Version, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
	}
}

// GroupInput creates a group (name required) or changes one (absent fields stay).
type GroupInput struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

// MembersInput adds and removes customers in one call.
type MembersInput struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
}

// MembersChange is what a MembersInput did.
type MembersChange struct {
	Group   Group
	Added   []uuid.UUID
	Removed []uuid.UUID
}

// MembersView is a membership change as HTTP and the bus answer it.
type MembersView struct {
	Group   events.CustomerGroup `json:"customer_group"`
	Added   []uuid.UUID          `json:"added"`
	Removed []uuid.UUID          `json:"removed"`
}

// View is the change's MembersView.
func (ch MembersChange) View() MembersView {
	return MembersView{Group: ch.Group.Public(), Added: ch.Added, Removed: ch.Removed}
}

// GroupsPage is one page of groups, oldest first.
type GroupsPage struct {
	Groups     []Group
	NextCursor string
}

// GroupMutation is what a group change decides inside the store's transaction.
type GroupMutation struct {
	Group  Group
	Events []cloudevents.Event
}

// GroupStore keeps customer groups and their memberships.
type GroupStore interface {
	CreateGroup(ctx context.Context, g Group, evs []cloudevents.Event) error
	// UpdateGroup locks the group, lets fn decide the change (nil: none) and
	// writes it; ErrGroupNotFound when there is no such group.
	UpdateGroup(ctx context.Context, id uuid.UUID, fn func(current Group) (*GroupMutation, error)) (Group, error)
	// ChangeMembers locks the group, adds and removes the customers (unknown
	// customers to add are a NotFoundError), and lets fn build the events
	// from what actually changed.
	ChangeMembers(ctx context.Context, id uuid.UUID, add, remove []uuid.UUID,
		fn func(current Group, added, removed []uuid.UUID) (*GroupMutation, error)) (MembersChange, error)
	DeleteGroup(ctx context.Context, id uuid.UUID, fn func(current Group) ([]cloudevents.Event, error)) error
	GetGroup(ctx context.Context, id uuid.UUID) (Group, error)
	// ListGroups reads groups oldest first; search is a LIKE pattern on the
	// lower-cased name, or nil.
	ListGroups(ctx context.Context, search *string, limit int, after *Cursor) ([]Group, error)
}

// CreateGroup creates a group: customer_group.created.
func (s *Service) CreateGroup(ctx context.Context, o Origin, in GroupInput) (Group, error) {
	var r rules
	now := s.now()
	id, err := uuid.NewV7()
	if err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	g := Group{ID: id, Version: 1, CreatedAt: now, UpdatedAt: now}
	if in.Name == nil {
		r.fail("name", CodeRequired, "name is required")
	}
	r.group(&g, in)
	if err := r.err(); err != nil {
		return Group{}, err
	}
	ev, err := newGroupEvent(o, events.CustomerGroupCreated, g, now, g.Public())
	if err != nil {
		return Group{}, err
	}
	if err := s.store.CreateGroup(ctx, g, []cloudevents.Event{ev}); err != nil {
		return Group{}, err
	}
	return g, nil
}

// UpdateGroup renames a group or changes its description: customer_group.updated.
func (s *Service) UpdateGroup(ctx context.Context, o Origin, id uuid.UUID, in GroupInput) (Group, error) {
	return s.store.UpdateGroup(ctx, id, func(cur Group) (*GroupMutation, error) {
		var r rules
		next := cur
		r.group(&next, in)
		if err := r.err(); err != nil {
			return nil, err
		}
		if next == cur {
			return nil, nil
		}
		next.Version = cur.Version + 1
		next.UpdatedAt = s.now()
		ev, err := newGroupEvent(o, events.CustomerGroupUpdated, next, next.UpdatedAt, next.Public())
		if err != nil {
			return nil, err
		}
		return &GroupMutation{Group: next, Events: []cloudevents.Event{ev}}, nil
	})
}

// DeleteGroup deletes a group and its memberships: customer_group.deleted.
func (s *Service) DeleteGroup(ctx context.Context, o Origin, id uuid.UUID) error {
	return s.store.DeleteGroup(ctx, id, func(cur Group) ([]cloudevents.Event, error) {
		now := s.now()
		cur.Version++
		ev, err := newGroupEvent(o, events.CustomerGroupDeleted, cur, now, events.CustomerGroupDeletedData{
			ID: cur.ID, Name: cur.Name, DeletedAt: now, Version: cur.Version,
		})
		if err != nil {
			return nil, err
		}
		return []cloudevents.Event{ev}, nil
	})
}

// ChangeMembers adds and removes customers, all or nothing. Each non-empty
// side emits its event (customers_added, then customers_removed) listing only
// the customers whose membership changed, and takes its own group version.
func (s *Service) ChangeMembers(ctx context.Context, o Origin, id uuid.UUID, in MembersInput) (MembersChange, error) {
	var r rules
	add := r.ids("add", in.Add, MaxBulkIDs)
	remove := r.ids("remove", in.Remove, MaxBulkIDs)
	if len(add) == 0 && len(remove) == 0 && len(r.errs) == 0 {
		r.fail("add", CodeRequired, "give customer ids to add or remove")
	}
	adding := make(map[uuid.UUID]bool, len(add))
	for _, c := range add {
		adding[c] = true
	}
	for _, c := range remove {
		if adding[c] {
			r.fail("remove", CodeInvalid, "customer %s is both added and removed", c)
			break
		}
	}
	if err := r.err(); err != nil {
		return MembersChange{}, err
	}
	now := s.now()
	change, err := s.store.ChangeMembers(ctx, id, add, remove, func(cur Group, added, removed []uuid.UUID) (*GroupMutation, error) {
		return MembersChanged(o, cur, added, removed, now)
	})
	if err != nil {
		return MembersChange{}, renameIDsField(idsNotFound(err), "add")
	}
	change.Added, change.Removed = nonNilIDs(change.Added), nonNilIDs(change.Removed)
	return change, nil
}

// MembersChanged is the mutation of a group whose members changed: a new
// version and one event for those added, one for those removed; nil when
// none changed.
func MembersChanged(o Origin, cur Group, added, removed []uuid.UUID, now time.Time) (*GroupMutation, error) {
	next := cur
	var evs []cloudevents.Event
	for _, side := range []struct {
		typ string
		ids []uuid.UUID
	}{{events.CustomerGroupCustomersAdded, added}, {events.CustomerGroupCustomersRemoved, removed}} {
		if len(side.ids) == 0 {
			continue
		}
		next.Version++
		ev, err := newGroupEvent(o, side.typ, next, now, events.CustomerGroupMembersData{
			GroupID: cur.ID, CustomerIDs: side.ids, Version: next.Version, ChangedAt: now,
		})
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil, nil
	}
	next.UpdatedAt = now
	next.CustomerCount += int64(len(added) - len(removed))
	return &GroupMutation{Group: next, Events: evs}, nil
}

// GetGroup returns one group.
func (s *Service) GetGroup(ctx context.Context, id uuid.UUID) (Group, error) {
	return s.store.GetGroup(ctx, id)
}

// ListGroups returns one page of groups, oldest first; q matches names.
func (s *Service) ListGroups(ctx context.Context, q string, limit int, cursor string) (GroupsPage, error) {
	var r rules
	limit = r.limit(limit)
	after := r.cursor(cursor, groupsOrder)
	var search *string
	if q = strings.TrimSpace(q); q != "" {
		if !Storable(q) || utf8.RuneCountInString(q) > MaxNameLength {
			r.fail("q", CodeInvalid, "q must be valid UTF-8 of at most %d characters", MaxNameLength)
		}
		p := "%" + escapeLike(strings.ToLower(q)) + "%"
		search = &p
	}
	if err := r.err(); err != nil {
		return GroupsPage{}, err
	}
	rows, err := s.store.ListGroups(ctx, search, limit+1, after)
	if err != nil {
		return GroupsPage{}, err
	}
	page := GroupsPage{Groups: rows}
	if len(rows) > limit {
		last := rows[limit-1]
		page.Groups = rows[:limit]
		page.NextCursor = Cursor{Order: groupsOrder, ID: last.ID, Time: last.CreatedAt}.Encode()
	}
	return page, nil
}

func (r *rules) group(g *Group, in GroupInput) {
	if in.Name != nil {
		g.Name = r.text("name", *in.Name, MaxNameLength)
		if g.Name == "" && !r.failed("name") {
			r.fail("name", CodeRequired, "name must not be blank")
		}
	}
	if in.Description != nil {
		g.Description = r.text("description", *in.Description, MaxNoteLength)
	}
}

// renameIDsField points an "ids" field error at the input's own field name.
func renameIDsField(err error, field string) error {
	if ve, ok := err.(*ValidationError); ok {
		for i := range ve.Errors {
			if ve.Errors[i].Field == "ids" {
				ve.Errors[i].Field = field
			}
		}
	}
	return err
}

func newGroupEvent(o Origin, typ string, g Group, at time.Time, data any) (cloudevents.Event, error) {
	return resourceEvent(o, typ, g.ID, g.Version, at, data)
}
