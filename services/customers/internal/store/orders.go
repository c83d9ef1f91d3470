package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/order"
)

var _ order.Store = (*Store)(nil)

// RecordOrder inserts the order unless its id is known, counts it for its
// customer and writes its events, in one transaction.
func (s *Store) RecordOrder(ctx context.Context, o order.Order, evs []cloudevents.Event) (order.Order, bool, error) {
	var stored order.Order
	var created bool
	key := o.ID
	if o.CustomerID != nil {
		key = *o.CustomerID
	}
	err := s.write(ctx, key, func(q *gen.Queries) error {
		// recordedBefore reads the stored order, which stands.
		recordedBefore := func() error {
			row, err := q.GetOrder(ctx, o.ID)
			if err != nil {
				return fmt.Errorf("store: read order: %w", err)
			}
			stored, err = fromOrderRow(row)
			return err
		}
		if o.CustomerID != nil {
			// Locked like every change of the customer, so that its counters
			// and a concurrent deletion cannot interleave.
			_, err := lockCustomers(ctx, q, []uuid.UUID{*o.CustomerID})
			if errors.Is(err, customer.ErrNotFound) {
				// The owner is gone, but a replay of an order recorded
				// before its deletion still gets the stored order.
				if err := recordedBefore(); !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
			}
			if err != nil {
				return err
			}
		}
		md, _ := json.Marshal(nonNil(o.Metadata))
		_, err := q.InsertOrder(ctx, gen.InsertOrderParams{
			ID: o.ID, Number: o.Number, Email: o.Email, CustomerID: o.CustomerID, Channel: o.Channel,
			Total: o.Total, Currency: o.Currency, Status: o.Status, PlacedAt: o.PlacedAt, Metadata: md,
			Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return recordedBefore()
		}
		if err != nil {
			return fmt.Errorf("store: insert order: %w", err)
		}
		if o.CustomerID != nil {
			if err := q.AddCustomerOrders(ctx, gen.AddCustomerOrdersParams{ID: *o.CustomerID, Orders: 1, FirstPlacedAt: o.PlacedAt, LastPlacedAt: o.PlacedAt}); err != nil {
				return fmt.Errorf("store: count order: %w", err)
			}
		}
		stored, created = o, true
		return writeOutbox(ctx, q, evs)
	})
	return stored, created, err
}

// ListOrders reads a customer's orders, newest first.
func (s *Store) ListOrders(ctx context.Context, customerID uuid.UUID, limit int, after *customer.Cursor) ([]order.Order, error) {
	p := gen.ListCustomerOrdersParams{CustomerID: &customerID, RowLimit: int32(limit)}
	if after != nil {
		p.AfterID, p.AfterTime = &after.ID, &after.Time
	}
	rows, err := s.q.ListCustomerOrders(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("store: list orders: %w", err)
	}
	out := make([]order.Order, len(rows))
	for i, r := range rows {
		if out[i], err = fromOrderRow(gen.GetOrderRow(r)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fromOrderRow reads an order as the queries select it (total as text).
func fromOrderRow(r gen.GetOrderRow) (order.Order, error) {
	o := order.Order{
		ID: r.ID, Number: r.Number, Email: r.Email, CustomerID: r.CustomerID, Channel: r.Channel, Total: r.Total,
		Currency: r.Currency, Status: r.Status, PlacedAt: r.PlacedAt.UTC(),
		Version: r.Version, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if err := json.Unmarshal(r.Metadata, &o.Metadata); err != nil {
		return o, fmt.Errorf("store: order %s metadata: %w", r.ID, err)
	}
	return o, nil
}
