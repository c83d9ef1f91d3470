-- +goose Up
-- The command service sweeps one-time tokens a day after they expire, and
-- sessions when they end; these indexes find them without reading the tables.
CREATE INDEX customer_tokens_expires_idx ON customer_tokens (expires_at);
CREATE INDEX customer_sessions_ends_idx ON customer_sessions (refresh_expires_at);

-- +goose Down
DROP INDEX customer_sessions_ends_idx;
DROP INDEX customer_tokens_expires_idx;
