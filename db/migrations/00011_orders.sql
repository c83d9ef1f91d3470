-- +goose Up
-- Orders as customer management needs them. The order system records them;
-- a guest order (customer_id NULL) keeps its email so that the order linker
-- can attach it to the account that proves that email. Deleting a customer
-- keeps its orders, with customer_id NULL and the email kept.
CREATE TABLE orders (
    id          uuid        PRIMARY KEY,
    number      text        NOT NULL,
    email       text        NOT NULL,
    customer_id uuid        REFERENCES customers (id) ON DELETE SET NULL,
    channel     text        NOT NULL,
    total       numeric     NOT NULL CHECK (total >= 0),
    currency    text        NOT NULL,
    status      text        NOT NULL,
    placed_at   timestamptz NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}',
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
-- A customer's orders, newest first; also "has an order placed between".
CREATE INDEX orders_customer_placed_idx ON orders (customer_id, placed_at DESC, id DESC);
-- Guest orders by email, for linking.
CREATE INDEX orders_guest_email_idx ON orders (email) WHERE customer_id IS NULL;

-- Order statistics on the customer row, kept by every change of an order's
-- owner in the same transaction, so the staff list filters and sorts on them
-- without touching orders. They are derived: changing them does not bump the
-- customer's version.
ALTER TABLE customers
    ADD COLUMN number_of_orders integer NOT NULL DEFAULT 0,
    ADD COLUMN last_order_at timestamptz;
CREATE INDEX customers_number_of_orders_idx ON customers (number_of_orders, id);

-- +goose Down
DROP INDEX customers_number_of_orders_idx;
ALTER TABLE customers DROP COLUMN last_order_at, DROP COLUMN number_of_orders;
DROP TABLE orders;
