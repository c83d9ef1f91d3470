-- name: InsertOrder :one
-- Records an order once: a second recording of the same id inserts nothing
-- and returns no row.
INSERT INTO orders (id, number, email, customer_id, channel, total, currency, status, placed_at, metadata, version, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, sqlc.arg(total)::text::numeric, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: GetOrder :one
SELECT id, number, email, customer_id, channel, total::text AS total, currency, status, placed_at, metadata, version, created_at, updated_at
FROM orders WHERE id = $1;

-- name: ListCustomerOrders :many
-- Newest first, keyset paginated on (placed_at, id).
SELECT id, number, email, customer_id, channel, total::text AS total, currency, status, placed_at, metadata, version, created_at, updated_at
FROM orders
WHERE customer_id = sqlc.arg(customer_id)
  AND (sqlc.narg(after_id)::uuid IS NULL OR (placed_at, id) < (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)))
ORDER BY placed_at DESC, id DESC
LIMIT sqlc.arg(row_limit);

-- name: AddCustomerOrders :exec
-- Counts orders that became the customer's.
-- (GREATEST and LEAST ignore NULL: a first order sets both dates.)
UPDATE customers
SET number_of_orders = number_of_orders + sqlc.arg(orders)::integer,
    first_order_at = LEAST(first_order_at, sqlc.arg(first_placed_at)::timestamptz),
    last_order_at = GREATEST(last_order_at, sqlc.arg(last_placed_at)::timestamptz)
WHERE id = sqlc.arg(id);

-- name: RecountCustomerOrders :exec
-- Recounts after an order left the customer (a transfer).
UPDATE customers c
SET number_of_orders = (SELECT count(*) FROM orders o WHERE o.customer_id = c.id),
    first_order_at = (SELECT min(o.placed_at) FROM orders o WHERE o.customer_id = c.id),
    last_order_at = (SELECT max(o.placed_at) FROM orders o WHERE o.customer_id = c.id)
WHERE c.id = $1;

-- name: LinkGuestOrders :many
-- Attaches every guest order with one of these (normalised) emails to the
-- customer and returns them as they are now: each gets its own order.linked.
UPDATE orders
SET customer_id = sqlc.arg(customer_id), version = version + 1, updated_at = sqlc.arg(now)
WHERE customer_id IS NULL AND email = ANY(sqlc.arg(emails)::text[])
RETURNING id, number, email, customer_id, channel, total::text AS total, currency, status, placed_at, metadata, version, created_at, updated_at;
