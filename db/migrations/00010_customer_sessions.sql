-- +goose Up
-- Storefront logins. A session holds a short-lived access token and a
-- refresh token, both kept as SHA-256 only. Refreshing replaces both, so a
-- refresh token works once; the session itself ends at refresh_expires_at.
CREATE TABLE customer_sessions (
    id                 uuid        PRIMARY KEY,
    customer_id        uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    access_hash        bytea       NOT NULL UNIQUE,
    refresh_hash       bytea       NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL,
    access_expires_at  timestamptz NOT NULL,
    refresh_expires_at timestamptz NOT NULL
);
CREATE INDEX customer_sessions_customer_idx ON customer_sessions (customer_id);

-- Failed logins per key ("email:<email>", "addr:<client address>") in a
-- fixed window, shared by every instance of the service.
CREATE TABLE login_failures (
    key               text        PRIMARY KEY,
    failures          integer     NOT NULL,
    window_started_at timestamptz NOT NULL
);
CREATE INDEX login_failures_window_idx ON login_failures (window_started_at);

-- +goose Down
DROP TABLE login_failures;
DROP TABLE customer_sessions;
