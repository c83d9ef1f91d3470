-- +goose Up
-- The notifier's record of the notification emails it has sent, one row per
-- notification event id. A row is written (claimed) before the email goes out
-- and gets sent_at once the SMTP server accepted it, so a redelivered or
-- re-published event never sends a second email. claim_id names the attempt
-- that holds the claim: only that attempt may confirm or release it.
CREATE TABLE notifier_deliveries (
    event_id   uuid        PRIMARY KEY,
    event_type text        NOT NULL,
    claim_id   uuid        NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);

-- +goose Down
DROP TABLE notifier_deliveries;
