-- name: InsertCustomerSession :exec
INSERT INTO customer_sessions (id, customer_id, access_hash, refresh_hash, created_at, access_expires_at, refresh_expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: GetCustomerSessionByAccess :one
-- A session authenticates only while its customer is active.
SELECT s.id, s.customer_id, s.access_expires_at
FROM customer_sessions s JOIN customers c ON c.id = s.customer_id
WHERE s.access_hash = $1 AND c.is_active;

-- name: RotateCustomerSession :one
-- Replaces both tokens of the session holding this refresh token, while the
-- session lasts and its customer is active.
UPDATE customer_sessions s
SET access_hash = sqlc.arg(new_access_hash), refresh_hash = sqlc.arg(new_refresh_hash),
    access_expires_at = sqlc.arg(access_expires_at)
WHERE s.refresh_hash = sqlc.arg(refresh_hash) AND s.refresh_expires_at > sqlc.arg(now)
  AND EXISTS (SELECT 1 FROM customers c WHERE c.id = s.customer_id AND c.is_active)
RETURNING s.id, s.customer_id, s.refresh_expires_at;

-- name: DeleteCustomerSession :exec
DELETE FROM customer_sessions WHERE id = $1;

-- name: DeleteCustomerSessions :exec
DELETE FROM customer_sessions WHERE customer_id = $1;

-- name: DeleteEndedCustomerSessions :exec
DELETE FROM customer_sessions WHERE customer_id = $1 AND refresh_expires_at <= $2;

-- name: GetLoginFailures :many
SELECT key, failures, window_started_at FROM login_failures
WHERE key = ANY(sqlc.arg(keys)::text[]) AND window_started_at > sqlc.arg(window_start);

-- name: RecordLoginFailure :exec
-- Counts a failure in the key's current window, or starts a new window.
INSERT INTO login_failures AS f (key, failures, window_started_at) VALUES (sqlc.arg(key), 1, sqlc.arg(now))
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN f.window_started_at <= sqlc.arg(window_start) THEN 1 ELSE f.failures + 1 END,
    window_started_at = CASE WHEN f.window_started_at <= sqlc.arg(window_start) THEN sqlc.arg(now) ELSE f.window_started_at END;

-- name: ClearLoginFailures :exec
DELETE FROM login_failures WHERE key = $1;

-- name: DeleteStaleLoginFailures :exec
-- A few at a time, so that no login waits on a big delete.
DELETE FROM login_failures WHERE key IN (
    SELECT stale.key FROM login_failures stale WHERE stale.window_started_at <= sqlc.arg(window_start) LIMIT 100);
