-- OpenID Connect sign-in: the providers staff configure, the authorization
-- requests a sign-in begins, and the identities customers are linked to.

-- name: LockOIDCProviderCount :exec
-- Serialises creations, so that two at once cannot both pass the limit.
SELECT pg_advisory_xact_lock(hashtextextended('customerbus.oidc_providers', 0));

-- name: InsertOIDCProvider :execrows
-- Inserts the provider unless there are max_providers already (0 rows).
INSERT INTO oidc_providers (id, display_name, issuer_url, client_id, client_secret, scopes, redirect_urls, created_at, updated_at)
SELECT sqlc.arg(id), sqlc.arg(display_name), sqlc.arg(issuer_url), sqlc.arg(client_id), sqlc.arg(client_secret),
       sqlc.arg(scopes)::text[], sqlc.arg(redirect_urls)::text[], sqlc.arg(created_at), sqlc.arg(updated_at)
WHERE (SELECT count(*) FROM oidc_providers) < sqlc.arg(max_providers)::bigint;

-- name: GetOIDCProvider :one
SELECT * FROM oidc_providers WHERE id = $1;

-- name: GetOIDCProviderForUpdate :one
SELECT * FROM oidc_providers WHERE id = $1 FOR UPDATE;

-- name: ListOIDCProviders :many
SELECT * FROM oidc_providers ORDER BY id;

-- name: UpdateOIDCProvider :exec
UPDATE oidc_providers SET display_name = $2, issuer_url = $3, client_id = $4, client_secret = $5,
    scopes = $6, redirect_urls = $7, updated_at = $8
WHERE id = $1;

-- name: DeleteOIDCProvider :execrows
-- Its open authorization requests and linked identities go with it.
DELETE FROM oidc_providers WHERE id = $1;

-- name: InsertOIDCAuthRequest :exec
INSERT INTO oidc_auth_requests (state_hash, provider_id, nonce_hash, code_verifier, redirect_url, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: TakeOIDCAuthRequest :one
-- Reads and deletes the request in one statement: a state serves once,
-- however many callbacks race with it.
DELETE FROM oidc_auth_requests WHERE state_hash = $1 AND provider_id = $2 RETURNING *;

-- name: SweepOIDCAuthRequests :execrows
-- Authorization requests expired before the given time, a batch at a time.
DELETE FROM oidc_auth_requests WHERE state_hash IN (
    SELECT old.state_hash FROM oidc_auth_requests old WHERE old.expires_at < $1 LIMIT 1000);

-- name: InsertCustomerIdentity :exec
INSERT INTO customer_identities (id, customer_id, provider_id, issuer, subject, email, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: GetCustomerIdentityBySubject :one
SELECT * FROM customer_identities WHERE issuer = $1 AND subject = $2;

-- name: ListCustomerIdentities :many
-- Oldest first; a customer has few (see customer.MaxIdentities).
SELECT * FROM customer_identities WHERE customer_id = $1 ORDER BY created_at, id;

-- name: DeleteCustomerIdentity :one
-- Deletes the identity and says how many the customer has left.
WITH gone AS (
    DELETE FROM customer_identities WHERE customer_identities.id = $1 AND customer_identities.customer_id = $2 RETURNING customer_identities.id
)
SELECT (SELECT count(*) FROM gone)::bigint AS deleted,
       (SELECT count(*) FROM customer_identities i WHERE i.customer_id = $2 AND i.id NOT IN (SELECT gone.id FROM gone))::bigint AS remaining;

-- name: DeleteCustomerIdentities :exec
DELETE FROM customer_identities WHERE customer_id = $1;

-- name: MoveCustomerIdentities :exec
-- A merge: the source's identities sign in to the target from now on.
UPDATE customer_identities SET customer_id = sqlc.arg(target_id) WHERE customer_id = sqlc.arg(source_id);
