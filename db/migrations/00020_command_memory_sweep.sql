-- +goose NO TRANSACTION
-- +goose Up
-- The command service forgets commands processed, and order keys last used,
-- longer ago than COMMANDS_RETENTION, oldest first in small batches; these
-- indexes find them without reading the tables. Built CONCURRENTLY: the
-- tables take a row per command.
CREATE INDEX CONCURRENTLY IF NOT EXISTS processed_commands_processed_at_idx ON processed_commands (processed_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS command_order_updated_at_idx ON command_order (updated_at);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS command_order_updated_at_idx;
DROP INDEX CONCURRENTLY IF EXISTS processed_commands_processed_at_idx;
