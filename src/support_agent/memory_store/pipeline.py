"""Asynchronous memory update pipeline: durable, at-least-once, idempotent per session.

This module is the queue; what a job does is ``memory_store.consolidation``'s. Flow::

    session ends ──► memory_jobs row (PostgreSQL outbox, status pending) ──► XADD sa:memory:jobs
                                                                              │
    worker (consumer group "memory-workers") ◄── XREADGROUP / XCLAIM ◄───────┘
        1. consolidation.prepare: the episode and the facts of the transcript; the episodes of a
           batch are embedded and put in the store in one batch, under the session id (a replay
           overwrites the same key)
        2. consolidation.apply_batch: one PostgreSQL transaction per batch, a savepoint per job
           (L1/L2/L4, the job marked done)
        3. XACK; write the fresh L1/L2/L4 through to Redis; invalidate the hot 360; refresh the
           online features of the batch's customers once

Guarantees:

- **Durable**: the job is in PostgreSQL before it is published. With Redis down the job stays
  ``pending`` and the relay publishes it when Redis is back; nothing is lost.
- **At-least-once**: a message is acknowledged only after its transaction commits. A worker killed
  mid-job leaves the message pending; any worker reclaims it (``XPENDING`` + ``XCLAIM``) once it
  has been idle for the backoff.
- **Idempotent**: the transaction checks and sets ``memory_jobs.status = 'done'`` under a row lock,
  so a redelivered or replayed job changes nothing; the episode is keyed by session id.
- **Retries**: a failing job is retried after ``backoff_base_s · 2^(deliveries−1)`` seconds (capped
  at 60 s); after ``max_attempts`` deliveries it goes to the dead-letter stream ``sa:memory:dead``
  with its error, and the job row is marked ``dead``.

Failpoint for crash tests (``support_agent.failpoints``): ``memory_after_episode`` exits the
process after writing the episode and before committing, as a killed worker would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from typing import Any

import psycopg
from langgraph.store.base import PutOp
from redis.asyncio import Redis
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from support_agent.errors import InfrastructureError, TurnInProgressError
from support_agent.failpoints import failpoint
from support_agent.memory_store import consolidation
from support_agent.memory_store.episodes import episodes_namespace
from support_agent.memory_store.hot import refresh_features, refresh_hot_memory_many
from support_agent.services import AsyncConnection, Services
from support_agent.threads import thread_id

logger = logging.getLogger(__name__)

STREAM = "sa:memory:jobs"
DEAD_LETTER = "sa:memory:dead"
GROUP = "memory-workers"
#: The ``run_id`` of the Redis start the stream was last known under (see ``ensure_group``).
RUN_KEY = "sa:memory:redis_run"


async def publish_job(services: Services, tenant_id: str, session_id: str, customer_id: str) -> str:
    """Publish a recorded memory job on the stream.

    Returns:
        ``"enqueued"``, or ``"pending"`` when Redis is unavailable (the relay publishes it later).
    """
    try:
        await services.redis.xadd(
            STREAM, {"tenant": tenant_id, "session": session_id, "customer": customer_id}
        )
    except RedisError as exc:
        logger.warning("memory_job_publish_deferred", extra={"error": type(exc).__name__})
        return "pending"
    async with services.pool.connection() as conn:
        await conn.execute(
            "UPDATE memory_jobs SET status = 'enqueued', enqueued_at = now()"
            " WHERE tenant_id = %s AND session_id = %s AND status = 'pending'",
            (tenant_id, session_id),
        )
    return "enqueued"


async def record_job(
    conn: AsyncConnection,
    tenant_id: str,
    session_id: str,
    customer_id: str,
    payload: dict[str, Any],
) -> bool:
    """Record a finished session's memory job (status ``pending``) on the caller's connection.

    Returns:
        ``True`` when recorded, ``False`` when the session's job existed already (one per session).
    """
    cur = await conn.execute(
        "INSERT INTO memory_jobs (tenant_id, session_id, customer_id, payload)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (tenant_id, session_id, customer_id, json.dumps(payload, default=str)),
    )
    return cur.rowcount == 1


async def enqueue_session(
    services: Services,
    tenant_id: str,
    session_id: str,
    customer_id: str,
    payload: dict[str, Any],
) -> str:
    """Record a finished session's memory job and publish it.

    Args:
        services: open services.
        tenant_id: tenant of the session.
        session_id: the session (one job per session; a repeat is ignored).
        customer_id: the authenticated customer.
        payload: what the worker needs (see ``nodes.write_memory.job_payload``).

    Returns:
        ``"enqueued"`` (on the stream), ``"pending"`` (Redis unavailable: the relay publishes it
        later) or ``"exists"`` (the job was recorded before).
    """
    async with services.pool.connection() as conn:
        if not await record_job(conn, tenant_id, session_id, customer_id, payload):
            return "exists"
    return await publish_job(services, tenant_id, session_id, customer_id)


def _decode(fields: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in fields.items()
    }


async def _run_id(rds: Redis) -> str:
    """The ``run_id`` of the Redis server holding :data:`STREAM`.

    On a Redis Cluster, that of the node serving the stream's slot.
    """
    get_node = getattr(rds, "get_node_from_key", None)
    if get_node is None:
        return str((await rds.info("server"))["run_id"])
    info: Any = await rds.info("server", target_nodes=get_node(STREAM))
    if "run_id" not in info:  # answered per node: {node name: info}
        info = next(iter(info.values()))
    return str(info["run_id"])


class MemoryWorker:
    """A consumer of the memory job stream (see module docstring).

    Args:
        services: open services.
        name: consumer name in the group (default: host + random suffix).
        batch: messages read per call (their episodes are embedded in one batch).
        max_attempts: deliveries before a job is dead-lettered.
        backoff_base_s: first retry delay; doubles per delivery, capped at 60 s.
        relay_after_s: a ``pending`` job older than this is (re)published by the relay.
    """

    def __init__(
        self,
        services: Services,
        name: str | None = None,
        *,
        batch: int = 32,
        max_attempts: int = 5,
        backoff_base_s: float = 1.0,
        relay_after_s: float = 2.0,
    ) -> None:
        self.services = services
        self.name = name or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.relay_after_s = relay_after_s
        self._group_ready = False

    async def ensure_group(self) -> None:
        """Create the stream and consumer group if missing; recover jobs a Redis restart lost.

        Redis persists its stream in snapshots, so a Redis that died and was restarted may have
        lost the newest entries, or all of them. Each Redis start has its own ``run_id``; the one
        the stream was last known under is kept in :data:`RUN_KEY`. When they differ (a restart,
        or a first start), every job PostgreSQL records as ``enqueued`` is set back to
        ``pending`` so the relay publishes it again; ``SET … GET`` makes one worker do it.
        Applying a job twice changes nothing (episodes and layers are keyed by session).
        """
        if self._group_ready:
            return
        rds = self.services.redis
        try:
            await rds.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        run_id = await _run_id(rds)
        previous = await rds.set(RUN_KEY, run_id, get=True)
        if (previous.decode() if isinstance(previous, bytes) else previous) != run_id:
            async with self.services.pool.connection() as conn:
                cur = await conn.execute(
                    "UPDATE memory_jobs SET status = 'pending' WHERE status = 'enqueued'"
                )
            if cur.rowcount:
                logger.warning("memory_jobs_requeued", extra={"jobs": cur.rowcount})
        self._group_ready = True

    async def relay_pending(self, older_than_s: float | None = None) -> int:
        """Publish jobs still ``pending`` in PostgreSQL (Redis was down); returns how many."""
        age = self.relay_after_s if older_than_s is None else older_than_s
        async with self.services.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT tenant_id, session_id, customer_id FROM memory_jobs"
                    " WHERE status = 'pending' AND created_at <= now() - make_interval(secs => %s)"
                    " ORDER BY created_at LIMIT 500",
                    (age,),
                )
            ).fetchall()
        published = 0
        for row in rows:
            if (
                await publish_job(
                    self.services, row["tenant_id"], row["session_id"], row["customer_id"]
                )
                == "enqueued"
            ):
                published += 1
        return published

    def _backoff(self, deliveries: int) -> float:
        """Seconds before redelivering a job delivered ``deliveries`` times (at most 60)."""
        exponent = min(max(0, deliveries - 1), 16)  # 2**16 × base already exceeds the cap
        return float(min(60.0, self.backoff_base_s * 2**exponent))

    async def _reclaim(self) -> list[tuple[str, dict[str, str], int]]:
        """Claim messages whose last delivery is older than their backoff (dead or failed)."""
        pending: Any = await self.services.redis.xpending_range(
            STREAM, GROUP, min="-", max="+", count=100
        )
        claimed: list[tuple[str, dict[str, str], int]] = []
        for entry in pending:
            deliveries = int(entry["times_delivered"])
            idle_ms = int(entry["time_since_delivered"])
            if idle_ms < self._backoff(deliveries) * 1000:
                continue
            got: Any = await self.services.redis.xclaim(
                STREAM, GROUP, self.name, min_idle_time=idle_ms, message_ids=[entry["message_id"]]
            )
            for _msg_id, fields in got:
                raw = entry["message_id"]
                mid = raw.decode() if isinstance(raw, bytes) else str(raw)
                if fields:
                    claimed.append((mid, _decode(fields), deliveries + 1))
                else:  # deleted (erasure) while pending; Redis 6 answers (None, None)
                    await self.services.redis.xack(STREAM, GROUP, mid)
        return claimed

    async def _read_new(self, block_ms: int | None) -> list[tuple[str, dict[str, str], int]]:
        response: Any = await self.services.redis.xreadgroup(
            GROUP, self.name, {STREAM: ">"}, count=self.batch, block=block_ms
        )
        out: list[tuple[str, dict[str, str], int]] = []
        for _stream, messages in response or []:
            for msg_id, fields in messages:
                mid = msg_id.decode() if isinstance(msg_id, bytes) else str(msg_id)
                out.append((mid, _decode(fields), 1))
        return out

    async def run_once(self, block_ms: int | None = None) -> int:
        """Relay, reclaim and read once, then process what arrived; returns jobs applied.

        The relay runs only in the process holding the background lease (``Services.leader``):
        every worker consumes the stream, one relays the outbox.
        """
        await self.ensure_group()
        if await self.services.leader.is_leader():
            await self.relay_pending()
        messages = await self._reclaim()
        if len(messages) < self.batch:
            messages += await self._read_new(block_ms)
        if not messages:
            return 0
        return await self._handle(messages)

    async def drain(self, timeout_s: float = 60.0) -> int:
        """Process until no job is waiting (tests, demo, CLI); returns jobs applied.

        Raises:
            TimeoutError: jobs are still waiting after ``timeout_s``.
        """
        await self.ensure_group()
        applied = 0
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            await self.relay_pending(older_than_s=0.0)
            applied += await self.run_once(block_ms=None)
            info = await self.services.redis.xpending(STREAM, GROUP)
            async with self.services.pool.connection() as conn:
                row = await (
                    await conn.execute(
                        "SELECT count(*) AS n FROM memory_jobs WHERE status IN ('pending',"
                        " 'enqueued')"
                    )
                ).fetchone()
            waiting = int(info["pending"]) + (int(row["n"]) if row else 0)
            if waiting == 0:
                return applied
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{waiting} memory jobs still waiting")
            await asyncio.sleep(0.05)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; Redis and PostgreSQL outages are waited out, not fatal.

        Logs ``memory_worker_started`` (INFO, with the consumer name) before its first read.
        A Redis Cluster with no reachable node (``RedisClusterException``) is an outage too.
        """
        logger.info("memory_worker_started", extra={"consumer": self.name})
        while not stop.is_set():
            try:
                await self.run_once(block_ms=1000)
            except (RedisError, RedisClusterException) as exc:
                self._group_ready = False
                logger.warning(
                    "memory_worker_redis_unavailable", extra={"error": type(exc).__name__}
                )
                await asyncio.sleep(1.0)
            except (psycopg.OperationalError, InfrastructureError) as exc:  # pool timeout too
                logger.warning(
                    "memory_worker_database_unavailable", extra={"error": type(exc).__name__}
                )
                await asyncio.sleep(1.0)

    async def _handle(self, messages: list[tuple[str, dict[str, str], int]]) -> int:
        """Apply a batch holding its sessions' locks, so an erasure never interleaves.

        Erasure holds the locks of all the customer's sessions: a job is applied either wholly
        before it (and erased with the rest) or after it (and finds its row gone). A batch whose
        locks stay busy is left unacknowledged and reclaimed later.
        """
        sessions = {thread_id(m[1]["tenant"], m[1]["session"]) for m in messages}
        try:
            async with self.services.locks.hold(*sessions):
                return await self._handle_locked(messages)
        except TurnInProgressError:
            logger.info("memory_batch_deferred", extra={"jobs": len(messages)})
            return 0

    async def _handle_locked(self, messages: list[tuple[str, dict[str, str], int]]) -> int:
        services = self.services
        keys = [(m[1]["tenant"], m[1]["session"]) for m in messages]
        async with services.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT tenant_id, session_id, customer_id, payload, status"
                    " FROM memory_jobs WHERE (tenant_id, session_id) IN"
                    " (SELECT * FROM unnest(%s::text[], %s::text[]))",
                    ([k[0] for k in keys], [k[1] for k in keys]),
                )
            ).fetchall()
        jobs = {(r["tenant_id"], r["session_id"]): r for r in rows}
        todo = []
        for msg_id, fields, deliveries in messages:
            job = jobs.get((fields["tenant"], fields["session"]))
            if job is None or job["status"] in ("done", "dead"):
                await services.redis.xack(STREAM, GROUP, msg_id)  # erased, replayed or finished
                continue
            todo.append((msg_id, job, deliveries))
        if not todo:
            return 0

        prepared = []
        for msg_id, job, deliveries in todo:
            try:
                prepared.append(
                    (msg_id, job, deliveries, await consolidation.prepare(services, job))
                )
            except Exception as exc:  # a bad payload must not block the batch: retried, then parked
                await self._failed(msg_id, job, deliveries, exc)
        if not prepared:
            return 0
        await services.store.abatch(
            [
                PutOp(
                    episodes_namespace(job["tenant_id"], job["customer_id"]),
                    job["session_id"],
                    dict(work.episode),
                )
                for _, job, _, work in prepared
            ]
        )
        failpoint("memory_after_episode")
        outcomes = await consolidation.apply_batch(
            services, [(job, w) for _, job, _, w in prepared]
        )
        done: list[str] = []
        changed: dict[str, list[str]] = {}  # tenant -> customers whose layers changed
        for (msg_id, job, deliveries, _), outcome in zip(prepared, outcomes, strict=True):
            if isinstance(outcome, Exception):  # retried with backoff, then dead-lettered
                await self._failed(msg_id, job, deliveries, outcome)
                continue
            done.append(msg_id)
            if outcome:
                changed.setdefault(job["tenant_id"], []).append(job["customer_id"])
            elif await self._job_erased(job):
                await services.store.adelete(
                    episodes_namespace(job["tenant_id"], job["customer_id"]),
                    job["session_id"],
                )
        if done:
            await services.redis.xack(STREAM, GROUP, *done)
        for tenant_id, customers in changed.items():  # one layer and feature refresh per batch
            layers = await refresh_hot_memory_many(services, tenant_id, customers)
            await refresh_features(services, tenant_id, sorted(layers), raw_layers=layers)
        return sum(len(c) for c in changed.values())

    async def _job_erased(self, job: dict[str, Any]) -> bool:
        async with self.services.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT 1 FROM memory_jobs WHERE tenant_id = %s AND session_id = %s",
                    (job["tenant_id"], job["session_id"]),
                )
            ).fetchone()
        return row is None

    async def _failed(
        self, msg_id: str, job: dict[str, Any], deliveries: int, exc: Exception
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"[:500]
        logger.warning(
            "memory_job_failed",
            extra={
                "tenant_id": job["tenant_id"],
                "session_id": job["session_id"],
                "attempt": deliveries,
                "error": type(exc).__name__,
            },
        )
        dead = deliveries >= self.max_attempts
        async with self.services.pool.connection() as conn:
            await conn.execute(
                "UPDATE memory_jobs SET attempts = %s, last_error = %s,"
                " status = CASE WHEN %s THEN 'dead' ELSE status END"
                " WHERE tenant_id = %s AND session_id = %s",
                (deliveries, error, dead, job["tenant_id"], job["session_id"]),
            )
        if dead:
            await self.services.redis.xadd(
                DEAD_LETTER,
                {
                    "tenant": job["tenant_id"],
                    "session": job["session_id"],
                    "customer": job["customer_id"],
                    "error": error,
                    "attempts": str(deliveries),
                },
            )
            await self.services.redis.xack(STREAM, GROUP, msg_id)


async def replay(services: Services, tenant_id: str, session_id: str) -> None:
    """Publish a job again (operators; tests of idempotence). Changes nothing if already done."""
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT customer_id FROM memory_jobs WHERE tenant_id = %s AND session_id = %s",
                (tenant_id, session_id),
            )
        ).fetchone()
    if row is not None:
        await services.redis.xadd(
            STREAM,
            {"tenant": tenant_id, "session": session_id, "customer": row["customer_id"]},
        )
