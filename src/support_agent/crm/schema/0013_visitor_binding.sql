-- Threads owned by their visitor (#26): a session started with a publishable (widget) key is
-- bound to the visitor who started it.
--
-- The server issues the session id (a graph thread's or a /v1/chat session's: one id space) and
-- a random visitor token, returned once; only the token's SHA-256 is kept here. Every later
-- widget call on the session presents the token (header X-Visitor-Token) or is answered 404.
-- A session verified by the site's signed customer token also keeps the SHA-256 of
-- "{tenant_id}:{customer id}", so every later run must carry a token of the same customer.
-- No raw identifier is stored: the row says who may continue the session, not who they are.
CREATE TABLE visitor_bindings (
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    session_id    text NOT NULL,
    surface       text NOT NULL CHECK (surface IN ('thread', 'chat')),
    visitor_hash  text NOT NULL CHECK (visitor_hash ~ '^[0-9a-f]{64}$'),
    customer_hash text CHECK (customer_hash ~ '^[0-9a-f]{64}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, session_id)
);

-- A session erased from the CRM (a customer's erasure deletes their interactions) takes its
-- binding with it.
CREATE FUNCTION visitor_bindings_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM visitor_bindings WHERE tenant_id = OLD.tenant_id AND session_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER interactions_forget_visitor AFTER DELETE ON interactions
    FOR EACH ROW EXECUTE FUNCTION visitor_bindings_forget();
