-- +goose Up
-- "Placed an order before Y" is exactly "the first order is before Y", as
-- "after X" is "the last order is after X": with both dates on the customer
-- row, the list filters on them through indexes instead of reading orders.
ALTER TABLE customers ADD COLUMN first_order_at timestamptz;
UPDATE customers c SET first_order_at = o.first
FROM (SELECT customer_id, min(placed_at) AS first FROM orders WHERE customer_id IS NOT NULL GROUP BY customer_id) o
WHERE c.id = o.customer_id;
CREATE INDEX customers_first_order_at_idx ON customers (first_order_at);
CREATE INDEX customers_last_order_at_idx ON customers (last_order_at);

-- +goose Down
DROP INDEX customers_last_order_at_idx;
ALTER TABLE customers DROP COLUMN first_order_at;
