-- name: InsertAPIToken :exec
INSERT INTO api_tokens (id, name, token_hash, principal_type, permissions)
VALUES ($1, $2, $3, $4, $5);

-- name: GetAPITokenByHash :one
SELECT id, name, principal_type, permissions FROM api_tokens
WHERE token_hash = $1 AND revoked_at IS NULL;

-- name: CountAPITokens :one
SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL;

-- name: ListAPITokens :many
-- Live tokens, newest first (the console's API tokens page).
SELECT id, name, principal_type, permissions, created_at FROM api_tokens
WHERE revoked_at IS NULL ORDER BY created_at DESC, id DESC;

-- name: RevokeAPIToken :execrows
UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL;

-- name: APITokenNames :many
-- The names of these tokens, revoked ones too, to name the actors of events.
SELECT id, name FROM api_tokens WHERE id = ANY(sqlc.arg(ids)::uuid[]);
