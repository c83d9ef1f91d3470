-- +goose Up
-- Customer accounts: a password (argon2id, PHC string; NULL for guests) and
-- the one-time tokens that emails carry.
ALTER TABLE customers ADD COLUMN password_hash text;

-- Only a SHA-256 of each token is kept: a leaked table gives nobody a usable
-- link. A token serves its own purpose only, once, until it expires.
CREATE TABLE customer_tokens (
    token_hash  bytea       PRIMARY KEY,
    customer_id uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    purpose     text        NOT NULL CHECK (purpose IN
                    ('password_setup', 'verification', 'password_reset', 'email_change', 'deletion')),
    new_email   text,       -- email_change: the address being confirmed
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX customer_tokens_customer_idx ON customer_tokens (customer_id);

-- +goose Down
DROP TABLE customer_tokens;
ALTER TABLE customers DROP COLUMN password_hash;
