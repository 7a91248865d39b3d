"""Asynchronous memory update pipeline: durable, at-least-once, idempotent per conversation.

Flow::

    session ends ──► memory_jobs row (PostgreSQL outbox, status pending) ──► XADD sa:memory:jobs
                                                                              │
    worker (consumer group "memory-workers") ◄── XREADGROUP / XCLAIM ◄───────┘
        1. build the episode (extractive summary; an LLM summary when configured) and put it in
           the store under the conversation id (a replay overwrites the same key)
        2. one PostgreSQL transaction: lock the job row; if already done, stop; update L1
           (language, timezone, channel), L2 counters, L4 (mood, tone, personal details), promises
           and the interaction summary; mark the job done
        3. XACK; write the fresh L1/L2/L4 through to Redis; invalidate the hot 360

Guarantees:

- **Durable**: the job is in PostgreSQL before it is published. With Redis down the job stays
  ``pending`` and the relay publishes it when Redis is back; nothing is lost.
- **At-least-once**: a message is acknowledged only after its transaction commits. A worker killed
  mid-job leaves the message pending; any worker reclaims it (``XPENDING`` + ``XCLAIM``) once it
  has been idle for the backoff.
- **Idempotent**: the transaction checks and sets ``memory_jobs.status = 'done'`` under a row lock,
  so a redelivered or replayed job changes nothing; the episode is keyed by conversation id.
- **Retries**: a failing job is retried after ``backoff_base_s · 2^(deliveries−1)`` seconds (capped
  at 60 s); after ``max_attempts`` deliveries it goes to the dead-letter stream ``sa:memory:dead``
  with its error, and the job row is marked ``dead``.

Failpoint for crash tests: with ``SUPPORT_AGENT_FAILPOINT=memory_after_episode`` the process exits
(``os._exit``) after writing the episode and before committing, as a killed worker would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from datetime import datetime
from typing import Any

from langgraph.store.base import PutOp
from redis.exceptions import RedisError, ResponseError

from support_agent.features.store import refresh_features
from support_agent.memory_store.episodes import build_episode, episodes_namespace
from support_agent.memory_store.extract import (
    detect_language,
    detect_mood,
    detect_timezone,
    detect_tone,
    personal_details,
)
from support_agent.memory_store.layers import refresh_hot_memory
from support_agent.services import Services

logger = logging.getLogger(__name__)

STREAM = "sa:memory:jobs"
DEAD_LETTER = "sa:memory:dead"
GROUP = "memory-workers"
FAILPOINT_ENV = "SUPPORT_AGENT_FAILPOINT"


async def _publish(
    services: Services, tenant_id: str, conversation_id: str, customer_id: str
) -> str:
    try:
        await services.redis.xadd(
            STREAM, {"tenant": tenant_id, "conversation": conversation_id, "customer": customer_id}
        )
    except RedisError as exc:
        logger.warning("memory_job_publish_deferred", extra={"error": type(exc).__name__})
        return "pending"
    async with services.pool.connection() as conn:
        await conn.execute(
            "UPDATE memory_jobs SET status = 'enqueued', enqueued_at = now()"
            " WHERE tenant_id = %s AND conversation_id = %s AND status = 'pending'",
            (tenant_id, conversation_id),
        )
    return "enqueued"


async def enqueue_conversation(
    services: Services,
    tenant_id: str,
    conversation_id: str,
    customer_id: str,
    payload: dict[str, Any],
) -> str:
    """Record a finished conversation's memory job and publish it.

    Args:
        services: open services.
        tenant_id: tenant of the conversation.
        conversation_id: the session id (one job per conversation; a repeat is ignored).
        customer_id: the authenticated customer.
        payload: what the worker needs (see ``nodes.write_memory.job_payload``).

    Returns:
        ``"enqueued"`` (on the stream), ``"pending"`` (Redis unavailable: the relay publishes it
        later) or ``"exists"`` (the job was recorded before).
    """
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO memory_jobs (tenant_id, conversation_id, customer_id, payload)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (tenant_id, conversation_id, customer_id, json.dumps(payload, default=str)),
        )
        if cur.rowcount == 0:
            return "exists"
    return await _publish(services, tenant_id, conversation_id, customer_id)


def _decode(fields: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in fields.items()
    }


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
        """Create the stream and consumer group if missing."""
        if self._group_ready:
            return
        try:
            await self.services.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def relay_pending(self, older_than_s: float | None = None) -> int:
        """Publish jobs still ``pending`` in PostgreSQL (Redis was down); returns how many."""
        age = self.relay_after_s if older_than_s is None else older_than_s
        async with self.services.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT tenant_id, conversation_id, customer_id FROM memory_jobs"
                    " WHERE status = 'pending' AND created_at <= now() - make_interval(secs => %s)"
                    " ORDER BY created_at LIMIT 500",
                    (age,),
                )
            ).fetchall()
        published = 0
        for row in rows:
            if (
                await _publish(
                    self.services, row["tenant_id"], row["conversation_id"], row["customer_id"]
                )
                == "enqueued"
            ):
                published += 1
        return published

    def _backoff(self, deliveries: int) -> float:
        return float(min(60.0, self.backoff_base_s * 2 ** max(0, deliveries - 1)))

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
            for msg_id, fields in got:
                if fields:
                    mid = msg_id.decode() if isinstance(msg_id, bytes) else str(msg_id)
                    claimed.append((mid, _decode(fields), deliveries + 1))
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
        """Relay, reclaim and read once, then process what arrived; returns jobs applied."""
        await self.ensure_group()
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
        """Serve until ``stop`` is set; Redis outages are waited out, not fatal."""
        while not stop.is_set():
            try:
                await self.run_once(block_ms=1000)
            except RedisError as exc:
                self._group_ready = False
                logger.warning(
                    "memory_worker_redis_unavailable", extra={"error": type(exc).__name__}
                )
                await asyncio.sleep(1.0)

    async def _handle(self, messages: list[tuple[str, dict[str, str], int]]) -> int:
        services = self.services
        keys = [(m[1]["tenant"], m[1]["conversation"]) for m in messages]
        async with services.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT tenant_id, conversation_id, customer_id, payload, status"
                    " FROM memory_jobs WHERE (tenant_id, conversation_id) IN"
                    " (SELECT * FROM unnest(%s::text[], %s::text[]))",
                    ([k[0] for k in keys], [k[1] for k in keys]),
                )
            ).fetchall()
        jobs = {(r["tenant_id"], r["conversation_id"]): r for r in rows}
        todo = []
        for msg_id, fields, deliveries in messages:
            job = jobs.get((fields["tenant"], fields["conversation"]))
            if job is None or job["status"] in ("done", "dead"):
                await services.redis.xack(STREAM, GROUP, msg_id)  # erased, replayed or finished
                continue
            todo.append((msg_id, job, deliveries))
        if not todo:
            return 0

        prepared = []
        for msg_id, job, deliveries in todo:
            try:
                prepared.append((msg_id, job, deliveries, await self._prepare(job)))
            except Exception as exc:  # a bad payload must not block the batch: retried, then parked
                await self._failed(msg_id, job, deliveries, exc)
        if not prepared:
            return 0
        await services.store.abatch(
            [
                PutOp(
                    episodes_namespace(job["tenant_id"], job["customer_id"]),
                    job["conversation_id"],
                    work["episode"],
                )
                for _, job, _, work in prepared
            ]
        )
        if os.environ.get(FAILPOINT_ENV) == "memory_after_episode":
            os._exit(70)
        applied = 0
        refreshed: dict[str, dict[str, dict[str, Any] | None]] = {}
        for msg_id, job, deliveries, work in prepared:
            try:
                changed = await self._apply(job, work)
            except Exception as exc:  # retried with backoff, then dead-lettered with the error
                await self._failed(msg_id, job, deliveries, exc)
                continue
            await services.redis.xack(STREAM, GROUP, msg_id)
            applied += int(changed)
            if changed:
                raw = await refresh_hot_memory(services, job["tenant_id"], job["customer_id"])
                refreshed.setdefault(job["tenant_id"], {})[job["customer_id"]] = raw
            elif await self._job_erased(job):
                await services.store.adelete(
                    episodes_namespace(job["tenant_id"], job["customer_id"]),
                    job["conversation_id"],
                )
        for tenant_id, layers in refreshed.items():  # one feature refresh per batch
            await refresh_features(services, tenant_id, sorted(layers), raw_layers=layers)
        return applied

    async def _job_erased(self, job: dict[str, Any]) -> bool:
        async with self.services.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT 1 FROM memory_jobs WHERE tenant_id = %s AND conversation_id = %s",
                    (job["tenant_id"], job["conversation_id"]),
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
                "thread_id": job["conversation_id"],
                "attempt": deliveries,
                "error": type(exc).__name__,
            },
        )
        dead = deliveries >= self.max_attempts
        async with self.services.pool.connection() as conn:
            await conn.execute(
                "UPDATE memory_jobs SET attempts = %s, last_error = %s,"
                " status = CASE WHEN %s THEN 'dead' ELSE status END"
                " WHERE tenant_id = %s AND conversation_id = %s",
                (deliveries, error, dead, job["tenant_id"], job["conversation_id"]),
            )
        if dead:
            await self.services.redis.xadd(
                DEAD_LETTER,
                {
                    "tenant": job["tenant_id"],
                    "conversation": job["conversation_id"],
                    "customer": job["customer_id"],
                    "error": error,
                    "attempts": str(deliveries),
                },
            )
            await self.services.redis.xack(STREAM, GROUP, msg_id)

    async def _prepare(self, job: dict[str, Any]) -> dict[str, Any]:
        """Everything computed outside the transaction: episode and extracted facts."""
        p = job["payload"]
        lines: list[str] = p.get("customer_lines", [])
        ended_at = datetime.fromisoformat(p["ended_at"])
        episode = build_episode(
            session_id=job["conversation_id"],
            channel=p["channel"],
            intent=p.get("intent"),
            outcome=p["outcome"],
            issue=p.get("issue"),
            executed=p.get("executed", []),
            customer_lines=lines,
            pending_action=p.get("pending_action"),
            now=ended_at,
        )
        if self.services.chat_model is not None:
            from support_agent.llm import summarize_conversation

            better = await summarize_conversation(
                self.services.chat_model, episode["summary"], lines, p.get("agent_lines", [])
            )
            if better is not None:
                episode["summary"] = better
        frustrations = [float(t.get("frustration", 0.0)) for t in p.get("turns", [])]
        return {
            "episode": episode,
            "language": await asyncio.to_thread(detect_language, lines),
            "mood": detect_mood(frustrations, lines),
            "tone": detect_tone(lines),
            "details": personal_details(lines),
            "ended_at": ended_at,
            "started_at": datetime.fromisoformat(p.get("started_at") or p["ended_at"]),
        }

    async def _apply(self, job: dict[str, Any], work: dict[str, Any]) -> bool:
        """The idempotent transaction of one job; False if it was already applied or erased."""
        p = job["payload"]
        t, cid, conv = job["tenant_id"], job["customer_id"], job["conversation_id"]
        turns = p.get("turns", [])
        outcome = p["outcome"]
        executed_orders = [a.get("order_id") for a in p.get("executed", []) if a.get("order_id")]
        async with self.services.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT status FROM memory_jobs WHERE tenant_id = %s AND conversation_id = %s"
                    " FOR UPDATE",
                    (t, conv),
                )
            ).fetchone()
            if row is None or row["status"] in ("done", "dead"):
                return False
            cust = await (
                await conn.execute(
                    "SELECT address->>'state' AS state FROM customers"
                    " WHERE tenant_id = %s AND id = %s",
                    (t, cid),
                )
            ).fetchone()
            if cust is None:
                return False
            timezone = detect_timezone(p.get("customer_lines", []), cust["state"])
            await conn.execute(
                "UPDATE customers SET language = COALESCE(%(lang)s, language),"
                " timezone = COALESCE(%(tz)s, timezone),"
                " channels = CASE WHEN %(ch)s = ANY(channels) THEN channels"
                " ELSE array_append(channels, %(ch)s) END, updated_at = now()"
                " WHERE tenant_id = %(t)s AND id = %(c)s",
                {"lang": work["language"], "tz": timezone, "ch": p["channel"], "t": t, "c": cid},
            )
            await conn.execute(
                "UPDATE promises SET status = 'kept', updated_at = now()"
                " WHERE tenant_id = %s AND customer_id = %s AND status = 'pending'"
                " AND order_id = ANY(%s)",
                (t, cid, executed_orders),
            )
            order_id = (p.get("pending_action") or {}).get("order_id")
            for n, text in enumerate(work["episode"]["promises"]):
                # the same pending promise repeated in a later conversation is one promise
                await conn.execute(
                    "INSERT INTO promises (tenant_id, id, customer_id, conversation_id, order_id,"
                    " text, made_by) SELECT %(t)s, %(id)s, %(c)s, %(conv)s, %(o)s, %(text)s,"
                    " 'agent' WHERE NOT EXISTS (SELECT 1 FROM promises WHERE tenant_id = %(t)s"
                    " AND customer_id = %(c)s AND status = 'pending' AND text = %(text)s)"
                    " ON CONFLICT DO NOTHING",
                    {"t": t, "id": f"{conv}:{n}", "c": cid, "conv": conv, "o": order_id,
                     "text": text},
                )  # fmt: skip
            open_row = await (
                await conn.execute(
                    "SELECT count(*) AS n FROM issues WHERE tenant_id = %s AND customer_id = %s"
                    " AND status = 'open'",
                    (t, cid),
                )
            ).fetchone()
            complaint = any(turn.get("intent") == "complaint" for turn in turns)
            await conn.execute(
                "INSERT INTO memory_history (tenant_id, customer_id, first_contact_at,"
                " total_conversations, positive_interactions, escalations, complaints,"
                " unresolved_issues, positive_resolutions, last_interaction_at)"
                " VALUES (%(t)s, %(c)s, %(start)s, 1, %(pos)s, %(esc)s, %(comp)s, %(open)s,"
                " %(res)s, %(end)s)"
                " ON CONFLICT (tenant_id, customer_id) DO UPDATE SET"
                " first_contact_at = LEAST(memory_history.first_contact_at,"
                "   EXCLUDED.first_contact_at),"
                " total_conversations = memory_history.total_conversations + 1,"
                " positive_interactions = memory_history.positive_interactions"
                "   + EXCLUDED.positive_interactions,"
                " escalations = memory_history.escalations + EXCLUDED.escalations,"
                " complaints = memory_history.complaints + EXCLUDED.complaints,"
                " unresolved_issues = EXCLUDED.unresolved_issues,"
                " positive_resolutions = memory_history.positive_resolutions"
                "   + EXCLUDED.positive_resolutions,"
                " last_interaction_at = GREATEST(memory_history.last_interaction_at,"
                "   EXCLUDED.last_interaction_at),"
                " updated_at = now()",
                {
                    "t": t,
                    "c": cid,
                    "start": work["started_at"],
                    "end": work["ended_at"],
                    "pos": int(
                        outcome in ("resolved", "answered") and work["mood"] != "frustrated"
                    ),
                    "esc": int(outcome == "escalated"),
                    "comp": int(complaint),
                    "open": int(open_row["n"]) if open_row else 0,
                    "res": int(outcome == "resolved"),
                },
            )
            await conn.execute(
                "INSERT INTO memory_prefs (tenant_id, customer_id, tone_pref, personal_details,"
                " last_mood, last_mood_at) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, customer_id) DO UPDATE SET"
                " tone_pref = COALESCE(EXCLUDED.tone_pref, memory_prefs.tone_pref),"
                " personal_details = (SELECT COALESCE(array_agg(DISTINCT d), '{}') FROM"
                "   unnest(memory_prefs.personal_details || EXCLUDED.personal_details) AS d),"
                " last_mood = EXCLUDED.last_mood, last_mood_at = EXCLUDED.last_mood_at,"
                " updated_at = now()",
                (t, cid, work["tone"], work["details"], work["mood"], work["ended_at"]),
            )
            await conn.execute(
                "UPDATE interactions SET summary = %s WHERE tenant_id = %s AND id = %s",
                (work["episode"]["summary"], t, conv),
            )
            await conn.execute(
                "UPDATE memory_jobs SET status = 'done', processed_at = now(),"
                " attempts = attempts + 1 WHERE tenant_id = %s AND conversation_id = %s",
                (t, conv),
            )
        logger.info("memory_job_applied", extra={"tenant_id": t, "thread_id": conv})
        return True


async def replay(services: Services, tenant_id: str, conversation_id: str) -> None:
    """Publish a job again (operators; tests of idempotence). Changes nothing if already done."""
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT customer_id FROM memory_jobs WHERE tenant_id = %s AND conversation_id = %s",
                (tenant_id, conversation_id),
            )
        ).fetchone()
    if row is not None:
        await services.redis.xadd(
            STREAM,
            {"tenant": tenant_id, "conversation": conversation_id, "customer": row["customer_id"]},
        )
