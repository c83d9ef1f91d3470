-- name: DuplicateCandidates :many
-- The customers that may be the same person as this one, each with the
-- reasons found and how alike the names are; dismissed pairs left out.
-- Each reason looks candidates up through its own index.
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
    SELECT c.id, 'name_and_company'
    FROM me JOIN customers c ON lower(c.company_name) = lower(me.company_name)
    WHERE me.company_name <> '' AND c.company_name <> '' AND c.id <> me.id
    UNION ALL
    SELECT a.customer_id, 'name_and_address'
    FROM places p JOIN customer_addresses a ON a.postal_code = p.postal_code AND lower(a.street_address_1) = p.street
    WHERE a.street_address_1 <> '' AND a.customer_id <> sqlc.arg(id)
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
INSERT INTO duplicate_dismissals (a, b, actor_type, actor_id, dismissed_at)
VALUES (least(sqlc.arg(x)::uuid, sqlc.arg(y)::uuid), greatest(sqlc.arg(x)::uuid, sqlc.arg(y)::uuid), sqlc.arg(actor_type), sqlc.arg(actor_id), sqlc.arg(dismissed_at))
ON CONFLICT (a, b) DO NOTHING;
