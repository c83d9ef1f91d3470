-- name: DuplicateCandidates :many
-- The customers that may be the same person as this one, each with the
-- reasons found and how alike the names are; dismissed pairs left out.
-- Each reason looks candidates up through its own index; the name-based
-- ones keep only names alike (trigram similarity >= 0.5) before anything
-- else, so a company with thousands of customers costs one pass over them.
WITH me AS (
    SELECT * FROM customers WHERE customers.id = sqlc.arg(id)
), places AS (
    SELECT DISTINCT a.postal_code, lower(a.street_address_1) AS street
    FROM customer_addresses a WHERE a.customer_id = sqlc.arg(id) AND a.street_address_1 <> ''
), found AS (
    SELECT c.id, 'email'::text AS reason
    FROM me JOIN customers c ON customer_email_folded(c.email) = customer_email_folded(me.email)
    WHERE c.id <> me.id
    UNION ALL
    SELECT c.id, 'phone'
    FROM me JOIN customers c ON c.phone = me.phone
    WHERE me.phone IS NOT NULL AND c.id <> me.id
    UNION ALL
    SELECT c.id, 'metadata_reference'
    FROM me JOIN customers c ON c.metadata ->> 'external_reference' = me.metadata ->> 'external_reference'
    WHERE me.metadata ? 'external_reference' AND c.metadata ? 'external_reference' AND c.id <> me.id
    UNION ALL
    SELECT c.id, 'name_and_company'
    FROM me JOIN customers c ON lower(c.company_name) = lower(me.company_name)
    WHERE me.company_name <> '' AND c.company_name <> '' AND c.id <> me.id
      AND similarity(lower(c.first_name || ' ' || c.last_name), lower(me.first_name || ' ' || me.last_name)) >= 0.5
    UNION ALL
    SELECT c.id, 'name_and_address'
    FROM places p
    JOIN customer_addresses a ON a.postal_code = p.postal_code AND lower(a.street_address_1) = p.street
    JOIN customers c ON c.id = a.customer_id
    CROSS JOIN me
    WHERE a.street_address_1 <> '' AND c.id <> me.id
      AND similarity(lower(c.first_name || ' ' || c.last_name), lower(me.first_name || ' ' || me.last_name)) >= 0.5
)
SELECT c.id, array_agg(DISTINCT f.reason)::text[] AS reasons,
       similarity(lower(c.first_name || ' ' || c.last_name), lower(me.first_name || ' ' || me.last_name))::float8 AS name_similarity
FROM found f
JOIN customers c ON c.id = f.id
CROSS JOIN me
WHERE NOT EXISTS (
    SELECT 1 FROM duplicate_dismissals d WHERE d.a = least(c.id, me.id) AND d.b = greatest(c.id, me.id))
GROUP BY c.id, me.first_name, me.last_name
LIMIT sqlc.arg(row_limit);

-- name: DismissDuplicate :exec
-- The pair leaves the global list at once.
WITH unlisted AS (
    DELETE FROM duplicate_pairs
    WHERE a = least(sqlc.arg(x)::uuid, sqlc.arg(y)::uuid) AND b = greatest(sqlc.arg(x)::uuid, sqlc.arg(y)::uuid)
)
INSERT INTO duplicate_dismissals (a, b, actor_type, actor_id, dismissed_at)
VALUES (least(sqlc.arg(x)::uuid, sqlc.arg(y)::uuid), greatest(sqlc.arg(x)::uuid, sqlc.arg(y)::uuid), sqlc.arg(actor_type), sqlc.arg(actor_id), sqlc.arg(dismissed_at))
ON CONFLICT (a, b) DO NOTHING;

-- Building every pair walks each reason's index in key order, a chunk at a
-- time: groups of customers sharing a key, after the last chunk's key.

-- name: DuplicateGroupsByEmail :many
SELECT customer_email_folded(email)::text AS key, (array_agg(id ORDER BY id))[1:sqlc.arg(group_limit)::int]::uuid[] AS ids
FROM customers
WHERE customer_email_folded(email) > sqlc.arg(after)::text
GROUP BY 1 HAVING count(*) > 1
ORDER BY 1
LIMIT sqlc.arg(row_limit);

-- name: DuplicateGroupsByPhone :many
SELECT phone::text AS key, (array_agg(id ORDER BY id))[1:sqlc.arg(group_limit)::int]::uuid[] AS ids
FROM customers
WHERE phone IS NOT NULL AND phone > sqlc.arg(after)::text
GROUP BY 1 HAVING count(*) > 1
ORDER BY 1
LIMIT sqlc.arg(row_limit);

-- name: DuplicateGroupsByReference :many
SELECT (metadata ->> 'external_reference')::text AS key, (array_agg(id ORDER BY id))[1:sqlc.arg(group_limit)::int]::uuid[] AS ids
FROM customers
WHERE metadata ? 'external_reference' AND metadata ->> 'external_reference' > sqlc.arg(after)::text
GROUP BY 1 HAVING count(*) > 1
ORDER BY 1
LIMIT sqlc.arg(row_limit);

-- name: DuplicateGroupsByCompany :many
SELECT lower(company_name)::text AS key, (array_agg(id ORDER BY id))[1:sqlc.arg(group_limit)::int]::uuid[] AS ids
FROM customers
WHERE company_name <> '' AND lower(company_name) > sqlc.arg(after)::text
GROUP BY 1 HAVING count(*) > 1
ORDER BY 1
LIMIT sqlc.arg(row_limit);

-- name: DuplicateGroupsByAddress :many
-- The key is the postal code and the street, apart by a unit separator.
SELECT (postal_code || chr(31) || lower(street_address_1))::text AS key,
       (array_agg(DISTINCT customer_id))[1:sqlc.arg(group_limit)::int]::uuid[] AS ids
FROM customer_addresses
WHERE street_address_1 <> ''
  AND (postal_code, lower(street_address_1)) > (split_part(sqlc.arg(after)::text, chr(31), 1), split_part(sqlc.arg(after)::text, chr(31), 2))
GROUP BY postal_code, lower(street_address_1) HAVING count(DISTINCT customer_id) > 1
ORDER BY postal_code, lower(street_address_1)
LIMIT sqlc.arg(row_limit);

-- name: ScorePairs :many
-- What each pair shares, for the global list's page: the reasons' tests of
-- DuplicateCandidates, pair by pair, and whether the pair was dismissed.
SELECT p.a::uuid AS a, p.b::uuid AS b,
       customer_email_folded(ca.email) = customer_email_folded(cb.email) AS same_email,
       coalesce(ca.phone = cb.phone, false)::boolean AS same_phone,
       coalesce(ca.metadata ->> 'external_reference' = cb.metadata ->> 'external_reference', false)::boolean AS same_reference,
       (ca.company_name <> '' AND lower(ca.company_name) = lower(cb.company_name))::boolean AS same_company,
       EXISTS (
           SELECT 1 FROM customer_addresses x
           JOIN customer_addresses y ON y.postal_code = x.postal_code AND lower(y.street_address_1) = lower(x.street_address_1)
           WHERE x.customer_id = p.a AND y.customer_id = p.b AND x.street_address_1 <> '') AS same_address,
       similarity(lower(ca.first_name || ' ' || ca.last_name), lower(cb.first_name || ' ' || cb.last_name))::float8 AS name_similarity,
       EXISTS (SELECT 1 FROM duplicate_dismissals d WHERE d.a = least(p.a, p.b) AND d.b = greatest(p.a, p.b)) AS dismissed
FROM (SELECT unnest(sqlc.arg(as_)::uuid[]) AS a, unnest(sqlc.arg(bs)::uuid[]) AS b) p
JOIN customers ca ON ca.id = p.a
JOIN customers cb ON cb.id = p.b;

-- name: GetCustomersByIDs :many
SELECT * FROM customers WHERE id = ANY(sqlc.arg(ids)::uuid[]);

-- name: DeleteDuplicatePairsOf :exec
-- The pairs of these customers, before the finder writes them afresh.
DELETE FROM duplicate_pairs WHERE a = ANY(sqlc.arg(ids)::uuid[]) OR b = ANY(sqlc.arg(ids)::uuid[]);

-- name: UpsertDuplicatePairs :exec
-- Each pair's reasons come joined by commas. A customer gone meanwhile
-- takes its pairs with it.
INSERT INTO duplicate_pairs (a, b, score, reasons, found_at)
SELECT least(p.x, p.y), greatest(p.x, p.y), p.score, string_to_array(p.reasons, ','), sqlc.arg(found_at)
FROM (SELECT unnest(sqlc.arg(xs)::uuid[]) AS x, unnest(sqlc.arg(ys)::uuid[]) AS y,
             unnest(sqlc.arg(scores)::float8[]) AS score, unnest(sqlc.arg(reasons)::text[]) AS reasons) p
WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = p.x) AND EXISTS (SELECT 1 FROM customers c WHERE c.id = p.y)
ON CONFLICT (a, b) DO UPDATE SET score = excluded.score, reasons = excluded.reasons, found_at = excluded.found_at;

-- name: ListDuplicatePairs :many
-- The global list: highest score first, then by the pair's ids, after the
-- cursor's pair (score 2 and no ids before the first page).
SELECT a, b, score, reasons FROM duplicate_pairs
WHERE (score, a, b) < (sqlc.arg(after_score)::float8, sqlc.arg(after_a)::uuid, sqlc.arg(after_b)::uuid)
  AND score >= sqlc.arg(min_score)::float8
  AND (sqlc.arg(reason)::text = '' OR sqlc.arg(reason)::text = ANY(reasons))
ORDER BY score DESC, a DESC, b DESC
LIMIT sqlc.arg(row_limit);

-- name: ClaimDuplicateBuild :one
-- Whether every pair was ever built; the row stays locked for the one
-- instance building them, and the others skip it (no row).
SELECT built_at FROM duplicate_finder FOR UPDATE SKIP LOCKED;

-- name: MarkDuplicatesBuilt :exec
UPDATE duplicate_finder SET built_at = sqlc.arg(built_at);
