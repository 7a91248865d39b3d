-- Card products and offers carry their kind (card_product, promo_rate, fee_waiver,
-- retention) so retrieval and the retention policy can tell them apart.
ALTER TABLE offers ADD COLUMN kind text NOT NULL DEFAULT 'offer';

-- An issue about something other than an order (a bank card or transaction).
ALTER TABLE issues ADD COLUMN subject_id text;
ALTER TABLE issues ADD COLUMN subject_label text;

-- Replacement cards ordered by the agent (bank account action).
CREATE TABLE card_orders (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    holding_id  text NOT NULL,
    reason      text NOT NULL,
    status      text NOT NULL,
    ordered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);

-- Retention offers made to a customer and whether they were applied: the ledger the
-- retention policy's frequency and no-stacking rules read.
CREATE TABLE retention_offers (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    offer_id    text NOT NULL,
    holding_id  text,
    status      text NOT NULL CHECK (status IN ('offered', 'applied')),
    terms       jsonb NOT NULL DEFAULT '{}'::jsonb,
    offered_at  timestamptz NOT NULL DEFAULT now(),
    applied_at  timestamptz,
    expires_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX retention_offers_customer ON retention_offers (tenant_id, customer_id);
