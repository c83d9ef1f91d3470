-- The reads of a customer's data export (GET /v1/customers/{id}/data-export)
-- that no other route makes.

-- name: GroupNamesByIDs :many
SELECT id, name FROM customer_groups WHERE id = ANY(sqlc.arg(ids)::uuid[]) ORDER BY name, id;

-- name: ListCustomerSessions :many
-- The customer's sessions that still last, oldest first; never their token hashes.
SELECT id, created_at, access_expires_at, refresh_expires_at FROM customer_sessions
WHERE customer_id = $1 AND refresh_expires_at > sqlc.arg(now)::timestamptz
ORDER BY created_at, id;

-- name: ListAllCustomerOrders :many
-- Every order the customer owns, newest first.
SELECT id, number, email, customer_id, channel, total::text AS total, currency, status, placed_at, metadata, version, created_at, updated_at
FROM orders WHERE customer_id = $1
ORDER BY placed_at DESC, id DESC;
