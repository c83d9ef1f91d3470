-- name: RecordProcessedCommand :execrows
-- 0 rows: the command was processed before.
INSERT INTO processed_commands (command_id, command, outcome, processed_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (command_id) DO NOTHING;

-- name: FinishProcessedCommand :exec
UPDATE processed_commands SET outcome = $2, reply = $3 WHERE command_id = $1;

-- name: GetProcessedCommand :one
SELECT * FROM processed_commands WHERE command_id = $1;
