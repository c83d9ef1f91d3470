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
-- A list without attribute filters (ListCustomersByAttribute has them).
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
-- clause between queries) and every attribute filter, tested on each
-- customer (an export reads every match anyway); private metadata keys
-- only when asked for.
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
  -- Attribute filters tested on each customer (those past the slots), one
  -- entry per filter across its kind's arrays (an empty bound does not
  -- bound: text, so that it can be empty).
  AND (sqlc.narg(text_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(text_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_texts v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(text_keys)::text[])[i]
              AND v.value = (sqlc.narg(text_values)::text[])[i])))
  AND (sqlc.narg(number_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(number_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_numbers v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(number_keys)::text[])[i]
              AND ((sqlc.narg(number_mins)::text[])[i] = '' OR v.value >= (sqlc.narg(number_mins)::text[])[i]::numeric)
              AND ((sqlc.narg(number_maxes)::text[])[i] = '' OR v.value <= (sqlc.narg(number_maxes)::text[])[i]::numeric))))
  AND (sqlc.narg(time_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(time_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_times v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(time_keys)::text[])[i]
              AND ((sqlc.narg(time_mins)::text[])[i] = '' OR v.value >= (sqlc.narg(time_mins)::text[])[i]::timestamptz)
              AND ((sqlc.narg(time_maxes)::text[])[i] = '' OR v.value <= (sqlc.narg(time_maxes)::text[])[i]::timestamptz))))
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
-- ListCustomers with attribute filters (sqlc cannot share a WHERE clause
-- between queries). The first two filters of each kind are slots: each a
-- LEFT JOIN of its kind's table, on the customer and the filter's
-- condition, which the WHERE makes an inner join when the slot is given
-- (a slot not given has a NULL key, so its join folds to nothing). The
-- planner thus sees a join per filter, with the statistics of its table,
-- and starts from whichever it estimates cheapest: a rare value's
-- customers read from its index, or the order's index walked and each
-- customer's value probed; it joins the others in the order it likes. (An
-- IN under "param IS NULL OR" could not become a join at all.) A slot
-- matches at most one row of a customer: one value per key. Filters past
-- the slots are tested on each customer.
SELECT customers.* FROM customers
LEFT JOIN customer_attribute_texts text1 ON customers.id = text1.customer_id
    AND text1.key = sqlc.narg(text1_key)::text AND text1.value = sqlc.narg(text1_value)::text
LEFT JOIN customer_attribute_texts text2 ON customers.id = text2.customer_id
    AND text2.key = sqlc.narg(text2_key)::text AND text2.value = sqlc.narg(text2_value)::text
LEFT JOIN customer_attribute_numbers number1 ON customers.id = number1.customer_id AND number1.key = sqlc.narg(number1_key)::text
    AND (sqlc.narg(number1_min)::text IS NULL OR number1.value >= sqlc.narg(number1_min)::numeric)
    AND (sqlc.narg(number1_max)::text IS NULL OR number1.value <= sqlc.narg(number1_max)::numeric)
LEFT JOIN customer_attribute_numbers number2 ON customers.id = number2.customer_id AND number2.key = sqlc.narg(number2_key)::text
    AND (sqlc.narg(number2_min)::text IS NULL OR number2.value >= sqlc.narg(number2_min)::numeric)
    AND (sqlc.narg(number2_max)::text IS NULL OR number2.value <= sqlc.narg(number2_max)::numeric)
LEFT JOIN customer_attribute_times time1 ON customers.id = time1.customer_id AND time1.key = sqlc.narg(time1_key)::text
    AND (sqlc.narg(time1_min)::timestamptz IS NULL OR time1.value >= sqlc.narg(time1_min))
    AND (sqlc.narg(time1_max)::timestamptz IS NULL OR time1.value <= sqlc.narg(time1_max))
LEFT JOIN customer_attribute_times time2 ON customers.id = time2.customer_id AND time2.key = sqlc.narg(time2_key)::text
    AND (sqlc.narg(time2_min)::timestamptz IS NULL OR time2.value >= sqlc.narg(time2_min))
    AND (sqlc.narg(time2_max)::timestamptz IS NULL OR time2.value <= sqlc.narg(time2_max))
WHERE (sqlc.narg(email)::text IS NULL OR email = sqlc.narg(email))
  -- The attribute slots given keep only the customers their filters match.
  AND (sqlc.narg(text1_key)::text IS NULL OR text1.customer_id IS NOT NULL)
  AND (sqlc.narg(text2_key)::text IS NULL OR text2.customer_id IS NOT NULL)
  AND (sqlc.narg(number1_key)::text IS NULL OR number1.customer_id IS NOT NULL)
  AND (sqlc.narg(number2_key)::text IS NULL OR number2.customer_id IS NOT NULL)
  AND (sqlc.narg(time1_key)::text IS NULL OR time1.customer_id IS NOT NULL)
  AND (sqlc.narg(time2_key)::text IS NULL OR time2.customer_id IS NOT NULL)
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
  -- Attribute filters tested on each customer (those past the slots), one
  -- entry per filter across its kind's arrays (an empty bound does not
  -- bound: text, so that it can be empty).
  AND (sqlc.narg(text_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(text_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_texts v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(text_keys)::text[])[i]
              AND v.value = (sqlc.narg(text_values)::text[])[i])))
  AND (sqlc.narg(number_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(number_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_numbers v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(number_keys)::text[])[i]
              AND ((sqlc.narg(number_mins)::text[])[i] = '' OR v.value >= (sqlc.narg(number_mins)::text[])[i]::numeric)
              AND ((sqlc.narg(number_maxes)::text[])[i] = '' OR v.value <= (sqlc.narg(number_maxes)::text[])[i]::numeric))))
  AND (sqlc.narg(time_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(time_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_times v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(time_keys)::text[])[i]
              AND ((sqlc.narg(time_mins)::text[])[i] = '' OR v.value >= (sqlc.narg(time_mins)::text[])[i]::timestamptz)
              AND ((sqlc.narg(time_maxes)::text[])[i] = '' OR v.value <= (sqlc.narg(time_maxes)::text[])[i]::timestamptz))))
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

-- name: CountCustomersByOneAttribute :one
-- The count of one attribute filter and no other, from its kind's value
-- index alone (kind: text, number or time; the other kinds' branches plan
-- as nothing). Each value row's foreign key holds that it is a customer's,
-- so no customer is read: the probes of customers_pkey for 1,001 matches
-- were most of such a count (a 1% range of points: 24.3 ms against 0.9 ms
-- without them at a million customers; 80-136 ms p95 at ten million).
SELECT count(*) FROM (
    SELECT 1 FROM customer_attribute_texts
    WHERE sqlc.arg(kind)::text = 'text' AND key = sqlc.arg(key)::text AND value = sqlc.narg(text_value)::text
    UNION ALL
    SELECT 1 FROM customer_attribute_numbers
    WHERE sqlc.arg(kind)::text = 'number' AND key = sqlc.arg(key)::text
      AND (sqlc.narg(number_min)::text IS NULL OR value >= sqlc.narg(number_min)::numeric)
      AND (sqlc.narg(number_max)::text IS NULL OR value <= sqlc.narg(number_max)::numeric)
    UNION ALL
    SELECT 1 FROM customer_attribute_times
    WHERE sqlc.arg(kind)::text = 'time' AND key = sqlc.arg(key)::text
      AND (sqlc.narg(time_min)::timestamptz IS NULL OR value >= sqlc.narg(time_min))
      AND (sqlc.narg(time_max)::timestamptz IS NULL OR value <= sqlc.narg(time_max))
    LIMIT sqlc.arg(count_limit)
) AS capped;

-- name: CountCustomersByAttribute :one
-- CountCustomers with attribute filters, their slots as in
-- ListCustomersByAttribute (sqlc cannot share a WHERE clause between
-- queries).
SELECT count(*) FROM (
SELECT 1 FROM customers
LEFT JOIN customer_attribute_texts text1 ON customers.id = text1.customer_id
    AND text1.key = sqlc.narg(text1_key)::text AND text1.value = sqlc.narg(text1_value)::text
LEFT JOIN customer_attribute_texts text2 ON customers.id = text2.customer_id
    AND text2.key = sqlc.narg(text2_key)::text AND text2.value = sqlc.narg(text2_value)::text
LEFT JOIN customer_attribute_numbers number1 ON customers.id = number1.customer_id AND number1.key = sqlc.narg(number1_key)::text
    AND (sqlc.narg(number1_min)::text IS NULL OR number1.value >= sqlc.narg(number1_min)::numeric)
    AND (sqlc.narg(number1_max)::text IS NULL OR number1.value <= sqlc.narg(number1_max)::numeric)
LEFT JOIN customer_attribute_numbers number2 ON customers.id = number2.customer_id AND number2.key = sqlc.narg(number2_key)::text
    AND (sqlc.narg(number2_min)::text IS NULL OR number2.value >= sqlc.narg(number2_min)::numeric)
    AND (sqlc.narg(number2_max)::text IS NULL OR number2.value <= sqlc.narg(number2_max)::numeric)
LEFT JOIN customer_attribute_times time1 ON customers.id = time1.customer_id AND time1.key = sqlc.narg(time1_key)::text
    AND (sqlc.narg(time1_min)::timestamptz IS NULL OR time1.value >= sqlc.narg(time1_min))
    AND (sqlc.narg(time1_max)::timestamptz IS NULL OR time1.value <= sqlc.narg(time1_max))
LEFT JOIN customer_attribute_times time2 ON customers.id = time2.customer_id AND time2.key = sqlc.narg(time2_key)::text
    AND (sqlc.narg(time2_min)::timestamptz IS NULL OR time2.value >= sqlc.narg(time2_min))
    AND (sqlc.narg(time2_max)::timestamptz IS NULL OR time2.value <= sqlc.narg(time2_max))
WHERE (sqlc.narg(email)::text IS NULL OR email = sqlc.narg(email))
  -- The attribute slots given keep only the customers their filters match.
  AND (sqlc.narg(text1_key)::text IS NULL OR text1.customer_id IS NOT NULL)
  AND (sqlc.narg(text2_key)::text IS NULL OR text2.customer_id IS NOT NULL)
  AND (sqlc.narg(number1_key)::text IS NULL OR number1.customer_id IS NOT NULL)
  AND (sqlc.narg(number2_key)::text IS NULL OR number2.customer_id IS NOT NULL)
  AND (sqlc.narg(time1_key)::text IS NULL OR time1.customer_id IS NOT NULL)
  AND (sqlc.narg(time2_key)::text IS NULL OR time2.customer_id IS NOT NULL)
  AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active))
  AND (sqlc.narg(q)::text IS NULL OR (strpos(search_text, customer_search_text(sqlc.narg(q))) <> 0
       AND customer_search_key(search_text) LIKE customer_search_pattern(sqlc.narg(q))))
  AND (sqlc.narg(has_account)::boolean IS NULL OR has_account = sqlc.narg(has_account))
  AND (sqlc.narg(is_verified)::boolean IS NULL OR is_verified = sqlc.narg(is_verified))
  AND (sqlc.narg(created_after)::timestamptz IS NULL OR created_at > sqlc.narg(created_after))
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR created_at < sqlc.narg(created_before))
  AND (sqlc.narg(updated_after)::timestamptz IS NULL OR updated_at > sqlc.narg(updated_after))
  AND (sqlc.narg(metadata)::jsonb IS NULL OR metadata @> sqlc.narg(metadata))
  -- Attribute filters tested on each customer (those past the slots), one
  -- entry per filter across its kind's arrays (an empty bound does not
  -- bound: text, so that it can be empty).
  AND (sqlc.narg(text_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(text_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_texts v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(text_keys)::text[])[i]
              AND v.value = (sqlc.narg(text_values)::text[])[i])))
  AND (sqlc.narg(number_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(number_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_numbers v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(number_keys)::text[])[i]
              AND ((sqlc.narg(number_mins)::text[])[i] = '' OR v.value >= (sqlc.narg(number_mins)::text[])[i]::numeric)
              AND ((sqlc.narg(number_maxes)::text[])[i] = '' OR v.value <= (sqlc.narg(number_maxes)::text[])[i]::numeric))))
  AND (sqlc.narg(time_keys)::text[] IS NULL OR NOT EXISTS (
        SELECT 1 FROM generate_subscripts(sqlc.narg(time_keys)::text[], 1) AS i
        WHERE NOT EXISTS (SELECT 1 FROM customer_attribute_times v
            WHERE v.customer_id = customers.id AND v.key = (sqlc.narg(time_keys)::text[])[i]
              AND ((sqlc.narg(time_mins)::text[])[i] = '' OR v.value >= (sqlc.narg(time_mins)::text[])[i]::timestamptz)
              AND ((sqlc.narg(time_maxes)::text[])[i] = '' OR v.value <= (sqlc.narg(time_maxes)::text[])[i]::timestamptz))))
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
-- A count of two attribute slots or more goes in customer order: an
-- equality's matches come from its index in that order, and the planner
-- merges or probes the other filters' values for them until the limit,
-- where unordered it would hash one filter's matches whole (a tier and a
-- range of points at a million customers: 22 ms against 58). (Without a
-- window, or with one slot, each ORDER BY is a constant, which the planner
-- drops.)
ORDER BY CASE WHEN sqlc.narg(placed_after)::timestamptz IS NOT NULL AND sqlc.narg(placed_before)::timestamptz IS NOT NULL
    THEN first_order_at END DESC,
  CASE WHEN num_nonnulls(sqlc.narg(text1_key)::text, sqlc.narg(text2_key)::text, sqlc.narg(number1_key)::text,
      sqlc.narg(number2_key)::text, sqlc.narg(time1_key)::text, sqlc.narg(time2_key)::text) > 1
    THEN customers.id END
LIMIT sqlc.arg(count_limit)
) AS capped;
