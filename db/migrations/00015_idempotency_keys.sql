-- +goose Up
-- Idempotency-Key: the first answer to a POST with a key, kept for a day so
-- that a client's retry gets that answer instead of a second change. Keys
-- belong to the caller (API token or customer session's customer), so two
-- callers cannot see each other's answers.
CREATE TABLE idempotency_keys (
    owner         text        NOT NULL,
    key           text        NOT NULL,
    fingerprint   bytea       NOT NULL, -- SHA-256 of method, path and body
    status        integer,              -- NULL while the first request runs
    content_type  text        NOT NULL DEFAULT '',
    location      text        NOT NULL DEFAULT '',
    body          bytea       NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
