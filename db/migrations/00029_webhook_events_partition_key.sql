-- +goose Up
-- An erasure deletes the customer's events that wait for delivery to
-- webhooks (DeleteWebhookEventsOf), in the erasure's transaction: by this
-- index, not by reading every event waiting for every endpoint.
CREATE INDEX webhook_events_partition_key_idx ON webhook_events (partition_key);
-- And the fan-out stores no event an erasure has already passed over (one
-- in flight to it while the erasure ran): found by its partition key.
CREATE INDEX erasures_partition_keys_idx ON erasures USING gin (partition_keys);

-- +goose Down
DROP INDEX erasures_partition_keys_idx;
DROP INDEX webhook_events_partition_key_idx;
