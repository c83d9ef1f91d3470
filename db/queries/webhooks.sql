-- Webhook endpoints as staff manage them (the command service), and the
-- deliveries staff look at, ping and retry. The webhooks service's own
-- queries (fan-out, delivery) are in webhook_deliveries.sql.

-- name: LockWebhookCount :exec
-- Serialises creations, so that two at once cannot both pass the limit.
SELECT pg_advisory_xact_lock(hashtextextended('customerbus.webhooks', 0));

-- name: InsertWebhook :execrows
-- Inserts the endpoint unless there are max_webhooks already (0 rows).
INSERT INTO webhooks (id, url, event_types, content_mode, description, is_active, secret, created_at, updated_at)
SELECT sqlc.arg(id), sqlc.arg(url), sqlc.arg(event_types)::text[], sqlc.arg(content_mode), sqlc.arg(description),
       sqlc.arg(is_active), sqlc.arg(secret), sqlc.arg(created_at), sqlc.arg(updated_at)
WHERE (SELECT count(*) FROM webhooks) < sqlc.arg(max_webhooks)::bigint;

-- name: GetWebhook :one
SELECT * FROM webhooks WHERE id = $1;

-- name: GetWebhookForUpdate :one
SELECT * FROM webhooks WHERE id = $1 FOR UPDATE;

-- name: GetWebhookForShare :one
-- The endpoint, kept from being deleted or changed until the caller's
-- transaction ends (a ping inserts its delivery meanwhile).
SELECT * FROM webhooks WHERE id = $1 FOR SHARE;

-- name: UpdateWebhook :exec
UPDATE webhooks SET url = $2, event_types = $3, content_mode = $4, description = $5, is_active = $6,
    disabled_reason = $7, disabled_at = $8, failing_since = $9, secret = $10, previous_secret = $11,
    previous_secret_expires_at = $12, updated_at = $13
WHERE id = $1;

-- name: DeleteWebhook :execrows
-- Its deliveries go with it (ON DELETE CASCADE).
DELETE FROM webhooks WHERE id = $1;

-- name: ListWebhooks :many
-- Newest first, keyset paginated on (created_at, id).
SELECT * FROM webhooks
WHERE sqlc.narg(after_id)::uuid IS NULL
   OR (created_at, id) < (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::uuid)
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(row_limit);

-- name: InsertPingEvent :exec
INSERT INTO webhook_events (id, type, partition_key, seq, payload, created_at)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: InsertPingDelivery :one
INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, partition_key, seq, status, next_attempt_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)
RETURNING *;

-- name: ListWebhookDeliveries :many
-- An endpoint's delivery log, newest first, keyset paginated on
-- (created_at, id) along webhook_deliveries_log_idx.
SELECT * FROM webhook_deliveries
WHERE webhook_id = sqlc.arg(webhook_id)
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(after_id)::uuid IS NULL
       OR (created_at, id) < (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(row_limit);

-- name: LockWebhookDelivery :one
-- Locks the endpoint's delivery and tells whether its event's payload is
-- still kept (it goes once the event's deliveries are done).
SELECT (e.payload IS NOT NULL)::boolean AS has_payload
FROM webhook_deliveries d
JOIN webhook_events e ON e.id = d.event_id
WHERE d.id = sqlc.arg(id) AND d.webhook_id = sqlc.arg(webhook_id)
FOR UPDATE OF d;

-- name: RetryWebhookDelivery :one
-- Due again at once, its attempts kept. The lease of an attempt still in
-- flight stays, so that the delivery is not sent twice at the same time.
UPDATE webhook_deliveries
SET status = 'pending', next_attempt_at = sqlc.arg(now),
    leased_until = CASE WHEN status = 'pending' AND leased_until > sqlc.arg(now) THEN leased_until END
WHERE id = sqlc.arg(id)
RETURNING *;
