-- Erasure of a customer: the command service scrubs the database in the
-- erasure's transaction (Scrub*, InsertErasure); the relay then erases the
-- customer's earlier messages from the streams (the rest).

-- name: MarkCustomerAnonymized :exec
UPDATE customers SET is_anonymized = true, password_hash = NULL WHERE id = $1;

-- name: DeleteCustomerAddresses :exec
DELETE FROM customer_addresses WHERE customer_id = $1;

-- name: DeleteCustomerNotes :exec
DELETE FROM customer_notes WHERE customer_id = $1;

-- name: DeleteCustomerTokens :exec
DELETE FROM customer_tokens WHERE customer_id = $1;

-- name: ScrubCustomerOrders :many
-- The customer's orders, and the guest orders placed with its email, keep
-- everything but the email. It returns their ids: their guest-order days'
-- events are about the customer too.
UPDATE orders SET email = sqlc.arg(placeholder)
WHERE customer_id = sqlc.arg(customer_id) OR (customer_id IS NULL AND email = sqlc.arg(email))
RETURNING id;

-- name: ScrubTransferEmails :exec
-- Transfer requests of the customer's orders, or to or from it, forget the
-- email their approval went to.
UPDATE order_transfer_requests SET from_email = sqlc.arg(placeholder)
WHERE from_customer_id = sqlc.arg(customer_id) OR to_customer_id = sqlc.arg(customer_id)
   OR order_id = ANY(sqlc.arg(order_ids)::uuid[]);

-- name: OpenTransfersOf :many
-- Orders with an open transfer request to or from the customer.
SELECT order_id FROM order_transfer_requests
WHERE status = 'open' AND (from_customer_id = $1 OR to_customer_id = $1);

-- name: ScrubIdempotencyAnswers :exec
-- A kept answer that shows the customer (its id in the body or the
-- location) is replaced by a problem, so a replay answers 410 instead.
UPDATE idempotency_keys
SET status = 410, content_type = 'application/problem+json', location = '', body = sqlc.arg(body)
WHERE status IS NOT NULL AND (position(sqlc.arg(needle)::bytea IN body) > 0 OR position(sqlc.arg(id_text)::text IN location) > 0);

-- name: ScrubCommandReplies :exec
-- The replies kept for the customer's commands go; the rows stay, so each
-- command is still run once.
UPDATE processed_commands SET reply = sqlc.arg(reply)
WHERE customer_id = sqlc.arg(customer_id);

-- name: DeleteCommandOrderKeys :exec
DELETE FROM command_order WHERE order_key = ANY(sqlc.arg(keys)::text[]);

-- name: DeleteWebhookEventsOf :exec
-- An erased customer's events that wait for delivery go, with their
-- deliveries (ON DELETE CASCADE): no endpoint is sent their personal data.
DELETE FROM webhook_events WHERE partition_key = ANY(sqlc.arg(partition_keys)::text[]);

-- name: InsertErasure :exec
INSERT INTO erasures (customer_id, keep_event_id, partition_keys, emails, requested_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (customer_id) DO UPDATE SET
    keep_event_id = EXCLUDED.keep_event_id, partition_keys = EXCLUDED.partition_keys,
    emails = EXCLUDED.emails, requested_at = EXCLUDED.requested_at, erased_at = NULL;

-- name: PendingErasures :many
-- Erasures whose own first event is published and which have no earlier
-- event still unsent: every message they must erase is on its stream.
-- The erasure's own event is found among the customer's log entries (by
-- partition key, indexed), not by its id: the log has no index on that.
SELECT e.*, k.outbox_id AS keep_from FROM erasures e
JOIN event_log k ON k.partition_key = e.customer_id::text AND k.event_id = e.keep_event_id
WHERE e.erased_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM outbox o
      WHERE o.sent_at IS NULL AND o.partition_key = ANY(e.partition_keys) AND o.id < k.outbox_id)
ORDER BY e.requested_at
LIMIT sqlc.arg(batch_size);

-- name: MessagesToErase :many
SELECT outbox_id, stream, stream_seq FROM event_log
WHERE partition_key = ANY(sqlc.arg(partition_keys)::text[]) AND outbox_id < sqlc.arg(keep_from)
  AND stream_seq IS NOT NULL
ORDER BY outbox_id;

-- name: CommandsToErase :many
SELECT command_id, stream_seq FROM processed_commands
WHERE customer_id = $1 AND stream_seq IS NOT NULL;

-- name: MarkMessagesErased :exec
-- The log keeps the entries (a history without personal data) but forgets
-- where they were; the outbox rows, which hold the events, go.
WITH erased AS (
    UPDATE event_log SET stream_seq = NULL WHERE outbox_id = ANY(sqlc.arg(outbox_ids)::bigint[])
    RETURNING outbox_id
)
DELETE FROM outbox WHERE id IN (SELECT outbox_id FROM erased);

-- name: MarkCommandsErased :exec
UPDATE processed_commands SET stream_seq = NULL WHERE command_id = ANY(sqlc.arg(command_ids)::text[]);

-- name: FinishErasure :exec
UPDATE erasures SET erased_at = sqlc.arg(erased_at), emails = '{}', messages_erased = messages_erased + sqlc.arg(messages)::int, last_error = ''
WHERE customer_id = $1;

-- name: FailErasure :exec
-- An erasure another relay finished meanwhile (while this one hung, say)
-- did not fail.
UPDATE erasures SET attempts = attempts + 1, last_error = $2 WHERE customer_id = $1 AND erased_at IS NULL;

-- name: CountPendingErasures :one
SELECT count(*) FROM erasures WHERE erased_at IS NULL;

-- name: MarkSentAndLog :exec
-- Marks the events JetStream acknowledged sent, and records them in the
-- event log, in one statement.
WITH logged AS (
INSERT INTO event_log (outbox_id, event_id, partition_key, subject, type, sequence, occurred_at,
                       actor_type, actor_id, changed, stream, stream_seq, published_at)
SELECT o.id, o.event_id, o.partition_key, l.subject, l.type, l.sequence, l.occurred_at,
       l.actor_type, l.actor_id, string_to_array(l.changed, ','), l.stream, l.stream_seq, now()
FROM (SELECT unnest(sqlc.arg(outbox_ids)::bigint[]) AS outbox_id, unnest(sqlc.arg(subjects)::text[]) AS subject,
             unnest(sqlc.arg(types)::text[]) AS type, unnest(sqlc.arg(sequences)::bigint[]) AS sequence,
             unnest(sqlc.arg(occurred)::timestamptz[]) AS occurred_at, unnest(sqlc.arg(actor_types)::text[]) AS actor_type,
             unnest(sqlc.arg(actor_ids)::text[]) AS actor_id, unnest(sqlc.arg(changed)::text[]) AS changed,
             unnest(sqlc.arg(streams)::text[]) AS stream, unnest(sqlc.arg(stream_seqs)::bigint[]) AS stream_seq) l
JOIN outbox o ON o.id = l.outbox_id
ON CONFLICT (outbox_id) DO NOTHING
)
UPDATE outbox SET sent_at = now() WHERE id = ANY(sqlc.arg(outbox_ids)::bigint[]);
