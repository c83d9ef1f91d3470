-- +goose NO TRANSACTION
-- +goose Up
-- pg_trgm ends a word at every character that is neither a letter nor a
-- digit, so the dots, @, - and + of an email or a phone cut it into short
-- words, and a search across them finds little to look up: for "ith.jo" the
-- index returns every customer with a word ending in "ith" and one starting
-- with "jo", and each row is read and rechecked. The search key spells those
-- four characters as capital letters. The searched text is lower-case
-- (customer_search_text folds it), so no other character becomes one of
-- them: LIKE on the keys of text and pattern matches exactly when LIKE on
-- the two does, while the trigrams now run across the punctuation ("ithQjo"
-- gives "thq" and "hqj", which few customers have; pg_trgm lower-cases its
-- trigrams, which only costs them some rarity). The new index serves every q
-- search, so it replaces the one on search_text, and writes keep one trigram
-- index to update. Built CONCURRENTLY: the table is large by now and written
-- all the time. (A build that failed leaves an invalid index behind, which
-- IF NOT EXISTS would keep: the retry drops it first.)
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION customer_search_key(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
-- translate() would say it in one call, at three times the CPU per row.
AS $$ SELECT replace(replace(replace(replace($1, '.', 'Q'), '@', 'X'), '-', 'Z'), '+', 'Y') $$;
-- +goose StatementEnd
-- The LIKE pattern that finds q in search keys: folded and keyed as the text
-- is, then escaped, so that % _ and \ match literally (after folding, which
-- turns a full-width ％ into %).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION customer_search_pattern(q text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT '%' || replace(replace(replace(customer_search_key(customer_search_text(q)),
    '\', '\\'), '%', '\%'), '_', '\_') || '%' $$;
-- +goose StatementEnd
DROP INDEX CONCURRENTLY IF EXISTS customers_search_key_trgm_idx;
CREATE INDEX CONCURRENTLY customers_search_key_trgm_idx
    ON customers USING gin (customer_search_key(search_text) gin_trgm_ops);
-- The list's q estimates now come from this expression's statistics, with
-- the detail 00007 gave search_text's for the same reason.
ALTER INDEX customers_search_key_trgm_idx ALTER COLUMN 1 SET STATISTICS 1000;
ALTER TABLE customers ALTER COLUMN search_text SET STATISTICS -1;
DROP INDEX CONCURRENTLY IF EXISTS customers_search_text_trgm_idx;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS customers_search_text_trgm_idx ON customers USING gin (search_text gin_trgm_ops);
ALTER TABLE customers ALTER COLUMN search_text SET STATISTICS 1000;
DROP INDEX CONCURRENTLY IF EXISTS customers_search_key_trgm_idx;
DROP FUNCTION IF EXISTS customer_search_pattern(text);
DROP FUNCTION IF EXISTS customer_search_key(text);
