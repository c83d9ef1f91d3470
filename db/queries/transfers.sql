-- name: GetOrderForUpdate :one
SELECT id, number, email, customer_id, channel, total::text AS total, currency, status, placed_at, metadata, version, created_at, updated_at
FROM orders WHERE id = $1 FOR UPDATE;

-- name: SetOrderOwner :exec
UPDATE orders SET customer_id = $2, version = $3, updated_at = $4 WHERE id = $1;

-- name: GetOpenTransferForUpdate :one
SELECT * FROM order_transfer_requests WHERE order_id = $1 AND status = 'open' FOR UPDATE;

-- name: GetTransferByTokenForUpdate :one
SELECT * FROM order_transfer_requests WHERE token_hash = $1 FOR UPDATE;

-- name: InsertTransfer :exec
INSERT INTO order_transfer_requests (id, order_id, from_customer_id, from_email, to_customer_id, token_hash, status, version, created_at, expires_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);

-- name: SetTransferStatus :exec
UPDATE order_transfer_requests SET status = $2, version = $3, updated_at = $4 WHERE id = $1;

-- name: OpenTransfersOfOrders :many
-- The open transfer requests of these orders (the console's orders list).
SELECT * FROM order_transfer_requests WHERE order_id = ANY(sqlc.arg(order_ids)::uuid[]) AND status = 'open';
