-- +goose Up
-- A merged customer is gone, but its id keeps answering: where it went.
-- When the target is merged in its turn, its merged ids follow it, so an
-- id always names the customer it lives on in.
-- email is the merged customer's email when the target did not take it:
-- a login with it reaches the target, and when it was verified, the order
-- linker links the guest orders placed with it to the target.
CREATE TABLE merged_customers (
    merged_id      uuid        PRIMARY KEY,
    target_id      uuid        NOT NULL,
    merged_at      timestamptz NOT NULL,
    email          text,
    email_verified boolean     NOT NULL DEFAULT false
);
CREATE INDEX merged_customers_target_idx ON merged_customers (target_id);
CREATE INDEX merged_customers_email_idx ON merged_customers (email) WHERE email IS NOT NULL;

-- +goose Down
DROP TABLE merged_customers;
