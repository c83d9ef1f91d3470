-- +goose NO TRANSACTION
-- +goose Up
-- The values of indexed attributes, one table per kind of value instead of
-- the one side table of 00034 with a column per kind (docs/attributes.md,
-- "Storage"). There the value columns were NULL in the other kinds' rows,
-- which the planner counted against every numeric or instant range, taking
-- a range to match a third of what it does; here each table's statistics
-- describe its kind alone. Each filter of the list reads the table of its
-- attribute's kind: a range reads its matches from the index on (key,
-- value, customer_id), or probes one customer's value through the primary
-- key, which holds the value too so that the probe reads the index alone.
-- (Not for texts, which would hold a string twice over in indexes: an
-- equality probes the index on (key, value, customer_id) instead.)
CREATE TABLE IF NOT EXISTS customer_attribute_texts (
    customer_id uuid NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (customer_id, key)
);
CREATE TABLE IF NOT EXISTS customer_attribute_numbers (
    customer_id uuid NOT NULL,
    key text NOT NULL,
    value numeric NOT NULL,
    PRIMARY KEY (customer_id, key) INCLUDE (value)
);
CREATE TABLE IF NOT EXISTS customer_attribute_times (
    customer_id uuid NOT NULL,
    key text NOT NULL,
    value timestamptz NOT NULL,
    PRIMARY KEY (customer_id, key) INCLUDE (value)
);

-- The move, in one transaction of its own: the migration runs outside one
-- (NO TRANSACTION) so that what a big table makes slow holds up as little
-- as it can. The old table is locked against writes (reads go on) while its
-- rows are copied: a customer's delete cascades to it, and an instance of
-- the previous version writes it, so both wait for the copy (21 to 26 s for
-- a million customers with three indexed attributes on a busy 2-core
-- machine, docs/operations.md); once it is dropped, such an instance fails
-- attribute writes and filters until it is replaced. Each new table's
-- foreign key comes after its copy, NOT VALID: checked row by row, the copy
-- would lock every customer row (a write to each of the customers' pages)
-- and run a query per value; it is validated below without blocking
-- anyone. It is made in the same transaction as the drop, so no delete
-- ever falls between the two tables. A run stopped after this commit finds
-- the old table gone and goes on.
-- +goose StatementBegin
DO $$
BEGIN
    IF to_regclass('customer_attribute_values') IS NULL THEN
        RETURN;
    END IF;
    LOCK TABLE customer_attribute_values IN SHARE MODE;
    INSERT INTO customer_attribute_texts (customer_id, key, value)
        SELECT customer_id, key, text_value FROM customer_attribute_values WHERE text_value IS NOT NULL;
    INSERT INTO customer_attribute_numbers (customer_id, key, value)
        SELECT customer_id, key, num_value FROM customer_attribute_values WHERE num_value IS NOT NULL;
    INSERT INTO customer_attribute_times (customer_id, key, value)
        SELECT customer_id, key, time_value FROM customer_attribute_values WHERE time_value IS NOT NULL;
    ALTER TABLE customer_attribute_texts ADD CONSTRAINT customer_attribute_texts_customer_id_fkey
        FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE NOT VALID;
    ALTER TABLE customer_attribute_numbers ADD CONSTRAINT customer_attribute_numbers_customer_id_fkey
        FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE NOT VALID;
    ALTER TABLE customer_attribute_times ADD CONSTRAINT customer_attribute_times_customer_id_fkey
        FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE NOT VALID;
    DROP TABLE customer_attribute_values;
END
$$;
-- +goose StatementEnd
-- Gone with the move above; said again for sqlc, which reads the schema
-- from these files but not into a DO block.
DROP TABLE IF EXISTS customer_attribute_values;
ALTER TABLE customer_attribute_texts VALIDATE CONSTRAINT customer_attribute_texts_customer_id_fkey;
ALTER TABLE customer_attribute_numbers VALIDATE CONSTRAINT customer_attribute_numbers_customer_id_fkey;
ALTER TABLE customer_attribute_times VALIDATE CONSTRAINT customer_attribute_times_customer_id_fkey;

-- A filter's matches, in customer order for an equality. Built after the copy, which is
-- faster than keeping them up during it, and CONCURRENTLY, so that deletes
-- of customers (which cascade here) need not wait for the builds. (A build
-- that failed leaves an invalid index behind, which IF NOT EXISTS would
-- keep: the retry drops it first.)
DROP INDEX CONCURRENTLY IF EXISTS customer_attribute_texts_value_idx;
CREATE INDEX CONCURRENTLY customer_attribute_texts_value_idx ON customer_attribute_texts (key, value, customer_id);
DROP INDEX CONCURRENTLY IF EXISTS customer_attribute_numbers_value_idx;
CREATE INDEX CONCURRENTLY customer_attribute_numbers_value_idx ON customer_attribute_numbers (key, value, customer_id);
DROP INDEX CONCURRENTLY IF EXISTS customer_attribute_times_value_idx;
CREATE INDEX CONCURRENTLY customer_attribute_times_value_idx ON customer_attribute_times (key, value, customer_id);
-- The planner takes key and value to be independent; what "tier = gold"
-- matches depends on both.
CREATE STATISTICS IF NOT EXISTS customer_attribute_texts_stats (mcv) ON key, value FROM customer_attribute_texts;
CREATE STATISTICS IF NOT EXISTS customer_attribute_numbers_stats (mcv) ON key, value FROM customer_attribute_numbers;
CREATE STATISTICS IF NOT EXISTS customer_attribute_times_stats (mcv) ON key, value FROM customer_attribute_times;
-- Until autovacuum gets to them, the planner would take the new tables to
-- be small, and plan every filter as if its value were rare.
ANALYZE customer_attribute_texts, customer_attribute_numbers, customer_attribute_times;

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    CREATE TABLE customer_attribute_values (
        customer_id uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
        key text NOT NULL,
        text_value text,
        num_value numeric,
        time_value timestamptz,
        PRIMARY KEY (customer_id, key)
    );
    INSERT INTO customer_attribute_values (customer_id, key, text_value)
        SELECT customer_id, key, value FROM customer_attribute_texts;
    INSERT INTO customer_attribute_values (customer_id, key, num_value)
        SELECT customer_id, key, value FROM customer_attribute_numbers;
    INSERT INTO customer_attribute_values (customer_id, key, time_value)
        SELECT customer_id, key, value FROM customer_attribute_times;
    CREATE INDEX customer_attribute_values_text_idx ON customer_attribute_values (key, text_value, customer_id)
        WHERE text_value IS NOT NULL;
    CREATE INDEX customer_attribute_values_num_idx ON customer_attribute_values (key, num_value, customer_id)
        WHERE num_value IS NOT NULL;
    CREATE INDEX customer_attribute_values_time_idx ON customer_attribute_values (key, time_value, customer_id)
        WHERE time_value IS NOT NULL;
    CREATE STATISTICS customer_attribute_values_text_stats (mcv) ON key, text_value FROM customer_attribute_values;
    CREATE STATISTICS customer_attribute_values_num_stats (mcv) ON key, num_value FROM customer_attribute_values;
    CREATE STATISTICS customer_attribute_values_time_stats (mcv) ON key, time_value FROM customer_attribute_values;
    DROP TABLE customer_attribute_texts, customer_attribute_numbers, customer_attribute_times;
END
$$;
-- +goose StatementEnd
