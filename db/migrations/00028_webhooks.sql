-- +goose Up
-- Webhooks: endpoints that receive the public events over HTTP, and their
-- deliveries. The command service manages the endpoints; the webhooks
-- service fans each event out into one delivery per matching endpoint and
-- delivers them, in order per endpoint and partition key.
CREATE TABLE webhooks (
    id                         uuid        PRIMARY KEY,
    url                        text        NOT NULL,
    -- Exact event types, or a prefix pattern as customer.*, or * for all.
    event_types                text[]      NOT NULL CHECK (cardinality(event_types) > 0),
    -- structured: the CloudEvent as JSON; binary: its data, the attributes as ce- headers.
    content_mode               text        NOT NULL DEFAULT 'structured' CHECK (content_mode IN ('structured', 'binary')),
    description                text        NOT NULL DEFAULT '',
    is_active                  boolean     NOT NULL DEFAULT true,
    -- Why it was switched off, when the webhooks service did it: gone (the
    -- endpoint answered 410) or failing (every attempt failed for too long).
    disabled_reason            text        CHECK (disabled_reason IN ('gone', 'failing')),
    disabled_at                timestamptz,
    -- How often it was disabled: the sequence of its webhook.disabled events.
    times_disabled             integer     NOT NULL DEFAULT 0,
    -- The Standard Webhooks secret (whsec_ and base64) that signs every
    -- delivery; after a rotation the previous one signs too, until it expires.
    secret                     text        NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    -- The first failed attempt since the last delivered one.
    failing_since              timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL
);

-- The events to deliver, each stored once however many endpoints get it,
-- kept with the delivery log (for retries) until WEBHOOKS_DELIVERY_RETENTION;
-- an erasure deletes the customer's at once (they hold personal data).
CREATE TABLE webhook_events (
    id            text        PRIMARY KEY, -- the CloudEvent id: webhook-id on every attempt
    type          text        NOT NULL,
    partition_key text        NOT NULL,    -- deliveries with the same one go in order
    seq           bigint      NOT NULL,    -- the order: the event's stream sequence
    payload       bytea,                   -- the CloudEvent in JSON (structured mode)
    created_at    timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
    id                 uuid        PRIMARY KEY,
    webhook_id         uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id           text        NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    event_type         text        NOT NULL,
    partition_key      text        NOT NULL,
    seq                bigint      NOT NULL,
    status             text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts           integer     NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL,
    -- An attempt in flight holds the delivery until then; past it, the
    -- attempt is taken for dead and the delivery is tried again.
    leased_until       timestamptz,
    last_attempt_at    timestamptz,
    last_response_code integer,
    last_latency_ms    double precision,
    last_error         text,
    created_at         timestamptz NOT NULL,
    delivered_at       timestamptz,
    -- Also how an event's deliveries are found (its deletion, the sweep).
    UNIQUE (event_id, webhook_id)
) WITH (fillfactor = 70); -- room on each page, so a claim's update stays on it (HOT)
-- The deliveries to try, oldest event first (most often each line's
-- first), and the one before each in its line.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_line_idx ON webhook_deliveries (webhook_id, partition_key, seq) WHERE status = 'pending';
-- An endpoint's delivery log, newest first.
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, created_at DESC, id DESC);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhooks;
