-- name: GetSetting :one
SELECT * FROM settings WHERE key = $1;

-- name: PutSetting :exec
INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at;
