-- name: InsertCustomerAddress :batchexec
INSERT INTO customer_addresses (
    id, customer_id, first_name, last_name, company_name, street_address_1,
    street_address_2, city, city_area, postal_code, country, country_area, phone,
    created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15);

-- name: UpdateCustomerAddress :execrows
UPDATE customer_addresses SET
    first_name = $3, last_name = $4, company_name = $5, street_address_1 = $6,
    street_address_2 = $7, city = $8, city_area = $9, postal_code = $10, country = $11,
    country_area = $12, phone = $13, updated_at = $14
WHERE id = $1 AND customer_id = $2;

-- name: DeleteCustomerAddress :execrows
DELETE FROM customer_addresses WHERE id = $1 AND customer_id = $2;

-- name: GetCustomerAddress :one
SELECT * FROM customer_addresses WHERE id = $1 AND customer_id = $2;

-- name: ListCustomerAddresses :many
SELECT * FROM customer_addresses
WHERE customer_id = sqlc.arg(customer_id)
  AND (sqlc.narg(after_id)::uuid IS NULL
       OR (created_at, id) > (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at, id
LIMIT sqlc.arg(row_limit);

-- name: ListAddressesOfCustomers :many
-- Every address of a page of customers in one round trip (an export's page),
-- each customer's oldest first as ListCustomerAddresses orders them.
SELECT * FROM customer_addresses
WHERE customer_id = ANY(sqlc.arg(customer_ids)::uuid[])
ORDER BY customer_id, created_at, id;
