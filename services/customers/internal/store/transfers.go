package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/order"
)

// WithOrder locks the order and its open transfer request, lets fn decide,
// and writes the change in the same transaction.
func (s *Store) WithOrder(ctx context.Context, orderID uuid.UUID, fn func(order.Order, *order.Transfer) (*order.TransferChange, error)) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		ord, err := lockOrder(ctx, q, orderID)
		if err != nil {
			return err
		}
		var open *order.Transfer
		row, err := q.GetOpenTransferForUpdate(ctx, orderID)
		switch {
		case err == nil:
			t := fromTransferRow(row)
			open = &t
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("store: read transfer: %w", err)
		}
		change, err := fn(ord, open)
		if err != nil {
			return err
		}
		return applyTransfer(ctx, q, ord, change)
	})
}

// WithTransferToken locks the transfer request with this token hash and
// its order, lets fn decide, and writes the change.
func (s *Store) WithTransferToken(ctx context.Context, hash []byte, fn func(order.Transfer, order.Order) (*order.TransferChange, error)) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.GetTransferByTokenForUpdate(ctx, hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return customer.ErrTokenInvalid
		}
		if err != nil {
			return fmt.Errorf("store: read transfer: %w", err)
		}
		ord, err := lockOrder(ctx, q, row.OrderID)
		if err != nil {
			return err
		}
		change, err := fn(fromTransferRow(row), ord)
		if err != nil {
			return err
		}
		return applyTransfer(ctx, q, ord, change)
	})
}

func lockOrder(ctx context.Context, q *gen.Queries, id uuid.UUID) (order.Order, error) {
	row, err := q.GetOrderForUpdate(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.Order{}, order.ErrOrderNotFound
	}
	if err != nil {
		return order.Order{}, fmt.Errorf("store: lock order: %w", err)
	}
	return fromOrderRow(gen.GetOrderRow(row))
}

// applyTransfer writes a transfer change: the request, the order's new owner
// with both owners' order counts, and the events.
func applyTransfer(ctx context.Context, q *gen.Queries, before order.Order, c *order.TransferChange) error {
	if c == nil {
		return nil
	}
	if e := c.Expired; e != nil {
		if err := q.SetTransferStatus(ctx, gen.SetTransferStatusParams{ID: e.ID, Status: e.Status, Version: e.Version, UpdatedAt: e.UpdatedAt}); err != nil {
			return fmt.Errorf("store: expire transfer: %w", err)
		}
	}
	t := c.Transfer
	if t.Version == 1 {
		if err := q.InsertTransfer(ctx, gen.InsertTransferParams{
			ID: t.ID, OrderID: t.OrderID, FromCustomerID: t.FromCustomerID, FromEmail: t.FromEmail,
			ToCustomerID: t.ToCustomerID, TokenHash: t.TokenHash, Status: t.Status, Version: t.Version,
			CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, UpdatedAt: t.UpdatedAt,
		}); err != nil {
			return mapError(err)
		}
	} else if err := q.SetTransferStatus(ctx, gen.SetTransferStatusParams{ID: t.ID, Status: t.Status, Version: t.Version, UpdatedAt: t.UpdatedAt}); err != nil {
		return fmt.Errorf("store: update transfer: %w", err)
	}
	if o := c.Order; o != nil {
		// Both owners are locked in id order, like every multi-customer change.
		owners := []uuid.UUID{*o.CustomerID}
		if before.CustomerID != nil {
			owners = append(owners, *before.CustomerID)
		}
		if _, err := lockCustomers(ctx, q, customer.SortIDs(owners)); err != nil {
			return err
		}
		if err := q.SetOrderOwner(ctx, gen.SetOrderOwnerParams{ID: o.ID, CustomerID: o.CustomerID, Version: o.Version, UpdatedAt: o.UpdatedAt}); err != nil {
			return fmt.Errorf("store: move order: %w", err)
		}
		if before.CustomerID != nil {
			if err := q.RecountCustomerOrders(ctx, *before.CustomerID); err != nil {
				return fmt.Errorf("store: recount orders: %w", err)
			}
		}
		if err := q.AddCustomerOrders(ctx, gen.AddCustomerOrdersParams{ID: *o.CustomerID, Orders: 1, FirstPlacedAt: o.PlacedAt, LastPlacedAt: o.PlacedAt}); err != nil {
			return fmt.Errorf("store: count order: %w", err)
		}
	}
	return writeOutbox(ctx, q, c.Events)
}

func fromTransferRow(r gen.OrderTransferRequest) order.Transfer {
	return order.Transfer{
		ID: r.ID, OrderID: r.OrderID, FromCustomerID: r.FromCustomerID, FromEmail: r.FromEmail,
		ToCustomerID: r.ToCustomerID, TokenHash: r.TokenHash, Status: r.Status, Version: r.Version,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// OpenTransfersOf lists the orders with an open transfer request to or
// from the customer.
func (s *Store) OpenTransfersOf(ctx context.Context, customerID uuid.UUID) ([]uuid.UUID, error) {
	ids, err := s.q.OpenTransfersOf(ctx, &customerID)
	if err != nil {
		return nil, fmt.Errorf("store: open transfers: %w", err)
	}
	return ids, nil
}

// OpenTransfers reads the open transfer requests of these orders.
func (s *Store) OpenTransfers(ctx context.Context, orderIDs []uuid.UUID) ([]order.Transfer, error) {
	rows, err := s.q.OpenTransfersOfOrders(ctx, orderIDs)
	if err != nil {
		return nil, fmt.Errorf("store: open transfers of orders: %w", err)
	}
	out := make([]order.Transfer, len(rows))
	for i, r := range rows {
		out[i] = fromTransferRow(r)
	}
	return out, nil
}
