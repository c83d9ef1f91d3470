-- name: InsertStaffUser :exec
INSERT INTO staff_users (id, email, name, password_hash) VALUES ($1, $2, $3, $4);

-- name: GetStaffUserByEmail :one
SELECT id, email, name, password_hash, is_active FROM staff_users WHERE email = $1;

-- name: CountStaffUsers :one
SELECT count(*) FROM staff_users;

-- name: ListStaffUsers :many
SELECT u.id, u.email, u.name, u.is_active, u.created_at,
       coalesce(array_agg(g.name ORDER BY g.name) FILTER (WHERE g.id IS NOT NULL), '{}')::text[] AS group_names
FROM staff_users u
LEFT JOIN staff_group_members m ON m.staff_id = u.id
LEFT JOIN permission_groups g ON g.id = m.group_id
GROUP BY u.id ORDER BY u.email;

-- name: InsertPermissionGroup :exec
INSERT INTO permission_groups (id, name, permissions) VALUES ($1, $2, $3);

-- name: GetPermissionGroupByName :one
SELECT id, name, permissions FROM permission_groups WHERE name = $1;

-- name: ListPermissionGroups :many
SELECT g.id, g.name, g.permissions, (SELECT count(*) FROM staff_group_members m WHERE m.group_id = g.id) AS members
FROM permission_groups g ORDER BY g.name;

-- name: AddStaffToGroup :exec
INSERT INTO staff_group_members (staff_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: InsertStaffSession :exec
INSERT INTO staff_sessions (id, staff_id, token_hash, created_at, idle_expires_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: TouchStaffSession :one
-- The session of this token while it lasts and its user is active, its
-- idle expiry moved on; with the permissions of the user's groups.
UPDATE staff_sessions s SET idle_expires_at = least(sqlc.arg(idle_expires_at), s.expires_at)
FROM staff_users u
WHERE s.token_hash = sqlc.arg(token_hash) AND u.id = s.staff_id AND u.is_active
  AND s.idle_expires_at > sqlc.arg(now) AND s.expires_at > sqlc.arg(now)
RETURNING s.id, s.staff_id, u.email, u.name,
    coalesce((SELECT array_agg(DISTINCT p ORDER BY p) FROM staff_group_members m
              JOIN permission_groups g ON g.id = m.group_id, unnest(g.permissions) AS p
              WHERE m.staff_id = u.id), '{}')::text[] AS permissions;

-- name: DeleteStaffSession :exec
DELETE FROM staff_sessions WHERE id = $1;

-- name: DeleteEndedStaffSessions :execrows
DELETE FROM staff_sessions WHERE expires_at <= $1 OR idle_expires_at <= $1;

-- name: SetStaffUserActive :execrows
UPDATE staff_users SET is_active = $2 WHERE id = $1;

-- name: DeleteStaffSessionsOfUser :exec
DELETE FROM staff_sessions WHERE staff_id = $1;

-- name: LockStaffUser :one
SELECT id FROM staff_users WHERE id = $1 FOR UPDATE;

-- name: DeleteStaffGroupMemberships :exec
DELETE FROM staff_group_members WHERE staff_id = $1;

-- name: AddStaffToGroups :execrows
-- Puts the staff user in those of the groups that exist.
INSERT INTO staff_group_members (staff_id, group_id)
SELECT sqlc.arg(staff_id), g.id FROM permission_groups g WHERE g.id = ANY(sqlc.arg(group_ids)::uuid[])
ON CONFLICT DO NOTHING;

-- name: LockStaffManagers :exec
-- Serializes the changes that could take MANAGE_STAFF from its last active
-- holder (deactivation, a change of groups): each takes this lock first,
-- so the count it reads after its change sees every one before it.
SELECT pg_advisory_xact_lock(hashtextextended('customerbus.staff_managers', 0));

-- name: CountActiveStaffManagers :one
-- Active staff users holding the permission (MANAGE_STAFF) through one of
-- their groups.
SELECT count(DISTINCT u.id) FROM staff_users u
JOIN staff_group_members m ON m.staff_id = u.id
JOIN permission_groups g ON g.id = m.group_id
WHERE u.is_active AND sqlc.arg(permission)::text = ANY(g.permissions);

-- name: StaffUserNames :many
-- The staff users among these ids, to name the actors of events.
SELECT id, email, name FROM staff_users WHERE id = ANY(sqlc.arg(ids)::uuid[]);
