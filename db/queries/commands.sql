-- name: RecordProcessedCommand :execrows
-- Records a command with its outcome, in the transaction of its effect; 0
-- rows: it was processed before (the insert waits for that transaction).
-- customer_id and stream_seq let an erasure find the command's message.
INSERT INTO processed_commands (command_id, command, outcome, reply, processed_at, customer_id, stream_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (command_id) DO NOTHING;

-- name: GetProcessedCommand :one
SELECT * FROM processed_commands WHERE command_id = $1;

-- name: AdvanceCommandOrder :execrows
-- Moves the key's last applied sequence on to this command's; 0 rows: a
-- command published after this one was applied already (or this one was).
INSERT INTO command_order (order_key, last_seq, updated_at)
VALUES ($1, $2, $3)
ON CONFLICT (order_key) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = EXCLUDED.updated_at
WHERE command_order.last_seq < EXCLUDED.last_seq;
