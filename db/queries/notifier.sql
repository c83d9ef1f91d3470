-- name: GetNotifierDelivery :one
-- What became of an event's email so far; now() is the database's clock, the
-- same one claimed_at was written with, so the claim's age needs no clock sync.
SELECT claim_id, claimed_at, sent_at, now()::timestamptz AS now FROM notifier_deliveries
WHERE event_id = sqlc.arg(event_id);

-- name: ClaimNotifierDelivery :execrows
-- 0 rows: another attempt holds or held the claim; nothing may be sent.
INSERT INTO notifier_deliveries (event_id, event_type, claim_id)
VALUES (sqlc.arg(event_id), sqlc.arg(event_type), sqlc.arg(claim_id))
ON CONFLICT (event_id) DO NOTHING;

-- name: TakeOverNotifierDelivery :execrows
-- An attempt died between claim and confirm: a new attempt takes its claim
-- over to send the email again. 0 rows: another attempt took it over first,
-- or the old one confirmed after all; nothing may be sent. A claim_id is never
-- reused, so matching it matches its claimed_at too.
UPDATE notifier_deliveries SET claim_id = sqlc.arg(claim_id), claimed_at = now()
WHERE event_id = sqlc.arg(event_id) AND claim_id = sqlc.arg(old_claim_id) AND sent_at IS NULL;

-- name: MarkNotifierDeliverySent :execrows
UPDATE notifier_deliveries SET sent_at = now()
WHERE event_id = sqlc.arg(event_id) AND claim_id = sqlc.arg(claim_id);

-- name: ReleaseNotifierDelivery :exec
-- The SMTP server refused the email, could not be reached or broke off before
-- saying whether it took it, so a later attempt may claim the event again.
DELETE FROM notifier_deliveries
WHERE event_id = sqlc.arg(event_id) AND claim_id = sqlc.arg(claim_id) AND sent_at IS NULL;

-- name: SweepNotifierDeliveries :execrows
-- Deletes at most batch_size records of emails sent more than retention_seconds
-- ago by the database's clock (the one that stamped sent_at), oldest first.
-- Unconfirmed claims stay. One short statement per batch; rows another sweep
-- has locked are skipped rather than waited for.
DELETE FROM notifier_deliveries
WHERE event_id IN (
    SELECT event_id FROM notifier_deliveries
    WHERE sent_at < now() - make_interval(secs => sqlc.arg(retention_seconds)::float8)
    ORDER BY sent_at
    LIMIT sqlc.arg(batch_size)::int
    FOR UPDATE SKIP LOCKED
);
