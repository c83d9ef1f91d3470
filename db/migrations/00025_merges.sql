-- +goose Up
-- A merged customer is gone, but its id keeps answering: where it went.
-- When the target is merged in its turn, its merged ids follow it, so an
-- id always names the customer it lives on in.
CREATE TABLE merged_customers (
    merged_id uuid        PRIMARY KEY,
    target_id uuid        NOT NULL,
    merged_at timestamptz NOT NULL
);
CREATE INDEX merged_customers_target_idx ON merged_customers (target_id);

-- +goose Down
DROP TABLE merged_customers;
