-- +goose Up
-- An erasure deletes the customer's events that wait for delivery to
-- webhooks (DeleteWebhookEventsOf), in the erasure's transaction: by this
-- index, not by reading every event waiting for every endpoint.
CREATE INDEX webhook_events_partition_key_idx ON webhook_events (partition_key);

-- +goose Down
DROP INDEX webhook_events_partition_key_idx;
