package customer

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// ExportPageSize is how many customers an export reads at a time: enough
// that round trips do not dominate, few enough to keep memory flat.
const ExportPageSize = 1_000

// ExportInput is an export request: the filters and order of a list (its
// page, cursor and count do not apply: an export is the whole result), and
// what to read besides the customers.
type ExportInput struct {
	ListInput
	// Addresses reads each customer's addresses, oldest first.
	Addresses bool
	// MetadataKeys reads, before the first customer, the metadata keys of all
	// the customers the export will give (a CSV header needs them);
	// PrivateMetadataKeys those of private metadata as well.
	MetadataKeys        bool
	PrivateMetadataKeys bool
}

// MetadataKeys are the keys present in the metadata of the customers of an
// export, each list sorted.
type MetadataKeys struct {
	Public  []string
	Private []string
}

// ExportWriter receives an export as it is read.
type ExportWriter interface {
	// Keys is called once, before any customer, when metadata keys were asked for.
	Keys(MetadataKeys) error
	// Customer is called for each customer in the export's order, with its
	// addresses (oldest first) when they were asked for.
	Customer(c Customer, addresses []Address) error
}

// Snapshot reads from one consistent state of the database: whatever
// commits while it runs is invisible to it.
type Snapshot interface {
	List(ctx context.Context, q ListQuery) ([]Customer, error)
	// AddressesOf reads the addresses of the customers, each one's oldest first.
	AddressesOf(ctx context.Context, customerIDs []uuid.UUID) (map[uuid.UUID][]Address, error)
	// MetadataKeys reads the metadata keys of the customers matching f;
	// private ones only when private is true.
	MetadataKeys(ctx context.Context, f Filter, private bool) (MetadataKeys, error)
}

// Export reads every customer matching the input's filters, in its order,
// from one snapshot, page after page, and hands each to w as it goes: a
// customer changed or created during the export is given as it was when the
// export began, or not at all, and never twice. Nothing accumulates beyond a
// page. Invalid input fails before w is called.
func (s *Service) Export(ctx context.Context, in ExportInput, w ExportWriter) error {
	q, err := in.ListInput.validate()
	if err != nil {
		return err
	}
	q.Limit, q.After = ExportPageSize, nil
	err = s.store.Snapshot(ctx, func(snap Snapshot) error {
		if in.MetadataKeys || in.PrivateMetadataKeys {
			keys, err := snap.MetadataKeys(ctx, q.Filter, in.PrivateMetadataKeys)
			if err != nil {
				return err
			}
			if !in.MetadataKeys {
				keys.Public = nil
			}
			if err := w.Keys(keys); err != nil {
				return err
			}
		}
		for {
			page, err := snap.List(ctx, q)
			if err != nil {
				return err
			}
			var addresses map[uuid.UUID][]Address
			if in.Addresses && len(page) > 0 {
				ids := make([]uuid.UUID, len(page))
				for i, c := range page {
					ids[i] = c.ID
				}
				if addresses, err = snap.AddressesOf(ctx, ids); err != nil {
					return err
				}
			}
			for _, c := range page {
				if err := w.Customer(c, addresses[c.ID]); err != nil {
					return err
				}
			}
			if len(page) < q.Limit {
				return nil
			}
			after := cursorAfter(q.Order, page[len(page)-1])
			q.After = &after
		}
	})
	if err != nil {
		return fmt.Errorf("export customers: %w", err)
	}
	return nil
}
