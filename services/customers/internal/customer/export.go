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
	// AttributeKeys gives the keys of every attribute definition too.
	AttributeKeys bool
}

// MetadataKeys are the keys present in the metadata of the customers of an
// export, each list sorted.
type MetadataKeys struct {
	Public  []string
	Private []string
	// Attributes are the keys of the attribute definitions (CSV columns
	// attributes.<key>).
	Attributes []string
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
// few pages. Invalid input fails before w is called.
func (s *Service) Export(ctx context.Context, in ExportInput, w ExportWriter) error {
	q, err := s.listQuery(ctx, in.ListInput)
	if err != nil {
		return err
	}
	q.Limit, q.After = ExportPageSize, nil
	err = s.store.Snapshot(ctx, func(snap Snapshot) error {
		if in.MetadataKeys || in.PrivateMetadataKeys || in.AttributeKeys {
			var keys MetadataKeys
			if in.MetadataKeys || in.PrivateMetadataKeys {
				var err error
				if keys, err = snap.MetadataKeys(ctx, q.Filter, in.PrivateMetadataKeys); err != nil {
					return err
				}
			}
			if !in.MetadataKeys {
				keys.Public = nil
			}
			if in.AttributeKeys {
				defs, err := s.AttributeDefinitions(ctx)
				if err != nil {
					return err
				}
				for _, d := range defs {
					keys.Attributes = append(keys.Attributes, d.Key)
				}
			}
			if err := w.Keys(keys); err != nil {
				return err
			}
		}
		return exportPages(ctx, snap, q, in.Addresses, w)
	})
	if err != nil {
		return fmt.Errorf("export customers: %w", err)
	}
	return nil
}

// exportPage is one page of an export as read, or the failure to read it.
type exportPage struct {
	customers []Customer
	addresses map[uuid.UUID][]Address
	err       error
}

// exportPages reads the pages of q in a goroutine of their own while w
// writes the page before: the database reads the next page while the
// previous one is encoded and sent, instead of each waiting for the other.
// The reader is the snapshot's only user (a transaction runs one query at a
// time), and at most two pages are held: the one written and the next,
// read and waiting for it. The reader has stopped when exportPages returns.
func exportPages(ctx context.Context, snap Snapshot, q ListQuery, withAddresses bool, w ExportWriter) error {
	ctx, cancel := context.WithCancel(ctx)
	pages := make(chan exportPage)
	go func() {
		defer close(pages)
		for {
			var p exportPage
			p.customers, p.err = snap.List(ctx, q)
			if p.err == nil && withAddresses && len(p.customers) > 0 {
				ids := make([]uuid.UUID, len(p.customers))
				for i, c := range p.customers {
					ids[i] = c.ID
				}
				p.addresses, p.err = snap.AddressesOf(ctx, ids)
			}
			select {
			case pages <- p:
			case <-ctx.Done():
				return
			}
			if p.err != nil || len(p.customers) < q.Limit {
				return
			}
			after := cursorAfter(q.Order, p.customers[len(p.customers)-1])
			q.After = &after
		}
	}()
	defer func() {
		cancel()
		for range pages { // until the reader has stopped
		}
	}()
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		for _, c := range p.customers {
			if err := w.Customer(c, p.addresses[c.ID]); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}
