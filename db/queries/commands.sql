-- name: RecordProcessedCommand :execrows
-- 0 rows: the command was processed before.
INSERT INTO processed_commands (command_id, command, outcome, processed_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (command_id) DO NOTHING;
