-- name: RecordProcessedCommand :execrows
-- Records a command with its outcome, in the transaction of its effect; 0
-- rows: it was processed before (the insert waits for that transaction).
INSERT INTO processed_commands (command_id, command, outcome, reply, processed_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (command_id) DO NOTHING;

-- name: GetProcessedCommand :one
SELECT * FROM processed_commands WHERE command_id = $1;
