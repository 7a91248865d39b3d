-- Verification (#26): the facts a tenant's policy may ask for, one-time codes and every attempt.
--
-- The date of birth on file (the bank's policy counts it as a verification fact; tau2-bench
-- banking users carry one).
ALTER TABLE customers ADD COLUMN date_of_birth date;

-- One-time codes: 6 digits sent to the email or phone on file, valid 10 minutes, 5 tries, single
-- use. Only a salted SHA-256 of the code is stored; the destination is kept masked.
CREATE TABLE verification_codes (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL,
    session_id   text NOT NULL,
    customer_id  text NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('email', 'phone')),
    salt         bytea NOT NULL,
    code_hash    bytea NOT NULL,
    tries        integer NOT NULL DEFAULT 0,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX verification_codes_session ON verification_codes (tenant_id, session_id, created_at);
CREATE INDEX verification_codes_customer ON verification_codes (tenant_id, customer_id, created_at);

-- Every verification attempt (the bank's policy asks for each verification to be logged): the
-- customer when the facts pointed at one, the kinds of facts tried (never their values), the
-- channel and the result. Erased with the customer; attempts that pointed at nobody keep no
-- customer.
CREATE TABLE verification_attempts (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL,
    session_id   text NOT NULL,
    customer_id  text,
    factors      text[] NOT NULL,
    channel      text NOT NULL,
    result       text NOT NULL CHECK (result IN ('verified', 'failed', 'locked', 'code_sent')),
    client       text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verification_attempts_customer
    ON verification_attempts (tenant_id, customer_id, created_at DESC);
CREATE INDEX verification_attempts_session ON verification_attempts (tenant_id, session_id);
