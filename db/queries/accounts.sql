-- name: InsertCustomerToken :exec
INSERT INTO customer_tokens (token_hash, customer_id, purpose, new_email, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: GetCustomerTokenForUpdate :one
-- Locked, so two uses of one token cannot both succeed.
SELECT * FROM customer_tokens WHERE token_hash = $1 FOR UPDATE;

-- name: UseCustomerToken :exec
UPDATE customer_tokens SET used_at = $2 WHERE token_hash = $1;

-- name: GetCustomerByEmail :one
SELECT * FROM customers WHERE email = $1;

-- name: SetCustomerPassword :exec
UPDATE customers SET password_hash = $2 WHERE id = $1;

-- name: LatestCustomerToken :one
-- When the customer was last sent a token of this purpose (the epoch: never).
SELECT COALESCE(max(created_at), 'epoch')::timestamptz AS created_at FROM customer_tokens WHERE customer_id = $1 AND purpose = $2;
