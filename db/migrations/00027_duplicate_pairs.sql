-- +goose Up
-- The pairs of customers that may be one person, scored, so the global
-- list can page them likeliest first. The command service's duplicate
-- finder keeps them: it rescores a customer's pairs on each of its events,
-- and builds them all once (duplicate_finder.built_at) for customers that
-- were there before it. a < b; a pair goes with either customer, and with a
-- dismissal.
CREATE TABLE duplicate_pairs (
    a        uuid             NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    b        uuid             NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    score    double precision NOT NULL CHECK (score > 0 AND score <= 1),
    reasons  text[]           NOT NULL,
    found_at timestamptz      NOT NULL,
    PRIMARY KEY (a, b),
    CHECK (a < b)
);
CREATE INDEX duplicate_pairs_b_idx ON duplicate_pairs (b);
-- The global list's order, walked backwards: the highest score first.
CREATE INDEX duplicate_pairs_score_idx ON duplicate_pairs (score, a, b);

-- One row: when the finder last built every pair from scratch (never yet
-- when NULL, so the first finder to start builds them).
CREATE TABLE duplicate_finder (
    singleton bool        PRIMARY KEY DEFAULT true CHECK (singleton),
    built_at  timestamptz
);
INSERT INTO duplicate_finder DEFAULT VALUES;

-- +goose Down
DROP TABLE duplicate_finder;
DROP TABLE duplicate_pairs;
