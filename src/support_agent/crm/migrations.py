"""Schema migrations of the systems of record, applied at start-up.

Each migration is a numbered SQL script; :func:`migrate` applies the missing ones in order inside
one transaction per script, under a PostgreSQL advisory lock so that concurrent starts do not race.
Running it again changes nothing. Every table is keyed by ``tenant_id`` first: tenants never share
rows.
"""

from __future__ import annotations

import logging

from psycopg import AsyncConnection
from psycopg.rows import DictRow

logger = logging.getLogger(__name__)

#: Arbitrary constant for ``pg_advisory_xact_lock`` (ASCII "sa-mig").
_LOCK_KEY = 0x73612D6D6967

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
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
        """,
    ),
    (
        2,
        """
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
        """,
    ),
    (
        3,
        """
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
        """,
    ),
    (
        4,
        """
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
        """,
    ),
    (
        5,
        """
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
        """,
    ),
    (
        6,
        """
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
        """,
    ),
]


async def migrate(conn: AsyncConnection[DictRow]) -> list[int]:
    """Apply missing migrations in order; idempotent and safe under concurrent starts.

    Args:
        conn: an autocommit connection with ``dict_row`` rows (one transaction per script).

    Returns:
        The versions applied by this call (empty when the schema is current).
    """
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row["version"] for row in await cur.fetchall()}
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(sql.encode(), prepare=False)  # several statements
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied.append(version)
            logger.info("schema_migrated", extra={"version": version})
    return applied
