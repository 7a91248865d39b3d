"""The process's connections and components, opened once and shared by the API, CLI and graph.

:class:`Services` holds the PostgreSQL pool, the Redis client, the LangGraph checkpointer and
store, the embeddings, the optional chat model and the compiled graph. ``Services.open()`` is an
async context manager used by the FastAPI lifespan, the CLI and the tests; while it is open,
:func:`get_services` returns it to the graph's nodes. When the graph runs elsewhere (LangGraph
Studio via ``langgraph dev``), the first :func:`get_services` call opens one from the settings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import redis.asyncio as aioredis
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres import AsyncPostgresStore
from langgraph.store.postgres.base import PostgresIndexConfig
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from support_agent.crm.migrations import migrate
from support_agent.embeddings import MINILM_DIMS, make_embeddings
from support_agent.errors import InfrastructureError
from support_agent.infra.embedded import EmbeddedServers, start_embedded
from support_agent.settings import Settings, get_settings
from support_agent.tenants import load_tenant_config, preload_tenant_configs, register_pack_dir

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

logger = logging.getLogger(__name__)

Pool = AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]


@dataclass
class Services:
    """Everything a turn needs to reach the outside world.

    Attributes:
        settings: the configuration in force.
        pool: psycopg async pool (autocommit, ``dict_row`` rows) on the systems of record, the
            checkpoints and the long-term store (one database).
        redis: async Redis client for the hot tier (fails fast: one retry).
        store: LangGraph ``AsyncPostgresStore`` with a pgvector index over episode summaries.
        checkpointer: LangGraph ``AsyncPostgresSaver`` (one thread per conversation session).
        embeddings: sentence embeddings (384 dims).
        chat_model: optional chat model; ``None`` means deterministic templates only.
        graph: the support graph compiled with ``checkpointer`` and ``store``.
    """

    settings: Settings
    pool: Pool
    redis: aioredis.Redis
    store: AsyncPostgresStore
    checkpointer: AsyncPostgresSaver
    embeddings: Embeddings
    chat_model: BaseChatModel | None
    graph: CompiledStateGraph[Any, Any, Any, Any] = field(repr=False)
    embedded: EmbeddedServers = field(default_factory=EmbeddedServers, repr=False)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        chat_model: BaseChatModel | None = None,
        warm_up: bool = True,
    ) -> AsyncIterator[Services]:
        """Open connections, run migrations and ``setup()``, and bind as the current services.

        Args:
            settings: configuration; default :func:`get_settings`.
            chat_model: a chat model to use instead of the one the settings describe (tests
                pass a scripted model here).
            warm_up: load the embedding model now instead of on the first turn.

        Yields:
            The opened services; closed (and unbound) on exit.

        Raises:
            InfrastructureError: PostgreSQL or Redis is unreachable.
        """
        global _current
        if settings is None:
            settings = await asyncio.to_thread(get_settings)
        # Blocking start-up work runs in a thread: the event loop may already serve requests.
        embedded = await asyncio.to_thread(
            start_embedded,
            settings.data_dir,
            need_postgres=settings.database_url is None,
            need_redis=settings.redis_url is None,
        )
        if settings.tenant_packs_dir is not None:
            register_pack_dir(settings.tenant_packs_dir)
        tenant_ids = await asyncio.to_thread(preload_tenant_configs)
        from support_agent.policy.config import load_policy

        for tenant_id in tenant_ids:  # validated now: a bad policy file fails at start-up
            await asyncio.to_thread(load_policy, tenant_id)
        database_url = settings.database_url or embedded.database_url
        redis_url = settings.redis_url or embedded.redis_url
        assert database_url is not None and redis_url is not None
        pool: Pool = AsyncConnectionPool(
            database_url,
            min_size=1,
            max_size=10,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        )
        rds = redis_client(redis_url)
        try:
            try:
                await pool.open(wait=True, timeout=30)
            except psycopg.OperationalError as exc:
                raise InfrastructureError("PostgreSQL is unreachable") from exc
            except TimeoutError as exc:
                raise InfrastructureError("PostgreSQL is unreachable") from exc
            async with pool.connection() as conn:
                await migrate(conn)
                for tenant_id in tenant_ids:  # every pack has its tenant row
                    await conn.execute(
                        "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        (tenant_id, load_tenant_config(tenant_id).name),
                    )
            embeddings = make_embeddings(settings.embedding_model)
            index_config: PostgresIndexConfig = {
                "dims": MINILM_DIMS,
                "embed": embeddings,
                "fields": ["summary"],
                # Episodic search is always scoped to one customer's namespace: an exact scan of
                # that customer's few vectors through the prefix index, so no ANN index.
                "ann_index_config": {"kind": "flat"},
            }
            store = AsyncPostgresStore(pool, index=index_config)
            checkpointer = AsyncPostgresSaver(pool)
            await asyncio.to_thread(_setup_store, database_url, index_config)
            await checkpointer.setup()
            if chat_model is None and settings.llm_enabled:
                from support_agent.llm import make_chat_model

                chat_model = make_chat_model(settings)
            from support_agent.graph import builder

            graph = builder.compile(checkpointer=checkpointer, store=store, name="support-agent")
            services = cls(
                settings=settings,
                pool=pool,
                redis=rds,
                store=store,
                checkpointer=checkpointer,
                embeddings=embeddings,
                chat_model=chat_model,
                graph=graph,
                embedded=embedded,
            )
            if warm_up and hasattr(embeddings, "warm_up"):
                await asyncio.to_thread(embeddings.warm_up)
            previous, _current = _current, services
            try:
                yield services
            finally:
                _current = previous
        finally:
            await rds.aclose()
            await pool.close()
            await asyncio.to_thread(embedded.close)


def redis_client(url: str) -> aioredis.Redis:
    """An async Redis client that fails fast (2 s timeouts, one retry after 50 ms).

    redis-py 8 otherwise retries 10 times with backoff, stalling a turn for seconds when Redis
    is down; the hot tier must fall back to PostgreSQL quickly instead.
    """
    return aioredis.Redis.from_url(
        url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    )


def _setup_store(database_url: str, index_config: PostgresIndexConfig) -> None:
    """Run the store's migrations through the synchronous ``PostgresStore``.

    ``AsyncPostgresStore.setup()`` (langgraph-checkpoint-postgres 3.2.0) validates the vector
    index kind before checking the migration's condition and rejects ``"flat"``; the synchronous
    ``setup()`` checks the condition first. The tables are the same.
    """
    from langgraph.store.postgres import PostgresStore

    with psycopg.connect(
        database_url, autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as conn:
        PostgresStore(conn, index=index_config).setup()


_current: Services | None = None
_default_cm: Any = None
_default_lock = asyncio.Lock()


async def get_services() -> Services:
    """Return the services bound by ``Services.open()``, opening default ones if none are.

    The fallback serves graphs run outside our API or CLI (LangGraph Studio); it stays open for
    the life of the process.

    Raises:
        InfrastructureError: no services are open and PostgreSQL or Redis is unreachable.
    """
    global _default_cm
    if _current is not None:
        return _current
    async with _default_lock:
        if _current is None:
            _default_cm = Services.open()
            await _default_cm.__aenter__()
    assert _current is not None
    return _current
