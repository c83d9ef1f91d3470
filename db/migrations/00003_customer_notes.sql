-- +goose Up
-- Notes staff append to a customer; they go with the customer when it is deleted.
CREATE TABLE customer_notes (
    id          uuid        PRIMARY KEY,
    customer_id uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    author_type text        NOT NULL,
    author_id   text        NOT NULL,
    author_name text        NOT NULL,
    body        text        NOT NULL,
    created_at  timestamptz NOT NULL
);
-- Newest first, with keyset pagination.
CREATE INDEX customer_notes_customer_created_idx ON customer_notes (customer_id, created_at DESC, id DESC);

-- +goose Down
DROP TABLE customer_notes;
