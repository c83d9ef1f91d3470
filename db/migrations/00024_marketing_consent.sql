-- +goose Up
-- Marketing consent per customer and channel (email, SMS), as Shopify models
-- it: the state, the opt-in level, when it last changed and where it was
-- collected. Every change is kept in customer_consent_changes.
ALTER TABLE customers
    ADD COLUMN email_consent_state text NOT NULL DEFAULT 'not_subscribed'
        CHECK (email_consent_state IN ('subscribed', 'unsubscribed', 'pending', 'not_subscribed')),
    ADD COLUMN email_consent_opt_in_level text NOT NULL DEFAULT 'single_opt_in'
        CHECK (email_consent_opt_in_level IN ('single_opt_in', 'confirmed_opt_in')),
    ADD COLUMN email_consent_updated_at timestamptz,
    ADD COLUMN email_consent_collected_from text NOT NULL DEFAULT '',
    ADD COLUMN sms_consent_state text NOT NULL DEFAULT 'not_subscribed'
        CHECK (sms_consent_state IN ('subscribed', 'unsubscribed', 'pending', 'not_subscribed')),
    ADD COLUMN sms_consent_opt_in_level text NOT NULL DEFAULT 'single_opt_in'
        CHECK (sms_consent_opt_in_level IN ('single_opt_in', 'confirmed_opt_in')),
    ADD COLUMN sms_consent_updated_at timestamptz,
    ADD COLUMN sms_consent_collected_from text NOT NULL DEFAULT '';

CREATE TABLE customer_consent_changes (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id    uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    channel        text        NOT NULL CHECK (channel IN ('email', 'sms')),
    state          text        NOT NULL,
    opt_in_level   text        NOT NULL,
    collected_from text        NOT NULL,
    actor_type     text        NOT NULL,
    actor_id       text        NOT NULL,
    changed_at     timestamptz NOT NULL
);
CREATE INDEX customer_consent_changes_customer_idx ON customer_consent_changes (customer_id, id);

-- A confirmed opt-in's link is a one-time token of its own purpose.
ALTER TABLE customer_tokens DROP CONSTRAINT customer_tokens_purpose_check;
ALTER TABLE customer_tokens ADD CONSTRAINT customer_tokens_purpose_check CHECK (purpose IN
    ('password_setup', 'verification', 'password_reset', 'email_change', 'deletion', 'consent_confirmation'));

-- +goose Down
DELETE FROM customer_tokens WHERE purpose = 'consent_confirmation';
ALTER TABLE customer_tokens DROP CONSTRAINT customer_tokens_purpose_check;
ALTER TABLE customer_tokens ADD CONSTRAINT customer_tokens_purpose_check CHECK (purpose IN
    ('password_setup', 'verification', 'password_reset', 'email_change', 'deletion'));
DROP TABLE customer_consent_changes;
ALTER TABLE customers
    DROP COLUMN email_consent_state, DROP COLUMN email_consent_opt_in_level,
    DROP COLUMN email_consent_updated_at, DROP COLUMN email_consent_collected_from,
    DROP COLUMN sms_consent_state, DROP COLUMN sms_consent_opt_in_level,
    DROP COLUMN sms_consent_updated_at, DROP COLUMN sms_consent_collected_from;
