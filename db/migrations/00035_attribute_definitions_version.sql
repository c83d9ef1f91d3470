-- +goose Up
-- One counter of the attribute definitions, bumped in the transaction of
-- every definition change, so that a service instance keeps the
-- definitions in memory and reads this one row per write instead of every
-- definition (docs/attributes.md, "Definitions in memory").
-- The version comes from a sequence, which a rollback does not take back:
-- definitions read inside a change's transaction that then rolls back are
-- kept under a number no committed state ever has, so they are never used.
CREATE SEQUENCE customer_attribute_definitions_version_seq;
CREATE TABLE customer_attribute_definitions_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version bigint NOT NULL
);
INSERT INTO customer_attribute_definitions_version (version) VALUES (0);

-- +goose Down
DROP TABLE customer_attribute_definitions_version;
DROP SEQUENCE customer_attribute_definitions_version_seq;
