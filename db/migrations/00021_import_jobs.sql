-- +goose Up
-- An import job: a file of customers (spooled in import_job_chunks, so the
-- job survives a restart of the service) applied in batches. Each batch
-- commits its rows, their events, their row errors and the job's checkpoint
-- (rows_done) together, so a resumed job goes on after the last committed
-- row and applies no row twice.
CREATE TABLE import_jobs (
    id            uuid        PRIMARY KEY,
    status        text        NOT NULL CHECK (status IN ('receiving', 'queued', 'running', 'succeeded', 'failed')),
    format        text        NOT NULL CHECK (format IN ('csv', 'ndjson')),
    mode          text        NOT NULL CHECK (mode IN ('create', 'upsert')),
    dry_run       boolean     NOT NULL,
    on_error      text        NOT NULL CHECK (on_error IN ('skip_rows', 'reject_all')),
    actor_type    text        NOT NULL,
    actor_id      text        NOT NULL,
    actor_name    text        NOT NULL,
    trace_parent  text        NOT NULL,
    size_bytes    bigint      NOT NULL DEFAULT 0,
    rows_done     bigint      NOT NULL DEFAULT 0,
    rows_created  bigint      NOT NULL DEFAULT 0,
    rows_updated  bigint      NOT NULL DEFAULT 0,
    rows_failed   bigint      NOT NULL DEFAULT 0,
    error         text        NOT NULL DEFAULT '',
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX import_jobs_pending ON import_jobs (created_at) WHERE status IN ('queued', 'running');

-- The uploaded file, in order; deleted when the job ends (it holds personal
-- data and password hashes).
CREATE TABLE import_job_chunks (
    job_id uuid   NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    seq    int    NOT NULL,
    data   bytea  NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE import_job_errors (
    job_id  uuid   NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    row_num bigint NOT NULL,
    seq     int    NOT NULL,
    field   text   NOT NULL,
    code    text   NOT NULL,
    message text   NOT NULL,
    PRIMARY KEY (job_id, row_num, seq)
);

-- +goose Down
DROP TABLE import_job_errors;
DROP TABLE import_job_chunks;
DROP TABLE import_jobs;
