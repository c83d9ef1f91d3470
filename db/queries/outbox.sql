-- name: InsertOutboxEvents :exec
-- Rows get ids in array order, which is the order the relay publishes them in.
INSERT INTO outbox (event_id, nats_subject, partition_key, event)
SELECT unnest(sqlc.arg(event_ids)::uuid[]), unnest(sqlc.arg(nats_subjects)::text[]),
       unnest(sqlc.arg(partition_keys)::text[]), unnest(sqlc.arg(events)::bytea[]);

-- name: TryRelayLock :one
-- Only one relay publishes a lane at a time, so two relays never interleave
-- a customer's events. The lock lives until the batch's transaction ends.
SELECT pg_try_advisory_xact_lock(sqlc.arg(lock_key)::bigint);

-- name: SetIdleTimeout :exec
-- Has PostgreSQL end the transaction, and with it its advisory locks, when
-- the relay leaves it alone for longer than idle_ms: when it sits idle
-- between statements, or when the relay takes none of a result being sent
-- to it (tcp_user_timeout; over TCP only): a backend blocked sending is not
-- idle. A relay that hangs holding a lock (stopped, frozen) so frees it for
-- the others, and can write nothing after it resumes.
SELECT set_config('idle_in_transaction_session_timeout', (sqlc.arg(idle_ms)::int)::text, true),
       set_config('tcp_user_timeout', (sqlc.arg(idle_ms)::int)::text, true);

-- name: TryRelayLockIdleAfter :one
-- SetIdleTimeout and TryRelayLock in one round trip, for a transaction that
-- begins with taking the lock.
SELECT set_config('idle_in_transaction_session_timeout', (sqlc.arg(idle_ms)::int)::text, true),
       set_config('tcp_user_timeout', (sqlc.arg(idle_ms)::int)::text, true),
       pg_try_advisory_xact_lock(sqlc.arg(lock_key)::bigint) AS locked;

-- name: RelayLock :exec
-- TryRelayLock's lock, waited for.
SELECT pg_advisory_xact_lock(sqlc.arg(lock_key)::bigint);

-- name: UnsentLiveOutboxEvents :many
-- The live lane's unsent events in outbox order, but for those of a customer
-- with an earlier unsent event in the bulk lane: they wait for it, so each
-- customer's events keep their order across the lanes.
SELECT o.* FROM outbox o
WHERE o.sent_at IS NULL AND NOT o.bulk
  AND NOT EXISTS (
      SELECT 1 FROM outbox b
      WHERE b.sent_at IS NULL AND b.bulk AND b.partition_key = o.partition_key AND b.id < o.id)
ORDER BY o.id
LIMIT sqlc.arg(batch_size);

-- name: UnsentBulkOutboxEvents :many
-- The bulk lane's, likewise behind the live lane's.
SELECT o.* FROM outbox o
WHERE o.sent_at IS NULL AND o.bulk
  AND NOT EXISTS (
      SELECT 1 FROM outbox l
      WHERE l.sent_at IS NULL AND NOT l.bulk AND l.partition_key = o.partition_key AND l.id < o.id)
ORDER BY o.id
LIMIT sqlc.arg(batch_size);

-- name: MarkOutboxSent :exec
UPDATE outbox SET sent_at = now() WHERE id = ANY(sqlc.arg(ids)::bigint[]);

-- name: PurgeSentOutbox :execrows
-- Sent events are kept for a while to help debugging, then purged.
DELETE FROM outbox WHERE sent_at < sqlc.arg(sent_before)::timestamptz;

-- name: CountUnsentOutbox :one
SELECT count(*) FROM outbox WHERE sent_at IS NULL;

-- name: OutboxBacklog :one
-- How far the relay is behind in a lane: its unsent events, and how long
-- ago the first of them in outbox order was written (0 when none waits).
-- Both read the lane's index of unsent events (outbox_unsent_lane_idx).
SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL AND bulk = sqlc.arg(bulk)::boolean)::bigint AS unsent,
       coalesce(extract(epoch FROM now() - (
           SELECT created_at FROM outbox WHERE sent_at IS NULL AND bulk = sqlc.arg(bulk)::boolean ORDER BY id LIMIT 1
       )), 0)::float8 AS oldest_age_seconds;
