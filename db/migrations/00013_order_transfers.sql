-- +goose Up
-- Requests to move an order to another customer, approved by the order's
-- owner through a one-time link (Medusa's order transfer). The token is kept
-- as SHA-256 only. At most one request per order is open at a time.
CREATE TABLE order_transfer_requests (
    id               uuid        PRIMARY KEY,
    order_id         uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    from_customer_id uuid        REFERENCES customers (id) ON DELETE SET NULL, -- NULL: a guest order
    from_email       text        NOT NULL, -- where the approval email went
    to_customer_id   uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    token_hash       bytea       NOT NULL UNIQUE,
    status           text        NOT NULL CHECK (status IN ('open', 'accepted', 'declined', 'cancelled', 'expired')),
    version          bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE UNIQUE INDEX order_transfer_requests_open_idx ON order_transfer_requests (order_id) WHERE status = 'open';
CREATE INDEX order_transfer_requests_to_idx ON order_transfer_requests (to_customer_id);

-- +goose Down
DROP TABLE order_transfer_requests;
