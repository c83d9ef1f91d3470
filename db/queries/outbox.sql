-- name: InsertOutboxEvents :exec
-- Rows get ids in array order, which is the order the relay publishes them in.
INSERT INTO outbox (event_id, nats_subject, partition_key, event)
SELECT unnest(sqlc.arg(event_ids)::uuid[]), unnest(sqlc.arg(nats_subjects)::text[]),
       unnest(sqlc.arg(partition_keys)::text[]), unnest(sqlc.arg(events)::bytea[]);

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
