-- +goose Up
-- Typed custom attributes (docs/attributes.md). The definitions say what a
-- customer's attributes may hold; the values live on the customer row, as
-- one JSON object keyed by the definitions' keys, so that a customer reads
-- and writes in one row as before.
CREATE TABLE customer_attribute_definitions (
    -- id names the definition in its events (subject, partition key): a key
    -- deleted and defined again is another resource, with its own sequence.
    id uuid PRIMARY KEY,
    key text NOT NULL UNIQUE,
    type text NOT NULL,
    -- label, the type's rules and the flags, as the API shows them.
    definition jsonb NOT NULL,
    indexed boolean NOT NULL,
    version bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Adding a column with a constant default rewrites nothing (PostgreSQL 11+).
ALTER TABLE customers ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';

-- The values of indexed attributes once more, typed, for the list's filters:
-- text (strings, enums, emails, URLs, booleans) for equality, numbers and
-- instants (dates at midnight UTC) for ranges, each behind a btree on (key,
-- value). Kept by the store in the transaction of every write of a
-- customer's attributes; a filter reads the matching customers from here
-- instead of testing every customer's JSON.
CREATE TABLE customer_attribute_values (
    customer_id uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    key text NOT NULL,
    text_value text,
    num_value numeric,
    time_value timestamptz,
    PRIMARY KEY (customer_id, key)
);
CREATE INDEX customer_attribute_values_text_idx ON customer_attribute_values (key, text_value, customer_id)
    WHERE text_value IS NOT NULL;
CREATE INDEX customer_attribute_values_num_idx ON customer_attribute_values (key, num_value, customer_id)
    WHERE num_value IS NOT NULL;
CREATE INDEX customer_attribute_values_time_idx ON customer_attribute_values (key, time_value, customer_id)
    WHERE time_value IS NOT NULL;
-- The planner takes key and value to be independent; what "tier = gold"
-- matches depends on both, and the list picks its plan by that estimate.
CREATE STATISTICS customer_attribute_values_text_stats (mcv) ON key, text_value FROM customer_attribute_values;
CREATE STATISTICS customer_attribute_values_num_stats (mcv) ON key, num_value FROM customer_attribute_values;
CREATE STATISTICS customer_attribute_values_time_stats (mcv) ON key, time_value FROM customer_attribute_values;

-- +goose Down
DROP TABLE customer_attribute_values;
ALTER TABLE customers DROP COLUMN attributes;
DROP TABLE customer_attribute_definitions;
