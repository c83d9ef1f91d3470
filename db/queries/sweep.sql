-- name: SweepCustomerTokens :execrows
-- One-time tokens expired before the given time, a batch at a time.
DELETE FROM customer_tokens WHERE token_hash IN (
    SELECT old.token_hash FROM customer_tokens old WHERE old.expires_at < $1 LIMIT 1000);

-- name: SweepCustomerSessions :execrows
-- Sessions (logins) that ended before the given time, a batch at a time.
DELETE FROM customer_sessions WHERE id IN (
    SELECT old.id FROM customer_sessions old WHERE old.refresh_expires_at < $1 LIMIT 1000);

-- name: SweepProcessedCommands :execrows
-- Bus commands processed before the given time, a batch at a time.
DELETE FROM processed_commands WHERE command_id IN (
    SELECT old.command_id FROM processed_commands old WHERE old.processed_at < $1 LIMIT 1000);

-- name: SweepCommandOrder :execrows
-- Order keys whose last command was applied before the given time, a batch at a time.
DELETE FROM command_order WHERE order_key IN (
    SELECT old.order_key FROM command_order old WHERE old.updated_at < $1 LIMIT 1000);
