-- Merging a customer (the source) into another (the target), in one
-- transaction: the source's belongings move, then the source goes.

-- name: TryMergeLock :one
-- Only one merge at a time may involve a customer; another is refused at
-- once rather than waited for (so overlapping merges never deadlock).
SELECT pg_try_advisory_xact_lock(hashtextextended('customerbus.merge:' || sqlc.arg(customer_id)::text, 0));

-- name: MoveCustomerAddresses :exec
UPDATE customer_addresses SET customer_id = sqlc.arg(target_id) WHERE customer_id = sqlc.arg(source_id);

-- name: MoveCustomerNotes :exec
UPDATE customer_notes SET customer_id = sqlc.arg(target_id) WHERE customer_id = sqlc.arg(source_id);

-- name: MoveConsentChanges :exec
UPDATE customer_consent_changes SET customer_id = sqlc.arg(target_id) WHERE customer_id = sqlc.arg(source_id);

-- name: MoveTransferRequests :exec
-- Closed transfer requests keep naming the customer (open ones refuse a merge).
UPDATE order_transfer_requests
SET from_customer_id = CASE WHEN from_customer_id = sqlc.arg(source_id) THEN sqlc.arg(target_id) ELSE from_customer_id END,
    to_customer_id = CASE WHEN to_customer_id = sqlc.arg(source_id) THEN sqlc.arg(target_id) ELSE to_customer_id END
WHERE from_customer_id = sqlc.arg(source_id) OR to_customer_id = sqlc.arg(source_id);

-- name: MoveEventLog :exec
-- The source's history becomes the target's (and an erasure of the target
-- finds the source's messages too).
UPDATE event_log SET partition_key = sqlc.arg(target_id)::text WHERE partition_key = sqlc.arg(source_id)::text;

-- name: MoveProcessedCommands :exec
UPDATE processed_commands SET customer_id = sqlc.arg(target_id) WHERE customer_id = sqlc.arg(source_id);

-- name: RecordMerge :exec
-- The source now lives on in the target, and so do the ids merged into the
-- source before.
WITH followed AS (
    UPDATE merged_customers SET target_id = sqlc.arg(target_id) WHERE target_id = sqlc.arg(source_id)
)
INSERT INTO merged_customers (merged_id, target_id, merged_at, email, email_verified)
VALUES (sqlc.arg(source_id), sqlc.arg(target_id), sqlc.arg(merged_at), sqlc.narg(email), sqlc.arg(email_verified));

-- name: MergedInto :one
SELECT target_id FROM merged_customers WHERE merged_id = $1;

-- name: GetCustomerByMergedEmail :one
-- The customer an email lives on in: the target of the newest merge of a
-- customer that had it (verified, when only_verified).
SELECT c.* FROM merged_customers m JOIN customers c ON c.id = m.target_id
WHERE m.email = sqlc.arg(email) AND (m.email_verified OR NOT sqlc.arg(only_verified)::boolean)
ORDER BY m.merged_at DESC
LIMIT 1;

-- name: VerifiedMergedEmails :many
-- The verified emails of the customers merged into this one.
SELECT email::text FROM merged_customers WHERE target_id = $1 AND email IS NOT NULL AND email_verified;
