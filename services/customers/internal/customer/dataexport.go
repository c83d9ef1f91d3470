package customer

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// DataExport is everything held about a customer (GDPR articles 15 and
// 20), read from one snapshot: GET /v1/customers/{id}/data-export and
// GET /v1/store/me/data-export.
type DataExport struct {
	Customer       Customer
	Addresses      []Address
	Orders         []events.Order
	Groups         []GroupName
	Notes          []Note
	ConsentChanges []ConsentChangeAt
	// History is every change and email, newest first (see History).
	History    []HistoryEntry
	Sessions   []SessionInfo
	Identities []Identity
}

// GroupName is a group the customer belongs to.
type GroupName struct {
	ID   uuid.UUID
	Name string
}

// ConsentChangeAt is a kept change of a consent.
type ConsentChangeAt struct {
	ConsentChange
	At time.Time
}

// SessionInfo is a login that still lasts, without its secrets.
type SessionInfo struct {
	ID               uuid.UUID
	CreatedAt        time.Time
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
}

// DataSnapshot is what a data export reads, on one snapshot.
type DataSnapshot interface {
	Get(ctx context.Context, id uuid.UUID) (Customer, error)
	ListAddresses(ctx context.Context, customerID uuid.UUID, limit int, after *Cursor) ([]Address, error)
	ListNotes(ctx context.Context, customerID uuid.UUID, limit int, after *Cursor) ([]Note, error)
	History(ctx context.Context, customerID uuid.UUID, before int64, limit int) ([]HistoryEntry, error)
	// OrdersOf reads every order the customer owns, newest first, as the
	// API shows them.
	OrdersOf(ctx context.Context, customerID uuid.UUID) ([]events.Order, error)
	GroupNames(ctx context.Context, ids []uuid.UUID) ([]GroupName, error)
	ConsentChanges(ctx context.Context, customerID uuid.UUID) ([]ConsentChangeAt, error)
	Sessions(ctx context.Context, customerID uuid.UUID, now time.Time) ([]SessionInfo, error)
	ListIdentities(ctx context.Context, customerID uuid.UUID) ([]Identity, error)
}

// dataExportPage is how many rows a data export reads at a time.
const dataExportPage = 1000

// DataExport reads everything held about the customer, from one snapshot.
func (s *Service) DataExport(ctx context.Context, id uuid.UUID) (DataExport, error) {
	var out DataExport
	err := s.store.DataSnapshot(ctx, func(snap DataSnapshot) error {
		var err error
		if out.Customer, err = snap.Get(ctx, id); err != nil {
			return err
		}
		if out.Addresses, err = all(func(after *Address) ([]Address, error) {
			var c *Cursor
			if after != nil {
				c = &Cursor{ID: after.ID, Time: after.CreatedAt}
			}
			return snap.ListAddresses(ctx, id, dataExportPage, c)
		}); err != nil {
			return err
		}
		if out.Notes, err = all(func(after *Note) ([]Note, error) {
			var c *Cursor
			if after != nil {
				c = &Cursor{ID: after.ID, Time: after.CreatedAt}
			}
			return snap.ListNotes(ctx, id, dataExportPage, c)
		}); err != nil {
			return err
		}
		if out.History, err = all(func(after *HistoryEntry) ([]HistoryEntry, error) {
			before := int64(math.MaxInt64)
			if after != nil {
				before = after.Position
			}
			return snap.History(ctx, id, before, dataExportPage)
		}); err != nil {
			return err
		}
		if out.Orders, err = snap.OrdersOf(ctx, id); err != nil {
			return err
		}
		if out.Groups, err = snap.GroupNames(ctx, out.Customer.Groups); err != nil {
			return err
		}
		if out.ConsentChanges, err = snap.ConsentChanges(ctx, id); err != nil {
			return err
		}
		if out.Sessions, err = snap.Sessions(ctx, id, s.now()); err != nil {
			return err
		}
		out.Identities, err = snap.ListIdentities(ctx, id)
		return err
	})
	return out, err
}

// all reads every page of a keyset-paginated read, each page after the
// last row of the one before.
func all[T any](page func(after *T) ([]T, error)) ([]T, error) {
	var out []T
	var after *T
	for {
		rows, err := page(after)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		if len(rows) < dataExportPage {
			return out, nil
		}
		after = &out[len(out)-1]
	}
}

// OwnDataExport is DataExport as the customer downloads it: of the
// attributes, only those customers may see, in the customer and in the
// history's changed fields. Staff's export (DataExport) holds them all.
func (s *Service) OwnDataExport(ctx context.Context, id uuid.UUID) (DataExport, error) {
	d, err := s.DataExport(ctx, id)
	if err != nil {
		return d, err
	}
	defs, err := s.store.AttributeDefinitions(ctx)
	if err != nil {
		return d, err
	}
	d.Customer.Attributes = defs.Visible(d.Customer.Attributes)
	for i, h := range d.History {
		d.History[i].Changed = slices.DeleteFunc(slices.Clone(h.Changed), func(f string) bool {
			key, ok := strings.CutPrefix(f, "attributes.")
			return ok && !defs[key].VisibleToCustomer
		})
	}
	return d, nil
}
