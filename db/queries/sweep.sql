-- name: SweepCustomerTokens :execrows
-- One-time tokens expired before the given time, a batch at a time.
DELETE FROM customer_tokens WHERE token_hash IN (
    SELECT old.token_hash FROM customer_tokens old WHERE old.expires_at < $1 LIMIT 1000);

-- name: SweepCustomerSessions :execrows
-- Sessions (logins) that ended before the given time, a batch at a time.
DELETE FROM customer_sessions WHERE id IN (
    SELECT old.id FROM customer_sessions old WHERE old.refresh_expires_at < $1 LIMIT 1000);
