-- The webhooks service's queries: fanning events out into deliveries,
-- claiming the deliveries due, recording their outcomes. Times come from the
-- database's clock, so instances need no clock sync.

-- name: FanOutWebhookEvents :execrows
-- Each event once, and one delivery of it per active endpoint whose types
-- match (exactly, by its prefix's .*, or *). An event redelivered by
-- JetStream changes nothing; an event no endpoint wants is not stored, nor
-- one from before an erasure of its customer (but the erasure's own
-- event), which came while the erasure deleted the others.
WITH ev AS (
    SELECT unnest(sqlc.arg(ids)::text[]) AS id, unnest(sqlc.arg(types)::text[]) AS type,
           unnest(sqlc.arg(partition_keys)::text[]) AS partition_key, unnest(sqlc.arg(seqs)::bigint[]) AS seq,
           unnest(sqlc.arg(times)::timestamptz[]) AS time, unnest(sqlc.arg(payloads)::bytea[]) AS payload
), matched AS (
    SELECT ev.id, ev.type, ev.partition_key, ev.seq, ev.payload, w.id AS webhook_id
    FROM ev JOIN webhooks w ON w.is_active
        AND (ev.type = ANY(w.event_types) OR '*' = ANY(w.event_types) OR split_part(ev.type, '.', 1) || '.*' = ANY(w.event_types))
    WHERE NOT EXISTS (
        SELECT 1 FROM erasures x
        WHERE x.partition_keys @> ARRAY[ev.partition_key] AND ev.time < x.requested_at AND ev.id <> x.keep_event_id::text)
), stored AS (
    INSERT INTO webhook_events (id, type, partition_key, seq, payload, created_at)
    SELECT DISTINCT ON (id) id, type, partition_key, seq, payload, now() FROM matched
    ON CONFLICT (id) DO NOTHING
)
INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, partition_key, seq, next_attempt_at, created_at)
SELECT gen_random_uuid(), webhook_id, id, type, partition_key, seq, now(), now() FROM matched
ON CONFLICT (event_id, webhook_id) DO NOTHING;

-- name: ClaimWebhookDeliveries :many
-- Up to row_limit deliveries due, each the first pending one of its line
-- (endpoint and partition key) and not held by an attempt in flight, of
-- active endpoints not in busy (those at their limit of requests in
-- flight). Each is held until lease_ms from now and counts an attempt.
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    JOIN webhooks w ON w.id = d.webhook_id AND w.is_active
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND (d.leased_until IS NULL OR d.leased_until < now())
      AND NOT (d.webhook_id = ANY(coalesce(sqlc.arg(busy)::uuid[], '{}')))
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries p
          WHERE p.webhook_id = d.webhook_id AND p.partition_key = d.partition_key AND p.status = 'pending' AND p.seq < d.seq)
    -- The oldest events first: in a backlog, those are mostly the lines'
    -- first deliveries, so few rows are looked at to find row_limit.
    ORDER BY d.seq
    LIMIT sqlc.arg(row_limit)
    FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    -- By id, so the update finds each row by its key.
    UPDATE webhook_deliveries d
    SET leased_until = now() + sqlc.arg(lease_ms)::bigint * interval '1 millisecond', attempts = d.attempts + 1, last_attempt_at = now()
    WHERE d.id = ANY(ARRAY(SELECT id FROM due))
    RETURNING d.id, d.webhook_id, d.event_id, d.attempts
)
SELECT c.id, c.webhook_id, c.event_id, c.attempts, w.url, w.content_mode, w.secret,
       coalesce(CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END, '')::text AS previous_secret,
       e.payload
FROM claimed c JOIN webhooks w ON w.id = c.webhook_id JOIN webhook_events e ON e.id = c.event_id;

-- name: RecordWebhookAttempts :many
-- The outcomes of attempts: delivered, failed (given up), or pending again
-- after retry_ms. An attempt whose delivery was taken over since (its lease
-- ran out and another attempt counted) changes nothing.
UPDATE webhook_deliveries d
SET status = r.status,
    next_attempt_at = CASE WHEN r.status = 'pending' THEN now() + r.retry_ms * interval '1 millisecond' ELSE d.next_attempt_at END,
    leased_until = NULL,
    last_response_code = NULLIF(r.code, 0),
    last_latency_ms = r.latency_ms,
    last_error = NULLIF(r.error, ''),
    delivered_at = CASE WHEN r.status = 'delivered' THEN now() END
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id, unnest(sqlc.arg(attempts)::int[]) AS attempt,
             unnest(sqlc.arg(statuses)::text[]) AS status, unnest(sqlc.arg(retry_ms)::bigint[]) AS retry_ms,
             unnest(sqlc.arg(codes)::int[]) AS code, unnest(sqlc.arg(latencies_ms)::float8[]) AS latency_ms,
             unnest(sqlc.arg(errors)::text[]) AS error) r
WHERE d.id = r.id AND d.attempts = r.attempt AND d.status = 'pending'
RETURNING d.id;

-- name: MarkWebhooksHealthy :exec
UPDATE webhooks SET failing_since = NULL WHERE id = ANY(sqlc.arg(ids)::uuid[]) AND failing_since IS NOT NULL;

-- name: MarkWebhooksFailing :exec
UPDATE webhooks SET failing_since = now() WHERE id = ANY(sqlc.arg(ids)::uuid[]) AND failing_since IS NULL;

-- name: DisableWebhooks :many
-- Switches off the active endpoints among gone (they answered 410) and
-- those among failing whose every attempt failed since before
-- failing_for_ms ago; each counts a disablement.
UPDATE webhooks
SET is_active = false, updated_at = now(), disabled_at = now(), times_disabled = times_disabled + 1,
    disabled_reason = CASE WHEN id = ANY(sqlc.arg(gone)::uuid[]) THEN 'gone' ELSE 'failing' END
WHERE is_active AND (id = ANY(sqlc.arg(gone)::uuid[])
    OR (id = ANY(sqlc.arg(failing)::uuid[]) AND failing_since < now() - sqlc.arg(failing_for_ms)::bigint * interval '1 millisecond'))
RETURNING *;

-- name: WebhookQueueDepths :many
-- Deliveries waiting, per endpoint.
SELECT webhook_id, count(*) AS pending FROM webhook_deliveries WHERE status = 'pending' GROUP BY webhook_id;

-- name: SweepWebhookEvents :execrows
-- Deletes at most batch_size events older than retention_ms with no
-- delivery pending, with their deliveries (the log keeps that long).
DELETE FROM webhook_events
WHERE id IN (
    SELECT e.id FROM webhook_events e
    WHERE e.created_at < now() - sqlc.arg(retention_ms)::bigint * interval '1 millisecond'
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
    ORDER BY e.created_at
    LIMIT sqlc.arg(batch_size)
    FOR UPDATE SKIP LOCKED
);
