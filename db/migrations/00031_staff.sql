-- +goose Up
-- Staff accounts of the admin console. A staff user holds the permissions
-- of the permission groups it is in (the API tokens' permissions, and
-- MANAGE_STAFF, which manages staff users and groups).
CREATE TABLE staff_users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL UNIQUE,
    name          text        NOT NULL DEFAULT '',
    password_hash text        NOT NULL,
    is_active     boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE permission_groups (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    permissions text[]      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE staff_group_members (
    staff_id uuid NOT NULL REFERENCES staff_users (id) ON DELETE CASCADE,
    group_id uuid NOT NULL REFERENCES permission_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (staff_id, group_id)
);
CREATE INDEX staff_group_members_group_idx ON staff_group_members (group_id);

-- Browser sessions of the console: the cookie's token kept as SHA-256 only.
-- A session ends at expires_at (absolute) or after being idle past
-- idle_expires_at, which each request moves on.
CREATE TABLE staff_sessions (
    id              uuid        PRIMARY KEY,
    staff_id        uuid        NOT NULL REFERENCES staff_users (id) ON DELETE CASCADE,
    token_hash      bytea       NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL,
    idle_expires_at timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX staff_sessions_staff_idx ON staff_sessions (staff_id);
CREATE INDEX staff_sessions_expires_idx ON staff_sessions (expires_at);

-- +goose Down
DROP TABLE staff_sessions;
DROP TABLE staff_group_members;
DROP TABLE permission_groups;
DROP TABLE staff_users;
