-- name: ListAttributeDefinitions :many
SELECT * FROM customer_attribute_definitions ORDER BY key;

-- name: GetAttributeDefinitionForUpdate :one
-- Locked: two changes of one definition check the customers one after the other.
SELECT * FROM customer_attribute_definitions WHERE key = $1 FOR UPDATE;

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
DELETE FROM customer_attribute_values WHERE customer_id = ANY(sqlc.arg(ids)::uuid[]);

-- name: DeleteAttributeIndex :exec
DELETE FROM customer_attribute_values WHERE key = $1;

-- name: IndexAttributeValues :exec
-- Copies values of indexed attributes into the typed side table, read from
-- the customers' rows as just written: those of the customers ids (after
-- their write), or of every customer for the attribute key (after its
-- definition changed). The one place where a value becomes a typed one.
INSERT INTO customer_attribute_values (customer_id, key, text_value, num_value, time_value)
SELECT c.id, d.key,
       CASE WHEN d.type NOT IN ('integer', 'decimal', 'date', 'datetime') THEN c.attributes ->> d.key END,
       CASE WHEN d.type IN ('integer', 'decimal') THEN (c.attributes ->> d.key)::numeric END,
       CASE d.type WHEN 'date' THEN ((c.attributes ->> d.key) || 'T00:00:00Z')::timestamptz
                   WHEN 'datetime' THEN (c.attributes ->> d.key)::timestamptz END
FROM customers c
JOIN customer_attribute_definitions d ON d.indexed AND c.attributes ? d.key
WHERE (sqlc.narg(ids)::uuid[] IS NULL OR c.id = ANY(sqlc.narg(ids)::uuid[]))
  AND (sqlc.narg(key)::text IS NULL OR d.key = sqlc.narg(key));

-- name: AttributeDefinitionsVersion :one
-- The definitions' counter: what an instance's copy of them is checked by.
SELECT version FROM customer_attribute_definitions_version;

-- name: BumpAttributeDefinitionsVersion :exec
-- In the transaction of every definition change, after its slow checks: the
-- row lock makes concurrent changes commit one after the other, briefly.
-- From the sequence, so that a number is never used twice (see 00035).
UPDATE customer_attribute_definitions_version SET version = nextval('customer_attribute_definitions_version_seq');
