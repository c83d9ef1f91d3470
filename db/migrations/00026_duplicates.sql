-- +goose Up
-- Finding duplicate customers. Each reason has an index to look candidates
-- up by: the folded email, the phone, the company, an address's place.

-- customer_email_folded folds the variants one mailbox receives at: the
-- +tag of the local part (most providers deliver a+x@ to a@), and for
-- Gmail its dots and its googlemail.com twin. Emails are stored lower-case.
-- +goose StatementBegin
CREATE FUNCTION customer_email_folded(email text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN split_part(email, '@', 2) IN ('gmail.com', 'googlemail.com')
        THEN replace(split_part(split_part(email, '@', 1), '+', 1), '.', '') || '@gmail.com'
        ELSE split_part(split_part(email, '@', 1), '+', 1) || '@' || split_part(email, '@', 2)
    END
$$;
-- +goose StatementEnd
CREATE INDEX customers_email_folded_idx ON customers (customer_email_folded(email));
CREATE INDEX customers_phone_idx ON customers (phone) WHERE phone IS NOT NULL;
CREATE INDEX customers_company_idx ON customers (lower(company_name)) WHERE company_name <> '';
CREATE INDEX customer_addresses_place_idx ON customer_addresses (postal_code, lower(street_address_1))
    WHERE street_address_1 <> '';
-- The reference another system gave the customer, kept in its metadata
-- (key external_reference) by an import or an integrator.
CREATE INDEX customers_metadata_reference_idx ON customers ((metadata ->> 'external_reference'))
    WHERE metadata ? 'external_reference';

-- Pairs staff said are not duplicates: never suggested again. a < b.
CREATE TABLE duplicate_dismissals (
    a            uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    b            uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    actor_type   text        NOT NULL,
    actor_id     text        NOT NULL,
    dismissed_at timestamptz NOT NULL,
    PRIMARY KEY (a, b),
    CHECK (a < b)
);
CREATE INDEX duplicate_dismissals_b_idx ON duplicate_dismissals (b);

-- +goose Down
DROP TABLE duplicate_dismissals;
DROP INDEX customers_metadata_reference_idx;
DROP INDEX customer_addresses_place_idx;
DROP INDEX customers_company_idx;
DROP INDEX customers_phone_idx;
DROP INDEX customers_email_folded_idx;
DROP FUNCTION customer_email_folded(text);
