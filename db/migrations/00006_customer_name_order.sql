-- +goose Up
-- Keyset pagination for the list ordered by last name (order=last_name and -last_name).
CREATE INDEX customers_last_name_id_idx ON customers (last_name, id);

-- +goose Down
DROP INDEX customers_last_name_id_idx;
