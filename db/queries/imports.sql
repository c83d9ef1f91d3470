-- name: InsertImportJob :exec
INSERT INTO import_jobs (id, status, format, mode, dry_run, on_error, actor_type, actor_id, actor_name, trace_parent, created_at)
VALUES ($1, 'receiving', $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: InsertImportChunk :exec
INSERT INTO import_job_chunks (job_id, seq, data) VALUES ($1, $2, $3);

-- name: QueueImportJob :exec
-- The whole file is in: the job may run.
UPDATE import_jobs SET status = 'queued', size_bytes = $2 WHERE id = $1 AND status = 'receiving';

-- name: DeleteImportJob :exec
DELETE FROM import_jobs WHERE id = $1;

-- name: GetImportJob :one
SELECT * FROM import_jobs WHERE id = $1;

-- name: ClaimImportJob :one
-- Takes the oldest job that is queued, or running under a lease that ran
-- out (its instance died): one instance at a time runs a job.
UPDATE import_jobs SET status = 'running', lease_until = sqlc.arg(lease_until),
    started_at = COALESCE(started_at, sqlc.arg(now))
WHERE id = (
    SELECT j.id FROM import_jobs j
    WHERE j.status IN ('queued', 'running') AND (j.lease_until IS NULL OR j.lease_until < sqlc.arg(now))
    ORDER BY j.created_at
    FOR UPDATE SKIP LOCKED
    LIMIT 1)
RETURNING *;

-- name: ImportChunks :many
SELECT seq, data FROM import_job_chunks WHERE job_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3;

-- name: CheckpointImportJob :execrows
-- Commits a batch's progress with the batch, under the lease that ran it.
UPDATE import_jobs SET rows_done = $2, rows_created = rows_created + sqlc.arg(created),
    rows_updated = rows_updated + sqlc.arg(updated), rows_failed = rows_failed + sqlc.arg(failed),
    lease_until = sqlc.arg(lease_until)
WHERE id = $1 AND status = 'running';

-- name: FinishImportJob :exec
UPDATE import_jobs SET status = $2, error = $3, finished_at = $4, lease_until = NULL,
    rows_done = $5, rows_created = $6, rows_updated = $7, rows_failed = $8
WHERE id = $1;

-- name: DeleteImportChunks :exec
DELETE FROM import_job_chunks WHERE job_id = $1;

-- name: InsertImportError :exec
INSERT INTO import_job_errors (job_id, row_num, seq, field, code, message) VALUES ($1, $2, $3, $4, $5, $6);

-- name: DeleteImportErrors :exec
DELETE FROM import_job_errors WHERE job_id = $1;

-- name: ListImportErrors :many
SELECT row_num, seq, field, code, message FROM import_job_errors
WHERE job_id = $1 AND (row_num, seq) > (sqlc.arg(after_row)::bigint, sqlc.arg(after_seq)::int)
ORDER BY row_num, seq
LIMIT $2;

-- name: GetCustomerByExternalReference :one
SELECT * FROM customers WHERE external_reference = $1;

-- name: ResetImportJob :exec
-- A reject_all or dry-run job starts over after an interruption: nothing of
-- it was committed but its errors and counts.
UPDATE import_jobs SET rows_done = 0, rows_created = 0, rows_updated = 0, rows_failed = 0 WHERE id = $1;

-- name: DeleteStaleUploads :execrows
-- Uploads whose instance died while receiving them.
DELETE FROM import_jobs WHERE status = 'receiving' AND created_at < $1;

-- name: CopyCustomers :copyfrom
-- An import's new customers, many at a time.
INSERT INTO customers (
    id, email, first_name, last_name, company_name, phone, note, is_active,
    language_code, external_reference, metadata, private_metadata, has_account,
    is_verified, version, created_at, updated_at, default_shipping_address_id,
    default_billing_address_id, group_ids, password_hash, attributes
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22);

-- name: CopyCustomerAddresses :copyfrom
INSERT INTO customer_addresses (
    id, customer_id, first_name, last_name, company_name, street_address_1,
    street_address_2, city, city_area, postal_code, country, country_area, phone,
    created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15);

-- name: CopyBulkOutbox :copyfrom
-- An import's events, in the bulk lane (bulk true; see UnsentLiveOutboxEvents).
INSERT INTO outbox (event_id, nats_subject, partition_key, event, bulk) VALUES ($1, $2, $3, $4, $5);

-- name: NotifyBulkOutbox :exec
-- Wakes the relay's bulk lane on commit, for CopyBulkOutbox's events: the
-- outbox trigger's notifications wake the live lane only.
SELECT pg_notify('outbox', 'bulk');

-- name: TakenEmailsAndReferences :many
-- Which of these emails and external references customers have already.
SELECT email, external_reference FROM customers
WHERE email = ANY(sqlc.arg(emails)::text[]) OR external_reference = ANY(sqlc.arg(refs)::text[]);
