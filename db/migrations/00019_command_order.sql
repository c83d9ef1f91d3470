-- +goose Up
-- For each order key of the bus commands (the customer, mostly), the stream
-- sequence of the last command applied: a command older than that arrives
-- only when JetStream redelivers it after a reader crashed, behind newer
-- ones, and is refused instead of undoing them.
CREATE TABLE command_order (
    order_key  text        PRIMARY KEY,
    last_seq   bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE command_order;
