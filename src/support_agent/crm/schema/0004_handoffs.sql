-- The human agents' queue of warm handoffs, each with its panel.
CREATE TABLE handoffs (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          text NOT NULL,
    session_id  text NOT NULL,
    customer_id text,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    reason      text NOT NULL,
    panel       jsonb NOT NULL,
    resolution  text,
    satisfaction integer CHECK (satisfaction BETWEEN 1 AND 5),
    resolution_record_id text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX handoffs_queue ON handoffs (tenant_id, status, created_at);
CREATE INDEX handoffs_customer ON handoffs (tenant_id, customer_id);
