-- Staff powers bounded, keys revocable, customer claims marked (#26, items 8, 9 and 10).
--
-- Where an identity comes from. `record`: the systems of record (the loaders; every row that
-- existed before this migration). `staff`: linked through the memory API by a secret key, or
-- proposed by an agent key and approved by a secret key. Identification must not authenticate a
-- customer by a `staff` identity alone (memory_store.identity.AUTHENTICATING_SOURCES). Who
-- linked it and who approved it are key prefixes (`sa_AbCd`), never keys or their hashes.
ALTER TABLE customer_identities
    ADD COLUMN source text NOT NULL DEFAULT 'record' CHECK (source IN ('record', 'staff')),
    ADD COLUMN created_by text,
    ADD COLUMN approved_by text,
    ADD COLUMN approved_at timestamptz;

-- An agent key proposes a link; a secret key approves or rejects it. The proposed value is the
-- customer's personal data: it goes with the customer (erasure, merge) through the cascade.
CREATE TABLE identity_link_proposals (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL,
    customer_id  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('email', 'phone', 'customer_id', 'handle')),
    value        text NOT NULL,
    channel      text,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'approved', 'rejected')),
    proposed_by  text NOT NULL,
    proposed_at  timestamptz NOT NULL DEFAULT now(),
    decided_by   text,
    decided_at   timestamptz,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX identity_link_proposals_pending
    ON identity_link_proposals (tenant_id, proposed_at) WHERE status = 'pending';
CREATE UNIQUE INDEX identity_link_proposals_once
    ON identity_link_proposals (tenant_id, customer_id, kind, value) WHERE status = 'pending';

-- Keys are revoked by prefix (CLI `tenant revoke-key`, `DELETE /api/tenants/me/keys/{prefix}`);
-- who revoked it is a key prefix or `cli`.
ALTER TABLE api_keys ADD COLUMN revoked_by text;
CREATE INDEX api_keys_prefix ON api_keys (prefix);

-- Customer claims (L4): what the customer said about themselves, marked as theirs
-- ({"text", "source": "customer", "at", "sessionId"}), at most 20, newest last. They replace
-- the unmarked `personal_details`; earlier details move over with the row's date, except any
-- holding a contact detail (an `@` or 7 digits), which could be one not on file.
ALTER TABLE memory_prefs ADD COLUMN customer_claims jsonb NOT NULL DEFAULT '[]'::jsonb;
UPDATE memory_prefs SET customer_claims = COALESCE((
    SELECT jsonb_agg(jsonb_build_object('text', d, 'source', 'customer',
                                        'at', to_jsonb(updated_at), 'sessionId', NULL))
    FROM (SELECT d FROM unnest(personal_details) AS d
          WHERE d !~ '@' AND length(regexp_replace(d, '\D', '', 'g')) < 7
          LIMIT 20) AS kept
), '[]'::jsonb);
ALTER TABLE memory_prefs DROP COLUMN personal_details;
