-- name: InsertCustomerWithEvents :execrows
-- The customer and its outbox events in one statement: atomic by itself (an
-- implicit transaction) and one round trip instead of four. A non-zero
-- definitions_version is the version of the attribute definitions the
-- customer was checked against: if they have changed since, nothing is
-- written (0 rows), and the caller checks the customer again. Checking it
-- here spares every create a round trip to read the version first.
WITH inserted AS (
    INSERT INTO customers (
        id, email, first_name, last_name, company_name, phone, note, is_active,
        language_code, external_reference, metadata, private_metadata, has_account,
        is_verified, version, created_at, updated_at, default_shipping_address_id,
        default_billing_address_id, group_ids, password_hash, attributes
    )
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22
    WHERE sqlc.arg(definitions_version)::bigint = 0
       OR sqlc.arg(definitions_version)::bigint = (SELECT version FROM customer_attribute_definitions_version)
    RETURNING id
)
INSERT INTO outbox (event_id, nats_subject, partition_key, event)
SELECT unnest(sqlc.arg(event_ids)::uuid[]), unnest(sqlc.arg(nats_subjects)::text[]),
       unnest(sqlc.arg(partition_keys)::text[]), unnest(sqlc.arg(events)::bytea[])
FROM inserted;

-- name: GetCustomer :one
SELECT * FROM customers WHERE id = $1;

-- name: GetCustomersForUpdate :many
-- Locks in id order, so two commands over overlapping sets cannot deadlock.
SELECT * FROM customers WHERE id = ANY(sqlc.arg(ids)::uuid[])
ORDER BY id
FOR UPDATE;

-- name: UpdateCustomer :execrows
-- The version check makes a lost update impossible even without the row lock.
UPDATE customers SET
    email = $2, first_name = $3, last_name = $4, company_name = $5, phone = $6,
    note = $7, is_active = $8, language_code = $9, external_reference = $10,
    metadata = $11, private_metadata = $12, has_account = $13, is_verified = $14,
    version = $15, updated_at = $16, default_shipping_address_id = $17,
    default_billing_address_id = $18, attributes = $19
WHERE id = $1 AND version = sqlc.arg(expected_version);

-- name: DeleteCustomers :execrows
DELETE FROM customers WHERE id = ANY(sqlc.arg(ids)::uuid[]);

-- name: ListCustomers :many
-- One query serves every sort order: with custom plans (plan_cache_mode =
-- force_custom_plan on our connections) the planner folds the constant CASE and
-- IS NULL tests away, so each order still walks its own index.
SELECT * FROM customers
WHERE (sqlc.narg(email)::text IS NULL OR email = sqlc.narg(email))
  AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
  -- q: LIKE on the search keys finds it through their trigram index
  -- (migration 00030) and gives the estimate; strpos is the same test without
  -- building a key, so it runs first on the rows an order's index walks, and
  -- the planner takes it to hold nearly always, so it leaves the estimate be.
  AND (sqlc.narg(q)::text IS NULL OR (strpos(search_text, customer_search_text(sqlc.narg(q))) <> 0
       AND customer_search_key(search_text) LIKE customer_search_pattern(sqlc.narg(q))))
  AND (sqlc.narg(has_account)::boolean IS NULL OR has_account = sqlc.narg(has_account))
  AND (sqlc.narg(is_verified)::boolean IS NULL OR is_verified = sqlc.narg(is_verified))
  AND (sqlc.narg(created_after)::timestamptz IS NULL OR created_at > sqlc.narg(created_after))
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR created_at < sqlc.narg(created_before))
  AND (sqlc.narg(updated_after)::timestamptz IS NULL OR updated_at > sqlc.narg(updated_after))
  AND (sqlc.narg(metadata)::jsonb IS NULL OR metadata @> sqlc.narg(metadata))
  -- Attribute filters, one entry per filter across the arrays (an empty
  -- string does not bound; text, so that it can be empty), each tested on
  -- the customer's typed values.
  AND (sqlc.narg(attr_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(attr_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_values v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(attr_keys)::text[])[i]
              AND ((sqlc.narg(attr_texts)::text[])[i] = '' OR v.text_value = (sqlc.narg(attr_texts)::text[])[i])
              AND ((sqlc.narg(attr_num_min)::text[])[i] = '' OR v.num_value >= (sqlc.narg(attr_num_min)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_num_max)::text[])[i] = '' OR v.num_value <= (sqlc.narg(attr_num_max)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_time_min)::text[])[i] = '' OR v.time_value >= (sqlc.narg(attr_time_min)::text[])[i]::timestamptz)
              AND ((sqlc.narg(attr_time_max)::text[])[i] = '' OR v.time_value <= (sqlc.narg(attr_time_max)::text[])[i]::timestamptz))))
  AND (sqlc.narg(email_consent)::text IS NULL OR email_consent_state = sqlc.narg(email_consent))
  AND (sqlc.narg(sms_consent)::text IS NULL OR sms_consent_state = sqlc.narg(sms_consent))
  AND (sqlc.narg(group_id)::uuid IS NULL OR group_ids @> ARRAY[sqlc.narg(group_id)::uuid])
  AND (sqlc.narg(orders_min)::integer IS NULL OR number_of_orders >= sqlc.narg(orders_min))
  AND (sqlc.narg(orders_max)::integer IS NULL OR number_of_orders <= sqlc.narg(orders_max))
  -- "Placed an order after X" is exactly "the last order is after X", and
  -- "before Y" "the first order is before Y": plain, indexed conditions. A
  -- window also holds when the first or the last order falls in it; only a
  -- customer who ordered both before and after it needs its orders read: one
  -- index probe for the first order after X. (As EXISTS under these ORs the
  -- planner hashed every order of the window before the first row, tens of
  -- milliseconds, for a page that probes a few customers.)
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR last_order_at > sqlc.narg(placed_after))
  AND (sqlc.narg(placed_before)::timestamptz IS NULL OR first_order_at < sqlc.narg(placed_before))
  AND (NOT sqlc.arg(ordered_before_created)::boolean OR first_order_at < created_at)
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR sqlc.narg(placed_before)::timestamptz IS NULL
       OR last_order_at < sqlc.narg(placed_before) OR first_order_at > sqlc.narg(placed_after)
       OR (SELECT min(o.placed_at) FROM orders o WHERE o.customer_id = customers.id
             AND o.placed_at > sqlc.narg(placed_after)) < sqlc.narg(placed_before))
  AND (sqlc.narg(after_id)::uuid IS NULL OR CASE sqlc.arg(sort)::text
        WHEN 'created_at'  THEN (created_at, id) > (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id))
        WHEN '-created_at' THEN (created_at, id) < (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id))
        WHEN 'email'       THEN (email, id) > (sqlc.narg(after_text)::text, sqlc.narg(after_id))
        WHEN '-email'      THEN (email, id) < (sqlc.narg(after_text)::text, sqlc.narg(after_id))
        WHEN 'last_name'   THEN (last_name, id) > (sqlc.narg(after_text)::text, sqlc.narg(after_id))
        WHEN '-last_name'  THEN (last_name, id) < (sqlc.narg(after_text)::text, sqlc.narg(after_id))
        WHEN 'number_of_orders'  THEN (number_of_orders, id) > (sqlc.narg(after_int)::integer, sqlc.narg(after_id))
        WHEN '-number_of_orders' THEN (number_of_orders, id) < (sqlc.narg(after_int)::integer, sqlc.narg(after_id))
      END)
ORDER BY
    CASE WHEN sqlc.arg(sort) = 'created_at' THEN created_at END ASC,
    CASE WHEN sqlc.arg(sort) = '-created_at' THEN created_at END DESC,
    CASE WHEN sqlc.arg(sort) = 'email' THEN email END ASC,
    CASE WHEN sqlc.arg(sort) = '-email' THEN email END DESC,
    CASE WHEN sqlc.arg(sort) = 'last_name' THEN last_name END ASC,
    CASE WHEN sqlc.arg(sort) = '-last_name' THEN last_name END DESC,
    CASE WHEN sqlc.arg(sort) = 'number_of_orders' THEN number_of_orders END ASC,
    CASE WHEN sqlc.arg(sort) = '-number_of_orders' THEN number_of_orders END DESC,
    CASE WHEN sqlc.arg(sort) IN ('created_at', 'email', 'last_name', 'number_of_orders') THEN id END ASC,
    CASE WHEN sqlc.arg(sort) IN ('-created_at', '-email', '-last_name', '-number_of_orders') THEN id END DESC
LIMIT sqlc.arg(row_limit);

-- name: CountCustomers :one
-- Counts at most count_limit customers: an exact count of a broad filter
-- reads every matching row, hundreds of milliseconds at a million customers,
-- while a list page needs only "exactly 312" or "at least 1,000".
SELECT count(*) FROM (
SELECT 1 FROM customers
WHERE (sqlc.narg(email)::text IS NULL OR email = sqlc.narg(email))
  AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
  AND (sqlc.narg(q)::text IS NULL OR (strpos(search_text, customer_search_text(sqlc.narg(q))) <> 0
       AND customer_search_key(search_text) LIKE customer_search_pattern(sqlc.narg(q))))
  AND (sqlc.narg(has_account)::boolean IS NULL OR has_account = sqlc.narg(has_account))
  AND (sqlc.narg(is_verified)::boolean IS NULL OR is_verified = sqlc.narg(is_verified))
  AND (sqlc.narg(created_after)::timestamptz IS NULL OR created_at > sqlc.narg(created_after))
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR created_at < sqlc.narg(created_before))
  AND (sqlc.narg(updated_after)::timestamptz IS NULL OR updated_at > sqlc.narg(updated_after))
  AND (sqlc.narg(metadata)::jsonb IS NULL OR metadata @> sqlc.narg(metadata))
  -- Attribute filters, one entry per filter across the arrays (an empty
  -- string does not bound; text, so that it can be empty), each tested on
  -- the customer's typed values.
  AND (sqlc.narg(attr_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(attr_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_values v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(attr_keys)::text[])[i]
              AND ((sqlc.narg(attr_texts)::text[])[i] = '' OR v.text_value = (sqlc.narg(attr_texts)::text[])[i])
              AND ((sqlc.narg(attr_num_min)::text[])[i] = '' OR v.num_value >= (sqlc.narg(attr_num_min)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_num_max)::text[])[i] = '' OR v.num_value <= (sqlc.narg(attr_num_max)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_time_min)::text[])[i] = '' OR v.time_value >= (sqlc.narg(attr_time_min)::text[])[i]::timestamptz)
              AND ((sqlc.narg(attr_time_max)::text[])[i] = '' OR v.time_value <= (sqlc.narg(attr_time_max)::text[])[i]::timestamptz))))
  AND (sqlc.narg(email_consent)::text IS NULL OR email_consent_state = sqlc.narg(email_consent))
  AND (sqlc.narg(sms_consent)::text IS NULL OR sms_consent_state = sqlc.narg(sms_consent))
  AND (sqlc.narg(group_id)::uuid IS NULL OR group_ids @> ARRAY[sqlc.narg(group_id)::uuid])
  AND (sqlc.narg(orders_min)::integer IS NULL OR number_of_orders >= sqlc.narg(orders_min))
  AND (sqlc.narg(orders_max)::integer IS NULL OR number_of_orders <= sqlc.narg(orders_max))
  -- "Placed an order after X" is exactly "the last order is after X", and
  -- "before Y" "the first order is before Y": plain, indexed conditions. A
  -- window also holds when the first or the last order falls in it; only a
  -- customer who ordered both before and after it needs its orders read: one
  -- index probe for the first order after X. (As EXISTS under these ORs the
  -- planner hashed every order of the window before the first row, tens of
  -- milliseconds, for a page that probes a few customers.)
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR last_order_at > sqlc.narg(placed_after))
  AND (sqlc.narg(placed_before)::timestamptz IS NULL OR first_order_at < sqlc.narg(placed_before))
  AND (NOT sqlc.arg(ordered_before_created)::boolean OR first_order_at < created_at)
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR sqlc.narg(placed_before)::timestamptz IS NULL
       OR last_order_at < sqlc.narg(placed_before) OR first_order_at > sqlc.narg(placed_after)
       OR (SELECT min(o.placed_at) FROM orders o WHERE o.customer_id = customers.id
             AND o.placed_at > sqlc.narg(placed_after)) < sqlc.narg(placed_before))
-- A window's count walks the first orders back from its end: the customers
-- met first ordered first inside it and match without a probe, where the
-- planner's pick, the oldest first orders up, probes nearly every customer.
-- (Without a window the ORDER BY is a constant, which the planner drops.)
ORDER BY CASE WHEN sqlc.narg(placed_after)::timestamptz IS NOT NULL AND sqlc.narg(placed_before)::timestamptz IS NOT NULL
    THEN first_order_at END DESC
LIMIT sqlc.arg(count_limit)
) AS capped;

-- name: ExportMetadataKeys :many
-- The metadata keys of every customer an export will write, read in the
-- export's snapshot before its first row: a CSV file names one column per key
-- in its header. The filters are ListCustomers' (sqlc cannot share a WHERE
-- clause between queries); private metadata keys only when asked for.
SELECT DISTINCT k.private, k.key FROM customers
CROSS JOIN LATERAL (
    SELECT false AS private, jsonb_object_keys(metadata) AS key
    UNION ALL
    SELECT true, jsonb_object_keys(private_metadata) WHERE sqlc.arg(with_private)::boolean
) AS k
WHERE (sqlc.narg(email)::text IS NULL OR email = sqlc.narg(email))
  AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
  AND (sqlc.narg(q)::text IS NULL OR (strpos(search_text, customer_search_text(sqlc.narg(q))) <> 0
       AND customer_search_key(search_text) LIKE customer_search_pattern(sqlc.narg(q))))
  AND (sqlc.narg(has_account)::boolean IS NULL OR has_account = sqlc.narg(has_account))
  AND (sqlc.narg(is_verified)::boolean IS NULL OR is_verified = sqlc.narg(is_verified))
  AND (sqlc.narg(created_after)::timestamptz IS NULL OR created_at > sqlc.narg(created_after))
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR created_at < sqlc.narg(created_before))
  AND (sqlc.narg(updated_after)::timestamptz IS NULL OR updated_at > sqlc.narg(updated_after))
  AND (sqlc.narg(metadata)::jsonb IS NULL OR metadata @> sqlc.narg(metadata))
  -- Attribute filters, one entry per filter across the arrays (an empty
  -- string does not bound; text, so that it can be empty), each tested on
  -- the customer's typed values.
  AND (sqlc.narg(attr_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(attr_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_values v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(attr_keys)::text[])[i]
              AND ((sqlc.narg(attr_texts)::text[])[i] = '' OR v.text_value = (sqlc.narg(attr_texts)::text[])[i])
              AND ((sqlc.narg(attr_num_min)::text[])[i] = '' OR v.num_value >= (sqlc.narg(attr_num_min)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_num_max)::text[])[i] = '' OR v.num_value <= (sqlc.narg(attr_num_max)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_time_min)::text[])[i] = '' OR v.time_value >= (sqlc.narg(attr_time_min)::text[])[i]::timestamptz)
              AND ((sqlc.narg(attr_time_max)::text[])[i] = '' OR v.time_value <= (sqlc.narg(attr_time_max)::text[])[i]::timestamptz))))
  AND (sqlc.narg(email_consent)::text IS NULL OR email_consent_state = sqlc.narg(email_consent))
  AND (sqlc.narg(sms_consent)::text IS NULL OR sms_consent_state = sqlc.narg(sms_consent))
  AND (sqlc.narg(group_id)::uuid IS NULL OR group_ids @> ARRAY[sqlc.narg(group_id)::uuid])
  AND (sqlc.narg(orders_min)::integer IS NULL OR number_of_orders >= sqlc.narg(orders_min))
  AND (sqlc.narg(orders_max)::integer IS NULL OR number_of_orders <= sqlc.narg(orders_max))
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR last_order_at > sqlc.narg(placed_after))
  AND (sqlc.narg(placed_before)::timestamptz IS NULL OR first_order_at < sqlc.narg(placed_before))
  AND (NOT sqlc.arg(ordered_before_created)::boolean OR first_order_at < created_at)
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR sqlc.narg(placed_before)::timestamptz IS NULL
       OR last_order_at < sqlc.narg(placed_before) OR first_order_at > sqlc.narg(placed_after)
       OR (SELECT min(o.placed_at) FROM orders o WHERE o.customer_id = customers.id
             AND o.placed_at > sqlc.narg(placed_after)) < sqlc.narg(placed_before));

-- name: ListCustomersByAttribute :many
-- ListCustomers with at least one attribute filter, the first of which
-- drives (sqlc cannot share a WHERE clause between queries).
SELECT * FROM customers
WHERE (sqlc.narg(email)::text IS NULL OR email = sqlc.narg(email))
  -- The first attribute filter drives: as a top-level IN the planner
  -- makes it a semi-join, and reads the few customers of a rare value from
  -- its index, or walks the order's index probing each customer for a
  -- common one, by the side table's statistics.
  AND customers.id IN (SELECT d.customer_id FROM customer_attribute_values d
        WHERE d.key = sqlc.arg(drive_key)::text
          AND (sqlc.narg(drive_text)::text IS NULL OR d.text_value = sqlc.narg(drive_text))
          AND (sqlc.narg(drive_num_min)::text IS NULL OR d.num_value >= sqlc.narg(drive_num_min)::numeric)
          AND (sqlc.narg(drive_num_max)::text IS NULL OR d.num_value <= sqlc.narg(drive_num_max)::numeric)
          AND (sqlc.narg(drive_time_min)::timestamptz IS NULL OR d.time_value >= sqlc.narg(drive_time_min))
          AND (sqlc.narg(drive_time_max)::timestamptz IS NULL OR d.time_value <= sqlc.narg(drive_time_max)))
  AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
  -- q: LIKE on the search keys finds it through their trigram index
  -- (migration 00030) and gives the estimate; strpos is the same test without
  -- building a key, so it runs first on the rows an order's index walks, and
  -- the planner takes it to hold nearly always, so it leaves the estimate be.
  AND (sqlc.narg(q)::text IS NULL OR (strpos(search_text, customer_search_text(sqlc.narg(q))) <> 0
       AND customer_search_key(search_text) LIKE customer_search_pattern(sqlc.narg(q))))
  AND (sqlc.narg(has_account)::boolean IS NULL OR has_account = sqlc.narg(has_account))
  AND (sqlc.narg(is_verified)::boolean IS NULL OR is_verified = sqlc.narg(is_verified))
  AND (sqlc.narg(created_after)::timestamptz IS NULL OR created_at > sqlc.narg(created_after))
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR created_at < sqlc.narg(created_before))
  AND (sqlc.narg(updated_after)::timestamptz IS NULL OR updated_at > sqlc.narg(updated_after))
  AND (sqlc.narg(metadata)::jsonb IS NULL OR metadata @> sqlc.narg(metadata))
  -- Attribute filters, one entry per filter across the arrays (an empty
  -- string does not bound; text, so that it can be empty), each tested on
  -- the customer's typed values.
  AND (sqlc.narg(attr_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(attr_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_values v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(attr_keys)::text[])[i]
              AND ((sqlc.narg(attr_texts)::text[])[i] = '' OR v.text_value = (sqlc.narg(attr_texts)::text[])[i])
              AND ((sqlc.narg(attr_num_min)::text[])[i] = '' OR v.num_value >= (sqlc.narg(attr_num_min)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_num_max)::text[])[i] = '' OR v.num_value <= (sqlc.narg(attr_num_max)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_time_min)::text[])[i] = '' OR v.time_value >= (sqlc.narg(attr_time_min)::text[])[i]::timestamptz)
              AND ((sqlc.narg(attr_time_max)::text[])[i] = '' OR v.time_value <= (sqlc.narg(attr_time_max)::text[])[i]::timestamptz))))
  AND (sqlc.narg(email_consent)::text IS NULL OR email_consent_state = sqlc.narg(email_consent))
  AND (sqlc.narg(sms_consent)::text IS NULL OR sms_consent_state = sqlc.narg(sms_consent))
  AND (sqlc.narg(group_id)::uuid IS NULL OR group_ids @> ARRAY[sqlc.narg(group_id)::uuid])
  AND (sqlc.narg(orders_min)::integer IS NULL OR number_of_orders >= sqlc.narg(orders_min))
  AND (sqlc.narg(orders_max)::integer IS NULL OR number_of_orders <= sqlc.narg(orders_max))
  -- "Placed an order after X" is exactly "the last order is after X", and
  -- "before Y" "the first order is before Y": plain, indexed conditions. A
  -- window also holds when the first or the last order falls in it; only a
  -- customer who ordered both before and after it needs its orders read: one
  -- index probe for the first order after X. (As EXISTS under these ORs the
  -- planner hashed every order of the window before the first row, tens of
  -- milliseconds, for a page that probes a few customers.)
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR last_order_at > sqlc.narg(placed_after))
  AND (sqlc.narg(placed_before)::timestamptz IS NULL OR first_order_at < sqlc.narg(placed_before))
  AND (NOT sqlc.arg(ordered_before_created)::boolean OR first_order_at < created_at)
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR sqlc.narg(placed_before)::timestamptz IS NULL
       OR last_order_at < sqlc.narg(placed_before) OR first_order_at > sqlc.narg(placed_after)
       OR (SELECT min(o.placed_at) FROM orders o WHERE o.customer_id = customers.id
             AND o.placed_at > sqlc.narg(placed_after)) < sqlc.narg(placed_before))
  AND (sqlc.narg(after_id)::uuid IS NULL OR CASE sqlc.arg(sort)::text
        WHEN 'created_at'  THEN (created_at, id) > (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id))
        WHEN '-created_at' THEN (created_at, id) < (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id))
        WHEN 'email'       THEN (email, id) > (sqlc.narg(after_text)::text, sqlc.narg(after_id))
        WHEN '-email'      THEN (email, id) < (sqlc.narg(after_text)::text, sqlc.narg(after_id))
        WHEN 'last_name'   THEN (last_name, id) > (sqlc.narg(after_text)::text, sqlc.narg(after_id))
        WHEN '-last_name'  THEN (last_name, id) < (sqlc.narg(after_text)::text, sqlc.narg(after_id))
        WHEN 'number_of_orders'  THEN (number_of_orders, id) > (sqlc.narg(after_int)::integer, sqlc.narg(after_id))
        WHEN '-number_of_orders' THEN (number_of_orders, id) < (sqlc.narg(after_int)::integer, sqlc.narg(after_id))
      END)
ORDER BY
    CASE WHEN sqlc.arg(sort) = 'created_at' THEN created_at END ASC,
    CASE WHEN sqlc.arg(sort) = '-created_at' THEN created_at END DESC,
    CASE WHEN sqlc.arg(sort) = 'email' THEN email END ASC,
    CASE WHEN sqlc.arg(sort) = '-email' THEN email END DESC,
    CASE WHEN sqlc.arg(sort) = 'last_name' THEN last_name END ASC,
    CASE WHEN sqlc.arg(sort) = '-last_name' THEN last_name END DESC,
    CASE WHEN sqlc.arg(sort) = 'number_of_orders' THEN number_of_orders END ASC,
    CASE WHEN sqlc.arg(sort) = '-number_of_orders' THEN number_of_orders END DESC,
    CASE WHEN sqlc.arg(sort) IN ('created_at', 'email', 'last_name', 'number_of_orders') THEN id END ASC,
    CASE WHEN sqlc.arg(sort) IN ('-created_at', '-email', '-last_name', '-number_of_orders') THEN id END DESC
LIMIT sqlc.arg(row_limit);

-- name: CountCustomersByAttribute :one
-- CountCustomers with at least one attribute filter, the first of which
-- drives (sqlc cannot share a WHERE clause between queries).
SELECT count(*) FROM (
SELECT 1 FROM customers
WHERE (sqlc.narg(email)::text IS NULL OR email = sqlc.narg(email))
  -- The first attribute filter drives: as a top-level IN the planner
  -- makes it a semi-join, and reads the few customers of a rare value from
  -- its index, or walks the order's index probing each customer for a
  -- common one, by the side table's statistics.
  AND customers.id IN (SELECT d.customer_id FROM customer_attribute_values d
        WHERE d.key = sqlc.arg(drive_key)::text
          AND (sqlc.narg(drive_text)::text IS NULL OR d.text_value = sqlc.narg(drive_text))
          AND (sqlc.narg(drive_num_min)::text IS NULL OR d.num_value >= sqlc.narg(drive_num_min)::numeric)
          AND (sqlc.narg(drive_num_max)::text IS NULL OR d.num_value <= sqlc.narg(drive_num_max)::numeric)
          AND (sqlc.narg(drive_time_min)::timestamptz IS NULL OR d.time_value >= sqlc.narg(drive_time_min))
          AND (sqlc.narg(drive_time_max)::timestamptz IS NULL OR d.time_value <= sqlc.narg(drive_time_max)))
  AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
  AND (sqlc.narg(q)::text IS NULL OR (strpos(search_text, customer_search_text(sqlc.narg(q))) <> 0
       AND customer_search_key(search_text) LIKE customer_search_pattern(sqlc.narg(q))))
  AND (sqlc.narg(has_account)::boolean IS NULL OR has_account = sqlc.narg(has_account))
  AND (sqlc.narg(is_verified)::boolean IS NULL OR is_verified = sqlc.narg(is_verified))
  AND (sqlc.narg(created_after)::timestamptz IS NULL OR created_at > sqlc.narg(created_after))
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR created_at < sqlc.narg(created_before))
  AND (sqlc.narg(updated_after)::timestamptz IS NULL OR updated_at > sqlc.narg(updated_after))
  AND (sqlc.narg(metadata)::jsonb IS NULL OR metadata @> sqlc.narg(metadata))
  -- Attribute filters, one entry per filter across the arrays (an empty
  -- string does not bound; text, so that it can be empty), each tested on
  -- the customer's typed values.
  AND (sqlc.narg(attr_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(attr_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_values v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(attr_keys)::text[])[i]
              AND ((sqlc.narg(attr_texts)::text[])[i] = '' OR v.text_value = (sqlc.narg(attr_texts)::text[])[i])
              AND ((sqlc.narg(attr_num_min)::text[])[i] = '' OR v.num_value >= (sqlc.narg(attr_num_min)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_num_max)::text[])[i] = '' OR v.num_value <= (sqlc.narg(attr_num_max)::text[])[i]::numeric)
              AND ((sqlc.narg(attr_time_min)::text[])[i] = '' OR v.time_value >= (sqlc.narg(attr_time_min)::text[])[i]::timestamptz)
              AND ((sqlc.narg(attr_time_max)::text[])[i] = '' OR v.time_value <= (sqlc.narg(attr_time_max)::text[])[i]::timestamptz))))
  AND (sqlc.narg(email_consent)::text IS NULL OR email_consent_state = sqlc.narg(email_consent))
  AND (sqlc.narg(sms_consent)::text IS NULL OR sms_consent_state = sqlc.narg(sms_consent))
  AND (sqlc.narg(group_id)::uuid IS NULL OR group_ids @> ARRAY[sqlc.narg(group_id)::uuid])
  AND (sqlc.narg(orders_min)::integer IS NULL OR number_of_orders >= sqlc.narg(orders_min))
  AND (sqlc.narg(orders_max)::integer IS NULL OR number_of_orders <= sqlc.narg(orders_max))
  -- "Placed an order after X" is exactly "the last order is after X", and
  -- "before Y" "the first order is before Y": plain, indexed conditions. A
  -- window also holds when the first or the last order falls in it; only a
  -- customer who ordered both before and after it needs its orders read: one
  -- index probe for the first order after X. (As EXISTS under these ORs the
  -- planner hashed every order of the window before the first row, tens of
  -- milliseconds, for a page that probes a few customers.)
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR last_order_at > sqlc.narg(placed_after))
  AND (sqlc.narg(placed_before)::timestamptz IS NULL OR first_order_at < sqlc.narg(placed_before))
  AND (NOT sqlc.arg(ordered_before_created)::boolean OR first_order_at < created_at)
  AND (sqlc.narg(placed_after)::timestamptz IS NULL OR sqlc.narg(placed_before)::timestamptz IS NULL
       OR last_order_at < sqlc.narg(placed_before) OR first_order_at > sqlc.narg(placed_after)
       OR (SELECT min(o.placed_at) FROM orders o WHERE o.customer_id = customers.id
             AND o.placed_at > sqlc.narg(placed_after)) < sqlc.narg(placed_before))
-- A window's count walks the first orders back from its end: the customers
-- met first ordered first inside it and match without a probe, where the
-- planner's pick, the oldest first orders up, probes nearly every customer.
-- (Without a window the ORDER BY is a constant, which the planner drops.)
ORDER BY CASE WHEN sqlc.narg(placed_after)::timestamptz IS NOT NULL AND sqlc.narg(placed_before)::timestamptz IS NOT NULL
    THEN first_order_at END DESC
LIMIT sqlc.arg(count_limit)
) AS capped;
