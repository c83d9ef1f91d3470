-- +goose Up
-- Customers as staff and apps manage them. Email is stored normalised (trimmed,
-- lower-cased), so a plain unique index makes it unique case-insensitively.
CREATE TABLE customers (
    id                 uuid        PRIMARY KEY,
    email              text        NOT NULL,
    first_name         text        NOT NULL DEFAULT '',
    last_name          text        NOT NULL DEFAULT '',
    company_name       text        NOT NULL DEFAULT '',
    phone              text,
    note               text        NOT NULL DEFAULT '',
    is_active          boolean     NOT NULL DEFAULT true,
    language_code      text        NOT NULL DEFAULT 'en',
    external_reference text,
    metadata           jsonb       NOT NULL DEFAULT '{}',
    private_metadata   jsonb       NOT NULL DEFAULT '{}',
    has_account        boolean     NOT NULL DEFAULT false,
    is_verified        boolean     NOT NULL DEFAULT false,
    version            bigint      NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE UNIQUE INDEX customers_email_key ON customers (email);
CREATE UNIQUE INDEX customers_external_reference_key ON customers (external_reference);
-- Keyset pagination for the default order (-created_at) and its reverse.
CREATE INDEX customers_created_at_id_idx ON customers (created_at, id);

-- The transactional outbox: a command writes its events here in the same
-- transaction as its rows; the relay publishes them to JetStream and marks them sent.
-- event is the CloudEvent in JSON structured form, built once by the command.
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid        NOT NULL,
    nats_subject  text        NOT NULL,
    partition_key text        NOT NULL,
    event         bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz
);
-- The relay only ever scans unsent rows, in id order.
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- One notification per statement (not per row) wakes the relay; NOTIFY is
-- delivered on commit, so the relay never wakes for an event it cannot see yet.
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- API tokens for staff tools and apps. Only a SHA-256 of the token is stored: the
-- token is 256 random bits, so a fast hash is enough (no dictionary to guess from).
CREATE TABLE api_tokens (
    id             uuid        PRIMARY KEY,
    name           text        NOT NULL,
    token_hash     bytea       NOT NULL UNIQUE,
    principal_type text        NOT NULL DEFAULT 'service_account',
    permissions    text[]      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

-- +goose Down
DROP TABLE api_tokens;
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
DROP TABLE outbox;
DROP TABLE customers;
