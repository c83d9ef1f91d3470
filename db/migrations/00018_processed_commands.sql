-- +goose Up
-- Bus commands applied or rejected, by CloudEvent id: written in the same
-- transaction as the command's effect, so a redelivered or re-published
-- command is recognised and changes nothing twice.
CREATE TABLE processed_commands (
    command_id   text        PRIMARY KEY,
    command      text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    -- What a caller of the command as a NATS request was answered: the
    -- resource, or the problem; a repeated request gets it again.
    reply        bytea       NOT NULL DEFAULT '',
    processed_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE processed_commands;
