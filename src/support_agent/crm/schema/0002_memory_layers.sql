-- L1 identity lives on the customer row (name, email, phone, language, timezone).
ALTER TABLE customers ADD COLUMN channels text[] NOT NULL DEFAULT '{}';

-- L2 history: the counters the trust and churn formulas use.
CREATE TABLE memory_history (
    tenant_id   text NOT NULL,
    customer_id text NOT NULL,
    first_contact_at timestamptz,
    total_conversations integer NOT NULL DEFAULT 0,
    positive_interactions integer NOT NULL DEFAULT 0,
    escalations integer NOT NULL DEFAULT 0,
    complaints  integer NOT NULL DEFAULT 0,
    unresolved_issues integer NOT NULL DEFAULT 0,
    positive_resolutions integer NOT NULL DEFAULT 0,
    last_interaction_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);

-- L4 preferences and mood.
CREATE TABLE memory_prefs (
    tenant_id   text NOT NULL,
    customer_id text NOT NULL,
    tone_pref   text,
    personal_details text[] NOT NULL DEFAULT '{}',
    last_mood   text,
    last_mood_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);

-- Promises made to a customer (part of L4): what, by whom, due when, status.
CREATE TABLE promises (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    conversation_id text NOT NULL,
    order_id    text,
    text        text NOT NULL,
    made_by     text NOT NULL DEFAULT 'agent',
    due_at      timestamptz,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'kept', 'broken', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX promises_customer ON promises (tenant_id, customer_id, status);

-- Memory update jobs: the transactional outbox and the idempotency ledger of the
-- asynchronous pipeline (one job per conversation).
CREATE TABLE memory_jobs (
    tenant_id   text NOT NULL,
    conversation_id text NOT NULL,
    customer_id text NOT NULL,
    payload     jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'enqueued', 'done', 'dead')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    enqueued_at timestamptz,
    processed_at timestamptz,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX memory_jobs_pending ON memory_jobs (created_at) WHERE status = 'pending';
CREATE INDEX memory_jobs_customer ON memory_jobs (tenant_id, customer_id);

-- API keys, stored as SHA-256 hashes (keys are 256-bit random tokens).
CREATE TABLE api_keys (
    key_hash    text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    prefix      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
