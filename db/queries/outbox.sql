-- name: InsertOutboxEvent :exec
INSERT INTO outbox (event_id, nats_subject, partition_key, event)
VALUES ($1, $2, $3, $4);

-- name: TryRelayLock :one
-- Only one relay publishes at a time, so two relays never interleave a
-- customer's events. The lock lives until the batch's transaction ends.
SELECT pg_try_advisory_xact_lock(sqlc.arg(lock_key)::bigint);

-- name: UnsentOutboxEvents :many
SELECT id, event_id, nats_subject, partition_key, event FROM outbox
WHERE sent_at IS NULL
ORDER BY id
LIMIT sqlc.arg(batch_size);

-- name: MarkOutboxSent :exec
UPDATE outbox SET sent_at = now() WHERE id = ANY(sqlc.arg(ids)::bigint[]);

-- name: PurgeSentOutbox :execrows
-- Sent events are kept for a while to help debugging, then purged.
DELETE FROM outbox WHERE sent_at < sqlc.arg(sent_before)::timestamptz;

-- name: CountUnsentOutbox :one
SELECT count(*) FROM outbox WHERE sent_at IS NULL;
