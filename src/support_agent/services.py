"""The process's connections: PostgreSQL, Redis, the LangGraph checkpointer and store, models.

:class:`Services` is opened once per process by its composition root (``conversation.Agent``
for the API, the CLI, the demo and the tests; ``studio`` under ``langgraph dev``) and handed down
explicitly: to the graph's nodes through ``Runtime[Context]`` (``context.TurnDeps``), to the
systems of record and the memory store as an argument. It knows nothing of the graph; nothing here
is global.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import cast

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

from support_agent.embeddings import MINILM_DIMS, check_embeddings, make_embeddings
from support_agent.errors import InfrastructureError
from support_agent.infra.embedded import EmbeddedServers, start_embedded
from support_agent.infra.leader import LeaderLease
from support_agent.infra.locks import ThreadLocks
from support_agent.settings import Settings
from support_agent.tenants import TenantPacks

logger = logging.getLogger(__name__)

#: The lease name of the background duties (idle sweep, outbox relay); see ``infra.leader``.
BACKGROUND_LEASE = "support-agent:background"

AsyncConnection = psycopg.AsyncConnection[DictRow]
Pool = AsyncConnectionPool[AsyncConnection]


@dataclass
class Services:
    """Everything outside the process a turn reaches, plus the validated tenant packs.

    Attributes:
        settings: the configuration in force.
        tenants: the tenant packs (configuration and policy), validated at start-up.
        pool: psycopg async pool (autocommit, ``dict_row`` rows) on the systems of record, the
            checkpoints and the long-term store (one database).
        redis: async Redis client for the hot tier and the online feature store (fails fast).
        store: LangGraph ``AsyncPostgresStore`` with a pgvector index over episode summaries.
        checkpointer: LangGraph ``AsyncPostgresSaver`` (one thread per session).
        embeddings: sentence embeddings (384 dims).
        chat_model: optional chat model; ``None`` means deterministic templates only.
        locks: one turn at a time per session (advisory locks on the same database).
        leader: the lease on the background duties (idle sweep, outbox relay): one process of
            all those on the same database runs them.
    """

    settings: Settings
    tenants: TenantPacks
    pool: Pool
    redis: aioredis.Redis
    store: AsyncPostgresStore
    checkpointer: AsyncPostgresSaver
    embeddings: Embeddings
    chat_model: BaseChatModel | None
    locks: ThreadLocks
    leader: LeaderLease
    embedded: EmbeddedServers = field(default_factory=EmbeddedServers, repr=False)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        chat_model: BaseChatModel | None = None,
        warm_up: bool = True,
    ) -> AsyncIterator[Services]:
        """Validate the tenant packs, open the connections and set up the checkpointer and store.

        Args:
            settings: configuration.
            chat_model: a chat model to use instead of the one the settings describe (tests
                pass a scripted model here).
            warm_up: load the embedding model now instead of on the first turn.

        Yields:
            The opened services; closed on exit.

        Raises:
            InfrastructureError: PostgreSQL or Redis is unreachable, or the OpenAI-compatible
                embedding endpoint (``EMBEDDING_MODEL=openai``) is.
            InvalidRequestError: a tenant pack or ``EMBEDDING_MODEL`` is invalid.
        """
        packs = TenantPacks(
            (settings.tenant_packs_dir,) if settings.tenant_packs_dir is not None else ()
        )
        await asyncio.to_thread(packs.load_all)  # a bad pack fails at start-up
        embeddings = make_embeddings(
            settings.embedding_model,
            settings.openai_embedding_model,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
            timeout_s=settings.llm_timeout_s,
        )
        if settings.embedding_model != "minilm":  # a remote endpoint: fail now, and clearly
            await asyncio.to_thread(
                check_embeddings, embeddings, settings.embedding_model,
                settings.openai_embedding_model,
            )  # fmt: skip
        # Blocking start-up work runs in a thread: the event loop may already serve requests.
        embedded = await asyncio.to_thread(
            start_embedded,
            settings.data_dir,
            need_postgres=settings.database_url is None,
            need_redis=settings.redis_url is None,
        )
        database_url = settings.database_url or embedded.database_url
        redis_url = settings.redis_url or embedded.redis_url
        if database_url is None or redis_url is None:
            raise InfrastructureError("no PostgreSQL or Redis to connect to")
        pool: Pool = AsyncConnectionPool(
            database_url,
            min_size=1,
            max_size=10,
            # A caller waits this long for a connection, then gets 503: while PostgreSQL is down
            # calls fail fast instead of queueing for psycopg_pool's default 30 s.
            timeout=settings.db_pool_timeout_s,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        )
        rds = redis_client(redis_url, cluster=settings.redis_cluster and embedded.redis_url is None)
        locks = ThreadLocks(database_url, wait_s=settings.turn_lock_wait_s)
        leader = LeaderLease(database_url, BACKGROUND_LEASE)
        stop = asyncio.Event()
        supervisor = asyncio.create_task(embedded.supervise(stop)) if embedded.managed else None
        try:
            try:
                await pool.open(wait=True, timeout=30)
            except (psycopg.OperationalError, TimeoutError) as exc:
                raise InfrastructureError("PostgreSQL is unreachable") from exc
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
            if warm_up and hasattr(embeddings, "warm_up"):
                await asyncio.to_thread(embeddings.warm_up)
            yield cls(
                settings=settings,
                tenants=packs,
                pool=pool,
                redis=rds,
                store=store,
                checkpointer=checkpointer,
                embeddings=embeddings,
                chat_model=chat_model,
                locks=locks,
                leader=leader,
                embedded=embedded,
            )
        finally:
            stop.set()
            if supervisor is not None:
                await supervisor
            await locks.close()
            await leader.close()
            await rds.aclose()
            await pool.close()
            await asyncio.to_thread(embedded.close)


def redis_client(url: str, *, cluster: bool = False) -> aioredis.Redis:
    """An async Redis client that fails fast (2 s timeouts, one retry after 50 ms).

    redis-py 8 otherwise retries 10 times with backoff, stalling a turn for seconds when Redis
    is down; the hot tier must fall back to PostgreSQL quickly instead.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        cluster: ``url`` is a node of a Redis Cluster: a ``RedisCluster`` client (it discovers
            the other nodes and routes each command to its key's slot). It is typed as
            ``Redis``: every command this service sends has the same signature on both.
    """
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        client = RedisCluster.from_url(
            url,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        )
        return cast(aioredis.Redis, client)
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
