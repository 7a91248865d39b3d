CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          text NOT NULL,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text,
    phone       text,
    address     jsonb NOT NULL DEFAULT '{}'::jsonb,
    zip         text,
    language    text,
    timezone    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customers_zip ON customers (tenant_id, zip);

-- Every way to find one customer: email, phone, account id, channel handles.
CREATE TABLE customer_identities (
    tenant_id   text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('email', 'phone', 'customer_id', 'handle')),
    value       text NOT NULL,
    customer_id text NOT NULL,
    channel     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, value),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX customer_identities_customer ON customer_identities (tenant_id, customer_id);

CREATE TABLE products (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          text NOT NULL,
    name        text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE product_variants (
    tenant_id   text NOT NULL,
    item_id     text NOT NULL,
    product_id  text NOT NULL,
    options     jsonb NOT NULL,
    available   boolean NOT NULL,
    price       numeric(12, 2) NOT NULL,
    PRIMARY KEY (tenant_id, item_id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products(tenant_id, id)
        ON DELETE CASCADE
);

CREATE TABLE payment_methods (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    kind        text NOT NULL,
    brand       text,
    last_four   text,
    balance     numeric(12, 2),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);

CREATE TABLE orders (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    status      text NOT NULL,
    address     jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX orders_customer ON orders (tenant_id, customer_id);

CREATE TABLE order_items (
    tenant_id   text NOT NULL,
    order_id    text NOT NULL,
    line_no     integer NOT NULL,
    item_id     text NOT NULL,
    product_id  text NOT NULL,
    name        text NOT NULL,
    price       numeric(12, 2) NOT NULL,
    options     jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tenant_id, order_id, line_no),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders(tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE order_fulfillments (
    tenant_id   text NOT NULL,
    order_id    text NOT NULL,
    line_no     integer NOT NULL,
    tracking_ids text[] NOT NULL,
    item_ids    text[] NOT NULL,
    PRIMARY KEY (tenant_id, order_id, line_no),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders(tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE payments (
    tenant_id   text NOT NULL,
    order_id    text NOT NULL,
    seq         integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('payment', 'refund')),
    amount      numeric(12, 2) NOT NULL,
    payment_method_id text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id, seq),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders(tenant_id, id) ON DELETE CASCADE
);

-- One row per conversation session (= LangGraph thread).
CREATE TABLE interactions (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          text NOT NULL,
    customer_id text,
    channel     text NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ended')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    end_reason  text,
    intent      text,
    outcome     text,
    sentiment   real,
    summary     text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX interactions_customer ON interactions (tenant_id, customer_id, started_at);
CREATE INDEX interactions_open ON interactions (status, last_activity_at)
    WHERE status = 'open';

CREATE TABLE messages (
    tenant_id   text NOT NULL,
    interaction_id text NOT NULL,
    seq         integer NOT NULL,
    role        text NOT NULL CHECK (role IN ('customer', 'agent')),
    content     text NOT NULL,
    intent      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, interaction_id, seq),
    FOREIGN KEY (tenant_id, interaction_id) REFERENCES interactions(tenant_id, id)
        ON DELETE CASCADE
);

-- Open issues: what a customer reported and is still waiting on, across sessions.
CREATE TABLE issues (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    order_id    text,
    item_ids    text[] NOT NULL DEFAULT '{}',
    kind        text NOT NULL,
    description text NOT NULL,
    proposed_actions text[] NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    opened_in   text NOT NULL,
    contacts    integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX issues_customer ON issues (tenant_id, customer_id, status);

-- Past resolutions: what resolved such cases before (semantic + keyword search).
CREATE TABLE resolution_records (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          text NOT NULL,
    intent      text NOT NULL,
    title       text NOT NULL,
    problem     text NOT NULL,
    resolution  text NOT NULL,
    actions     text[] NOT NULL DEFAULT '{}',
    success_rate real NOT NULL DEFAULT 0.5,
    uses        integer NOT NULL DEFAULT 0,
    embedding   vector(384) NOT NULL,
    tsv         tsvector GENERATED ALWAYS AS (
                    to_tsvector('english', title || ' ' || problem || ' ' || resolution)
                ) STORED,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX resolution_records_tsv ON resolution_records USING gin (tsv);

CREATE TABLE offers (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          text NOT NULL,
    title       text NOT NULL,
    description text NOT NULL,
    terms       jsonb NOT NULL DEFAULT '{}'::jsonb,
    valid_until timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- Writes on the systems of record taken by the agent, one row per idempotency key.
CREATE TABLE account_actions (
    tenant_id   text NOT NULL,
    idempotency_key text NOT NULL,
    customer_id text NOT NULL,
    interaction_id text NOT NULL,
    action      text NOT NULL,
    params      jsonb NOT NULL,
    result      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);

-- Every policy decision, with the rules evaluated: the audit trail.
CREATE TABLE policy_audit (
    tenant_id   text NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    interaction_id text NOT NULL,
    turn        integer NOT NULL,
    action      text NOT NULL,
    outcome     text NOT NULL,
    reason      text NOT NULL,
    rules       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX policy_audit_interaction ON policy_audit (tenant_id, interaction_id);
