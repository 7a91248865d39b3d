-- Knowledge base documents: semantic (pgvector) and keyword (full-text) search.
CREATE TABLE knowledge_documents (
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          text NOT NULL,
    title       text NOT NULL,
    content     text NOT NULL,
    embedding   vector(384) NOT NULL,
    tsv         tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', title), 'A')
                    || setweight(to_tsvector('english', content), 'B')
                ) STORED,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX knowledge_documents_tsv ON knowledge_documents USING gin (tsv);

-- Offers become searchable by meaning and keywords too.
ALTER TABLE offers ADD COLUMN embedding vector(384);
ALTER TABLE offers ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    to_tsvector('english', title || ' ' || description)) STORED;
CREATE INDEX offers_tsv ON offers USING gin (tsv);

-- Effectiveness of resolution records, updated by outcomes.
ALTER TABLE resolution_records ADD COLUMN helpful_votes integer NOT NULL DEFAULT 0;
ALTER TABLE resolution_records ADD COLUMN successes integer NOT NULL DEFAULT 0;
