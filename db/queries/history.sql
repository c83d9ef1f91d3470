-- name: CustomerHistory :many
-- A customer's history, newest first: the event log's entries about it,
-- and its events the relay has not published yet (whose entry is read from
-- the event itself), so that a change shows at once. delivered_at is when
-- the notifier sent a notification's email.
SELECT h.outbox_id, h.event_id, h.type, h.subject, h.sequence, h.occurred_at, h.actor_type, h.actor_id, h.changed,
       h.event, d.sent_at AS delivered_at
FROM (
    SELECT l.outbox_id, l.event_id, l.type, l.subject, l.sequence, l.occurred_at, l.actor_type, l.actor_id, l.changed,
           NULL::bytea AS event
    FROM event_log l
    WHERE l.partition_key = sqlc.arg(customer_id)::text AND l.outbox_id < sqlc.arg(before)::bigint
    UNION ALL
    SELECT o.id, o.event_id, '', '', 0, o.created_at, '', '', '{}'::text[], o.event
    FROM outbox o
    WHERE o.partition_key = sqlc.arg(customer_id)::text AND o.sent_at IS NULL AND o.id < sqlc.arg(before)::bigint
) h
LEFT JOIN notifier_deliveries d ON d.event_id = h.event_id
ORDER BY h.outbox_id DESC
LIMIT sqlc.arg(row_limit);
