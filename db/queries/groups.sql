-- name: InsertCustomerGroupWithEvents :exec
-- The group and its outbox events in one statement (see InsertCustomerWithEvents).
WITH inserted AS (
    INSERT INTO customer_groups (id, name, description, version, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6)
)
INSERT INTO outbox (event_id, nats_subject, partition_key, event)
SELECT unnest(sqlc.arg(event_ids)::uuid[]), unnest(sqlc.arg(nats_subjects)::text[]),
       unnest(sqlc.arg(partition_keys)::text[]), unnest(sqlc.arg(events)::bytea[]);

-- name: GetCustomerGroup :one
SELECT sqlc.embed(customer_groups),
       (SELECT count(*) FROM customer_group_members m WHERE m.group_id = customer_groups.id) AS customer_count
FROM customer_groups WHERE customer_groups.id = $1;

-- name: GetCustomerGroupForUpdate :one
SELECT sqlc.embed(customer_groups),
       (SELECT count(*) FROM customer_group_members m WHERE m.group_id = customer_groups.id) AS customer_count
FROM customer_groups WHERE customer_groups.id = $1
FOR UPDATE OF customer_groups;

-- name: UpdateCustomerGroup :execrows
UPDATE customer_groups SET name = $2, description = $3, version = $4, updated_at = $5
WHERE id = $1 AND version = sqlc.arg(expected_version);

-- name: DeleteCustomerGroup :execrows
DELETE FROM customer_groups WHERE id = $1;

-- name: ListCustomerGroups :many
SELECT sqlc.embed(customer_groups),
       (SELECT count(*) FROM customer_group_members m WHERE m.group_id = customer_groups.id) AS customer_count
FROM customer_groups
WHERE (sqlc.narg(q)::text IS NULL OR lower(name) LIKE sqlc.narg(q))
  AND (sqlc.narg(after_id)::uuid IS NULL
       OR (created_at, id) > (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at, id
LIMIT sqlc.arg(row_limit);

-- name: AddGroupMembers :many
-- Adds the customers that are not members yet and returns those it added.
-- Unknown customers fail the foreign key: the caller has checked them first.
INSERT INTO customer_group_members (group_id, customer_id, added_at)
SELECT sqlc.arg(group_id), unnest(sqlc.arg(customer_ids)::uuid[]), sqlc.arg(added_at)
ON CONFLICT DO NOTHING
RETURNING customer_id;

-- name: RemoveGroupMembers :many
DELETE FROM customer_group_members
WHERE group_id = sqlc.arg(group_id) AND customer_id = ANY(sqlc.arg(customer_ids)::uuid[])
RETURNING customer_id;

-- name: ExistingCustomerIDs :many
-- The given ids that name customers, to report the ones that do not; locked
-- so that they cannot be deleted before the caller's transaction ends.
SELECT id FROM customers WHERE id = ANY(sqlc.arg(ids)::uuid[])
FOR KEY SHARE;

-- name: ExistingGroupIDs :many
SELECT id FROM customer_groups WHERE id = ANY(sqlc.arg(ids)::uuid[]);
