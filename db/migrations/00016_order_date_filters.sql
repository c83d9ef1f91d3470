-- +goose Up
-- Customers whose first order predates their account (linked guest orders,
-- transferred orders): few, and the only ones created after a date that can
-- have ordered before it. The list reads them through this index, and walks
-- everyone else from that date backwards (see customer.Service.List).
CREATE INDEX customers_ordered_before_created_idx ON customers (created_at, id) WHERE first_order_at < created_at;
-- Orders by date, for "placed an order in this window".
CREATE INDEX orders_placed_customer_idx ON orders (placed_at) INCLUDE (customer_id);

-- +goose Down
DROP INDEX orders_placed_customer_idx;
DROP INDEX customers_ordered_before_created_idx;
