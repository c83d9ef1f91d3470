-- +goose Up
-- A customer's addresses, as many as they like. They go with the customer.
CREATE TABLE customer_addresses (
    id               uuid        PRIMARY KEY,
    customer_id      uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    first_name       text        NOT NULL DEFAULT '',
    last_name        text        NOT NULL DEFAULT '',
    company_name     text        NOT NULL DEFAULT '',
    street_address_1 text        NOT NULL DEFAULT '',
    street_address_2 text        NOT NULL DEFAULT '',
    city             text        NOT NULL DEFAULT '',
    city_area        text        NOT NULL DEFAULT '',
    postal_code      text        NOT NULL DEFAULT '',
    country          text        NOT NULL,
    country_area     text        NOT NULL DEFAULT '',
    phone            text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    -- The target of the customers' default-address keys below.
    UNIQUE (id, customer_id)
);
-- A customer's addresses in creation order, with keyset pagination.
CREATE INDEX customer_addresses_customer_created_idx ON customer_addresses (customer_id, created_at, id);

-- The defaults live on the customer, so there is at most one of each by
-- construction, and the composite keys make them point at the customer's own
-- addresses. Deferred: a new address and its becoming the default are written
-- in one transaction in either order, and deleting a customer cascades to its
-- addresses while the customer row still names one.
ALTER TABLE customers
    ADD COLUMN default_shipping_address_id uuid,
    ADD COLUMN default_billing_address_id  uuid,
    ADD CONSTRAINT customers_default_shipping_address_fkey
        FOREIGN KEY (default_shipping_address_id, id) REFERENCES customer_addresses (id, customer_id)
        DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT customers_default_billing_address_fkey
        FOREIGN KEY (default_billing_address_id, id) REFERENCES customer_addresses (id, customer_id)
        DEFERRABLE INITIALLY DEFERRED;

-- Store-wide settings, one JSON document per key (e.g. 'address_form').
CREATE TABLE settings (
    key        text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE settings;
ALTER TABLE customers
    DROP CONSTRAINT customers_default_billing_address_fkey,
    DROP CONSTRAINT customers_default_shipping_address_fkey,
    DROP COLUMN default_billing_address_id,
    DROP COLUMN default_shipping_address_id;
DROP TABLE customer_addresses;
