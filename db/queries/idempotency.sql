-- name: ClaimIdempotencyKey :execrows
-- Claims the key for a first request; 0 rows when it is known already.
INSERT INTO idempotency_keys (owner, key, fingerprint, created_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (owner, key) DO NOTHING;

-- name: GetIdempotencyKey :one
SELECT * FROM idempotency_keys WHERE owner = $1 AND key = $2;

-- name: FinishIdempotencyKey :exec
UPDATE idempotency_keys SET status = $3, content_type = $4, location = $5, body = $6
WHERE owner = $1 AND key = $2;

-- name: ReleaseIdempotencyKey :exec
-- Removes a record without an answer (left by a version that committed the
-- record before the change) whose request died.
DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2 AND status IS NULL;

-- name: DeleteExpiredIdempotencyKeys :exec
-- A few at a time, so no request waits on a big delete.
DELETE FROM idempotency_keys WHERE (owner, key) IN (
    SELECT old.owner, old.key FROM idempotency_keys old WHERE old.created_at < $1 LIMIT 100);

-- name: DeleteIdempotencyKeyBefore :exec
-- Forgets the key when it is older than the retention.
DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2 AND created_at < $3;
