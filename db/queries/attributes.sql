-- name: ListAttributeDefinitions :many
SELECT * FROM customer_attribute_definitions ORDER BY key;

-- name: GetAttributeDefinitionForUpdate :one
-- Locked: two changes of one definition check the customers one after the other.
SELECT * FROM customer_attribute_definitions WHERE key = $1 FOR UPDATE;

-- name: LockAttributeDefinitionCount :exec
-- Serialises new definitions, so that two at once cannot both pass the
-- limit: each counts them after taking the lock, inside its transaction.
SELECT pg_advisory_xact_lock(hashtextextended('customerbus.attribute_definitions', 0));

-- name: CountAttributeDefinitions :one
SELECT count(*) FROM customer_attribute_definitions;

-- name: InsertAttributeDefinition :execrows
INSERT INTO customer_attribute_definitions (id, key, type, definition, indexed, version, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (key) DO NOTHING;

-- name: UpdateAttributeDefinition :exec
UPDATE customer_attribute_definitions SET type = $2, definition = $3, indexed = $4, version = $5, updated_at = $6
WHERE id = $1;

-- name: DeleteAttributeDefinition :exec
DELETE FROM customer_attribute_definitions WHERE id = $1;

-- name: AttributeValues :many
-- The stored values of one attribute, for checking them against a changed
-- definition. A definition change is rare and staff-made; this reads every
-- customer (no index serves "has the key"), about a second at a million.
SELECT (attributes -> sqlc.arg(key)::text)::jsonb AS value FROM customers
WHERE attributes ? sqlc.arg(key)::text;

-- name: CountCustomersWithoutAttribute :one
SELECT count(*) FROM customers WHERE NOT attributes ? sqlc.arg(key)::text;

-- name: DeleteCustomerAttributeValues :exec
-- A customer's values of every kind, in one statement.
WITH texts AS (DELETE FROM customer_attribute_texts WHERE customer_id = ANY(sqlc.arg(ids)::uuid[])),
     numbers AS (DELETE FROM customer_attribute_numbers WHERE customer_id = ANY(sqlc.arg(ids)::uuid[]))
DELETE FROM customer_attribute_times WHERE customer_id = ANY(sqlc.arg(ids)::uuid[]);

-- name: DeleteAttributeIndex :exec
-- An attribute's values of every kind: its type may have just changed.
WITH texts AS (DELETE FROM customer_attribute_texts WHERE key = sqlc.arg(key)::text),
     numbers AS (DELETE FROM customer_attribute_numbers WHERE key = sqlc.arg(key)::text)
DELETE FROM customer_attribute_times WHERE key = sqlc.arg(key)::text;

-- name: IndexAttributeValues :exec
-- Copies values of indexed attributes into the table of their kind, read
-- from the customers' rows as just written: those of the customers ids
-- (after their write), or of every customer for the attribute key (after
-- its definition changed). The one place where a value becomes a typed one:
-- text (strings, enums, emails, URLs, booleans) for equality, numbers and
-- instants (dates at midnight UTC) for ranges. One statement, so a write
-- pays one round trip whatever kinds it holds.
WITH v AS (
    SELECT c.id, d.key, d.type, c.attributes ->> d.key AS value
    FROM customers c
    JOIN customer_attribute_definitions d ON d.indexed AND c.attributes ? d.key
    WHERE (sqlc.narg(ids)::uuid[] IS NULL OR c.id = ANY(sqlc.narg(ids)::uuid[]))
      AND (sqlc.narg(key)::text IS NULL OR d.key = sqlc.narg(key))
), texts AS (
    INSERT INTO customer_attribute_texts (customer_id, key, value)
    SELECT id, key, value FROM v WHERE type NOT IN ('integer', 'decimal', 'date', 'datetime')
), numbers AS (
    INSERT INTO customer_attribute_numbers (customer_id, key, value)
    SELECT id, key, value::numeric FROM v WHERE type IN ('integer', 'decimal')
)
INSERT INTO customer_attribute_times (customer_id, key, value)
SELECT id, key, CASE type WHEN 'date' THEN (value || 'T00:00:00Z')::timestamptz ELSE value::timestamptz END
FROM v WHERE type IN ('date', 'datetime');

-- name: AttributeDefinitionsVersion :one
-- The definitions' counter: what an instance's copy of them is checked by.
SELECT version FROM customer_attribute_definitions_version;

-- name: BumpAttributeDefinitionsVersion :exec
-- In the transaction of every definition change, after its slow checks: the
-- row lock makes concurrent changes commit one after the other, briefly.
-- From the sequence, so that a number is never used twice (see 00035).
UPDATE customer_attribute_definitions_version SET version = nextval('customer_attribute_definitions_version_seq');
