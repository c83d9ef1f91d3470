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
       (SELECT count(*) FROM customers c WHERE c.group_ids @> ARRAY[customer_groups.id]) AS customer_count
FROM customer_groups WHERE customer_groups.id = $1;

-- name: GetCustomerGroupForUpdate :one
SELECT sqlc.embed(customer_groups),
       (SELECT count(*) FROM customers c WHERE c.group_ids @> ARRAY[customer_groups.id]) AS customer_count
FROM customer_groups WHERE customer_groups.id = $1
FOR UPDATE OF customer_groups;

-- name: UpdateCustomerGroup :execrows
UPDATE customer_groups SET name = $2, description = $3, version = $4, updated_at = $5
WHERE id = $1 AND version = sqlc.arg(expected_version);

-- name: DeleteCustomerGroup :execrows
DELETE FROM customer_groups WHERE id = $1;

-- name: ListCustomerGroups :many
SELECT sqlc.embed(customer_groups),
       (SELECT count(*) FROM customers c WHERE c.group_ids @> ARRAY[customer_groups.id]) AS customer_count
FROM customer_groups
WHERE (sqlc.narg(q)::text IS NULL OR lower(name) LIKE sqlc.narg(q))
  AND (sqlc.narg(after_id)::uuid IS NULL
       OR (created_at, id) > (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at, id
LIMIT sqlc.arg(row_limit);

-- name: LockCustomerIDs :many
-- The given ids that name customers, locked in id order (as every statement
-- that locks several customers does, so none can deadlock another): they
-- cannot be deleted, and their groups not changed, before the caller's
-- transaction ends.
SELECT id FROM customers WHERE id = ANY(sqlc.arg(ids)::uuid[])
ORDER BY id
FOR NO KEY UPDATE;

-- name: AddGroupMembers :many
-- Adds the group to the customers (locked by LockCustomerIDs) that are not
-- in it yet and returns those.
UPDATE customers SET group_ids = group_ids || sqlc.arg(group_id)::uuid
WHERE id = ANY(sqlc.arg(customer_ids)::uuid[]) AND NOT group_ids @> ARRAY[sqlc.arg(group_id)::uuid]
RETURNING id;

-- name: RemoveGroupMembers :many
-- Removes the group from those of the customers that are in it (locked by
-- LockCustomerIDs) and returns them.
UPDATE customers SET group_ids = array_remove(group_ids, sqlc.arg(group_id)::uuid)
WHERE id = ANY(sqlc.arg(customer_ids)::uuid[]) AND group_ids @> ARRAY[sqlc.arg(group_id)::uuid]
RETURNING id;

-- name: RemoveGroupFromAllCustomers :exec
-- Empties a group that is being deleted, locking its members in id order.
WITH members AS (
    SELECT id FROM customers WHERE group_ids @> ARRAY[sqlc.arg(group_id)::uuid]
    ORDER BY id
    FOR NO KEY UPDATE
)
UPDATE customers c SET group_ids = array_remove(c.group_ids, sqlc.arg(group_id)::uuid)
FROM members WHERE c.id = members.id;

-- name: LockGroupIDs :many
-- The given ids that name groups, locked so that they cannot be deleted
-- before the caller's transaction ends (DeleteCustomerGroup waits for it).
SELECT id FROM customer_groups WHERE id = ANY(sqlc.arg(ids)::uuid[])
ORDER BY id
FOR KEY SHARE;
