-- +goose Up
-- Customer groups (segments such as "wholesale" or "VIP"). Names are unique
-- regardless of case.
CREATE TABLE customer_groups (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX customer_groups_name_key ON customer_groups (lower(name));
CREATE INDEX customer_groups_created_at_id_idx ON customer_groups (created_at, id);

-- Membership goes with the group or the customer, whichever is deleted first.
CREATE TABLE customer_group_members (
    group_id    uuid        NOT NULL REFERENCES customer_groups (id) ON DELETE CASCADE,
    customer_id uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (group_id, customer_id)
);
-- A customer's groups, and the cascade from customers.
CREATE INDEX customer_group_members_customer_idx ON customer_group_members (customer_id);

-- +goose Down
DROP TABLE customer_group_members;
DROP TABLE customer_groups;
