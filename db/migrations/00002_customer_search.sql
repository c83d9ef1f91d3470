-- +goose Up
-- Substring search over email, names, company and phone that ignores case and
-- accents ("gonzalez" finds "González"), served by a trigram index.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is only STABLE (its dictionary could change), so it cannot feed a
-- generated column; pinning the dictionary makes this wrapper safe to mark IMMUTABLE.
-- +goose StatementBegin
CREATE FUNCTION customer_search_text(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$;
-- +goose StatementEnd

ALTER TABLE customers ADD COLUMN search_text text NOT NULL GENERATED ALWAYS AS (
    customer_search_text(email || ' ' || first_name || ' ' || last_name || ' ' ||
                         company_name || ' ' || coalesce(phone, ''))
) STORED;
CREATE INDEX customers_search_text_trgm_idx ON customers USING gin (search_text gin_trgm_ops);

-- +goose Down
DROP INDEX customers_search_text_trgm_idx;
ALTER TABLE customers DROP COLUMN search_text;
DROP FUNCTION customer_search_text(text);
