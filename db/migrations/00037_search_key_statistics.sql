-- +goose Up
-- The planner estimates how many customers a q matches from the statistics
-- of the search key's trigram index: its histogram of sampled keys, which
-- the pattern is tried against. With the default 100 entries, a surname
-- that 2% of customers have is found in none of them as often as not, and
-- is then estimated at PostgreSQL's floor of 0.01%: the page reads every
-- match from the heap to sort them (20,000 rows, 80 ms at a million
-- customers) instead of walking created_at and stopping at the 21st. With
-- 1,000 entries such a name is estimated within a few percent, and a rare
-- one still at the floor, which suits it (docs/operations.md, "Search and
-- filters at a million customers"). ANALYZE then samples 300,000 rows of
-- the table instead of 30,000 (7 s against 0.6 s at a million customers);
-- it takes no lock that writes wait for.
ALTER INDEX customers_search_key_trgm_idx ALTER COLUMN 1 SET STATISTICS 1000;
ANALYZE customers;

-- +goose Down
ALTER INDEX customers_search_key_trgm_idx ALTER COLUMN 1 SET STATISTICS -1;
