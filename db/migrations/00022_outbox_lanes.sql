-- +goose Up
-- Two lanes in the outbox: the events of an import's bulk writes (bulk) and
-- the rest (live). The relay publishes each lane on its own, so a
-- million-row import does not delay the events of ordinary changes. An
-- event waits only for its customer's unsent events of the other lane that
-- came before it (UnsentLiveOutboxEvents, UnsentBulkOutboxEvents), so each
-- customer's events keep their order.
ALTER TABLE outbox ADD COLUMN bulk boolean NOT NULL DEFAULT false;
CREATE INDEX outbox_unsent_lane_idx ON outbox (bulk, id) WHERE sent_at IS NULL;
CREATE INDEX outbox_unsent_partition_idx ON outbox (partition_key, bulk, id) WHERE sent_at IS NULL;
DROP INDEX outbox_unsent_idx;

-- +goose Down
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
DROP INDEX outbox_unsent_partition_idx;
DROP INDEX outbox_unsent_lane_idx;
ALTER TABLE outbox DROP COLUMN bulk;
