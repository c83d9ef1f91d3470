-- +goose Up
-- Erasure: an anonymized customer keeps its id and its orders, and loses
-- every piece of personal data, in the database and on every stream.
ALTER TABLE customers ADD COLUMN is_anonymized boolean NOT NULL DEFAULT false;

-- The event log: every event the relay published, where JetStream keeps it
-- (stream and sequence, from the publish ack), and what a customer's
-- history shows of it. It outlives the outbox's purge, holds no personal
-- data (types, field names, times, actors), and is how an erasure finds
-- every message about a customer. stream_seq is NULL once the message is
-- erased from its stream.
CREATE TABLE event_log (
    outbox_id     bigint      PRIMARY KEY,
    event_id      uuid        NOT NULL,
    partition_key text        NOT NULL,
    subject       text        NOT NULL,
    type          text        NOT NULL,
    sequence      bigint      NOT NULL,
    occurred_at   timestamptz NOT NULL,
    actor_type    text        NOT NULL,
    actor_id      text        NOT NULL,
    changed       text[]      NOT NULL,
    stream        text        NOT NULL,
    stream_seq    bigint,
    published_at  timestamptz NOT NULL
);
CREATE INDEX event_log_partition_idx ON event_log (partition_key, outbox_id);

-- A bus command's message, to erase it with its customer: the customer it
-- was about and its sequence in CUSTOMERBUS_COMMANDS (NULL for a request,
-- which no stream keeps, and once erased).
ALTER TABLE processed_commands ADD COLUMN customer_id uuid, ADD COLUMN stream_seq bigint;
CREATE INDEX processed_commands_customer_idx ON processed_commands (customer_id) WHERE customer_id IS NOT NULL;

-- Erasures of the event log still to do. The relay erases a customer's
-- earlier messages once the erasure's own first event (keep_event_id) is
-- published: that event and the later ones stay. partition_keys are the
-- customer's and those of its orders' guest-order days; emails are looked
-- for in the dead-letter streams, and dropped when the erasure is done.
CREATE TABLE erasures (
    customer_id     uuid        PRIMARY KEY,
    keep_event_id   uuid        NOT NULL,
    partition_keys  text[]      NOT NULL,
    emails          text[]      NOT NULL,
    requested_at    timestamptz NOT NULL,
    erased_at       timestamptz,
    messages_erased integer     NOT NULL DEFAULT 0,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT ''
);
CREATE INDEX erasures_pending_idx ON erasures (requested_at) WHERE erased_at IS NULL;

-- +goose Down
DROP TABLE erasures;
DROP INDEX processed_commands_customer_idx;
ALTER TABLE processed_commands DROP COLUMN stream_seq, DROP COLUMN customer_id;
DROP TABLE event_log;
ALTER TABLE customers DROP COLUMN is_anonymized;
