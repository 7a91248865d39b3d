-- Product holdings: bank accounts, debit and credit cards (any tenant's products).
CREATE TABLE holdings (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    kind        text NOT NULL,    -- checking, saving, business_checking, credit_card...
    product     text NOT NULL,
    status      text NOT NULL,
    balance     numeric(14, 2),
    opened_on   date,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX holdings_customer ON holdings (tenant_id, customer_id);

CREATE TABLE transactions (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    holding_id  text,
    occurred_on date NOT NULL,
    description text NOT NULL,
    amount      numeric(14, 2) NOT NULL,   -- negative: money out of the customer's account
    category    text,
    status      text NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX transactions_customer ON transactions (tenant_id, customer_id, occurred_on);

CREATE TABLE disputes (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    transaction_id text NOT NULL,
    reason      text NOT NULL,
    status      text NOT NULL,
    submitted_on date,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);

-- Payments on credit products (billing history).
CREATE TABLE billing_payments (
    tenant_id   text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    holding_id  text NOT NULL,
    paid_on     date NOT NULL,
    amount      numeric(14, 2) NOT NULL,
    status      text NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id)
        ON DELETE CASCADE
);
