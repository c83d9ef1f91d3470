-- name: InsertCustomerNote :exec
INSERT INTO customer_notes (id, customer_id, author_type, author_id, author_name, body, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: ListCustomerNotes :many
SELECT * FROM customer_notes
WHERE customer_id = sqlc.arg(customer_id)
  AND (sqlc.narg(after_id)::uuid IS NULL
       OR (created_at, id) < (sqlc.narg(after_time)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(row_limit);

-- name: CustomerExists :one
SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1);
