-- +goose Up
-- OpenID Connect identity providers that customers sign in with (see
-- docs/oidc.md). id is the provider's name in the storefront's URLs. The
-- client secret is write-only in the API: no answer, event or log has it.
CREATE TABLE oidc_providers (
    id            text        PRIMARY KEY,
    display_name  text        NOT NULL,
    issuer_url    text        NOT NULL,
    client_id     text        NOT NULL,
    client_secret text        NOT NULL,
    scopes        text[]      NOT NULL,
    redirect_urls text[]      NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Authorization requests begun and not yet completed: the state (kept as
-- SHA-256, the key the callback finds it by), the nonce (SHA-256: it is
-- only compared) and the PKCE verifier, each single-use: the callback
-- deletes the row it reads.
CREATE TABLE oidc_auth_requests (
    state_hash    bytea       PRIMARY KEY,
    provider_id   text        NOT NULL REFERENCES oidc_providers (id) ON DELETE CASCADE,
    nonce_hash    bytea       NOT NULL,
    code_verifier text        NOT NULL,
    redirect_url  text        NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX oidc_auth_requests_expires_idx ON oidc_auth_requests (expires_at);

-- A customer's accounts at identity providers: the issuer's subject names
-- the person for good (OpenID Connect Core 5.7), so a sign-in finds its
-- customer by (issuer, subject), never by email. Private: no public event
-- carries a row of it.
CREATE TABLE customer_identities (
    id          uuid        PRIMARY KEY,
    customer_id uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    provider_id text        NOT NULL REFERENCES oidc_providers (id) ON DELETE CASCADE,
    issuer      text        NOT NULL,
    subject     text        NOT NULL,
    -- the email the provider gave when the identity was linked
    email       text        NOT NULL,
    created_at  timestamptz NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE INDEX customer_identities_customer_idx ON customer_identities (customer_id, created_at);
CREATE INDEX customer_identities_provider_idx ON customer_identities (provider_id);

-- +goose Down
DROP TABLE customer_identities;
DROP TABLE oidc_auth_requests;
DROP TABLE oidc_providers;
