-- +goose NO TRANSACTION
-- +goose Up
-- The notifier sweeps the records of emails sent longer ago than
-- NOTIFIER_DELIVERY_RETENTION, oldest first in small batches; this index finds
-- them without reading the table. Built CONCURRENTLY (so outside a
-- transaction): the table may be large by now and the notifier writes to it
-- all the time. Unconfirmed claims (sent_at NULL) are never swept.
CREATE INDEX CONCURRENTLY notifier_deliveries_sent_at_idx
    ON notifier_deliveries (sent_at) WHERE sent_at IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS notifier_deliveries_sent_at_idx;
