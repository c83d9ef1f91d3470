-- name: SetCustomerConsent :exec
UPDATE customers SET
    email_consent_state = $2, email_consent_opt_in_level = $3, email_consent_updated_at = $4, email_consent_collected_from = $5,
    sms_consent_state = $6, sms_consent_opt_in_level = $7, sms_consent_updated_at = $8, sms_consent_collected_from = $9
WHERE id = $1;

-- name: InsertConsentChange :exec
INSERT INTO customer_consent_changes (customer_id, channel, state, opt_in_level, collected_from, actor_type, actor_id, changed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: ListConsentChanges :many
-- A customer's consent changes, oldest first.
SELECT * FROM customer_consent_changes WHERE customer_id = $1 ORDER BY id;

-- name: DeleteConsentChanges :exec
DELETE FROM customer_consent_changes WHERE customer_id = $1;
