"""Faults of the real embedded servers: the service keeps answering, heals itself, loses nothing.

These kill the session's own embedded Redis and PostgreSQL (SIGKILL, no warning) and rely on the
services' supervisor to restart them; every test waits until both are healthy again before it
ends, so the tests after it run on a healed service.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support_agent.api.app import create_app
from support_agent.conversation import Agent, end_session
from support_agent.memory_store.hot import sync_hot_tier
from support_agent.memory_store.pipeline import MemoryWorker
from support_agent.services import Services
from support_agent.tenancy import create_api_key
from tests.conftest import customer_with, job_status, new_session, proof, propose_cancel, say


async def _until(check: Any, timeout_s: float, what: str) -> float:
    """Seconds until ``check()`` is true (it may be async), at most ``timeout_s``."""
    started = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"{what} after {timeout_s} s")
        await asyncio.sleep(0.1)


def _postmaster_pid(services: Services) -> int:
    pgdata = Path(services.embedded._pg.pgdata)  # noqa: SLF001 - the server under test
    return int((pgdata / "postmaster.pid").read_text().split()[0])


async def test_redis_killed_mid_conversation_is_restarted_and_no_job_is_lost(
    services: Services, agent: Agent
) -> None:
    assert services.embedded.managed, "the tests run on embedded servers"
    earlier = await customer_with(services, "delivered")  # a job already on the stream
    before = new_session()
    await say(agent, before, f"my email is {earlier['email']}, zip code {earlier['zip']}")
    assert (await end_session(agent, tenant_id="retail", session_id=before))["memory_job"] == (
        "enqueued"
    )
    cust = await customer_with(services, "delivered")
    session = new_session()
    await say(agent, session, proof(cust))

    os.kill(services.embedded._redis.pid, signal.SIGKILL)  # noqa: SLF001 - no save, no warning
    await _until(lambda: not services.embedded.redis_alive(), 5, "Redis still answers")
    turn = await say(agent, session, f"the {cust['item']} I got arrived broken")
    assert turn.decision == "confirm"  # answered from PostgreSQL
    ended = await end_session(agent, tenant_id="retail", session_id=session)
    assert ended["memory_job"] in ("pending", "enqueued")  # kept either way

    healed = await _until(services.embedded.redis_alive, 20, "the supervisor did not restart Redis")
    assert healed < 20
    applied = await MemoryWorker(services, backoff_base_s=0.0).drain(timeout_s=60)
    assert applied >= 2  # the job lost with the stream is published again, and the new one
    assert await job_status(services, before) == "done"
    assert await job_status(services, session) == "done"
    # The killed Redis lost what it had not saved; turns rebuild it on read (read-through), but
    # the tests after this one count the warmed cache the session started with: warm it again.
    await sync_hot_tier(services, "retail")


async def test_postgres_killed_answers_503_fast_then_recovers_and_the_session_resumes(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust = await customer_with(services, "delivered")
    hello = await client.post("/v1/chat", json={"message": f"hi, {proof(cust)}"})
    assert hello.status_code == 200, hello.text
    session = hello.json()["session_id"]

    os.kill(_postmaster_pid(services), signal.SIGKILL)
    started = time.monotonic()
    down = await client.post("/v1/chat", json={"session_id": session, "message": "still there?"})
    took = time.monotonic() - started
    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert took < 2.0, f"503 after {took:.2f} s"
    health = await client.get("/healthz")
    assert health.status_code == 503 and health.json()["postgres"] is False

    async def answered() -> bool:
        r = await client.post(
            "/v1/chat", json={"session_id": session, "message": "where is my order?"}
        )
        assert r.status_code in (200, 503), r.text  # never a 500 while it heals
        return r.status_code == 200

    await _until(answered, 45, "the service did not recover without a restart")
    resumed = await client.post(
        "/v1/chat", json={"session_id": session, "message": "thanks, that's all"}
    )
    assert resumed.status_code == 200
    assert resumed.json()["decision"] != "ask_identification"  # the thread kept its customer
    assert (await client.get("/healthz")).json() == {
        "status": "ok", "postgres": True, "redis": True
    }  # fmt: skip


def test_sigterm_stops_the_embedded_postgres_only_when_its_last_user_leaves(
    tmp_path: Path,
) -> None:
    """Two workers on one fresh DATA_DIR: the first SIGTERM leaves PostgreSQL up, the second
    stops it (and a user that died by SIGKILL before them is not counted)."""
    env = {**os.environ, "DATA_DIR": str(tmp_path), "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    cmd = [sys.executable, "-m", "support_agent.cli", "worker", "--name"]

    def started(name: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([*cmd, name], env=env, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not _pg_running(tmp_path) or not _registered(tmp_path, proc.pid):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.2)
        return proc

    crashed = started("crashed")
    crashed.kill()  # SIGKILL: its pid stays in pgserver's list
    crashed.wait()
    first, second = started("first"), started("second")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) in (0, 130)
    assert _pg_running(tmp_path), "stopped while another worker still used it"
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) in (0, 130)
    deadline = time.monotonic() + 20
    while _pg_running(tmp_path):
        assert time.monotonic() < deadline, "PostgreSQL kept running after its last user left"
        time.sleep(0.2)


def _pg_running(data_dir: Path) -> bool:
    pid_file = data_dir / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (ProcessLookupError, ValueError):
        return False
    return True


def _registered(data_dir: Path, pid: int) -> bool:
    handles = data_dir / "pg" / ".handle_pids.json"
    return handles.exists() and str(pid) in handles.read_text()


async def test_a_failed_turn_leaves_no_half_written_checkpoint(
    services: Services, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn failing in its last node answers 500; the thread is as before the message, the
    consent it awaited still awaits, and resending the message completes it once."""
    key = await create_api_key(services, "retail")
    app = create_app(agent=agent)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # see the 500 as sent
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {key}"}
        ) as client,
    ):
        await _failed_turn_is_undone(client, services, agent, monkeypatch)


async def _failed_turn_is_undone(
    client: httpx.AsyncClient, services: Services, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _ = await propose_cancel(client, services)
    config: Any = {"configurable": {"thread_id": f"retail:{session}"}}
    before = await agent.graph.aget_state(config)

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("the CRM write failed")

    monkeypatch.setattr("support_agent.nodes.write_memory.record_turn", broken)
    failed = await client.post("/v1/chat", json={"session_id": session, "message": "where is it?"})
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "INTERNAL_ERROR"
    after = await agent.graph.aget_state(config)
    assert (
        after.config["configurable"]["checkpoint_id"]
        == (before.config["configurable"]["checkpoint_id"])
    )
    assert len(after.values["messages"]) == len(before.values["messages"])
    assert after.interrupts, "the proposal still awaits its answer"
    monkeypatch.undo()
    done = await client.post("/v1/chat", json={"session_id": session, "message": "yes"})
    assert done.status_code == 200 and done.json()["decision"] == "execute", done.text
    state = await agent.graph.aget_state(config)
    humans = [m.content for m in state.values["messages"] if m.type == "human"]
    assert "where is it?" not in humans and humans[-1] == "yes"


async def test_ending_a_session_is_all_or_nothing(
    services: Services, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An end whose memory job cannot be recorded leaves the session open; the retry ends it
    with its job (before, the session was marked ended and its memory never written)."""
    cust = await customer_with(services, "delivered")
    session = new_session()
    await say(agent, session, proof(cust))

    async def broken(*_: Any, **__: Any) -> bool:
        raise RuntimeError("the job insert failed")

    monkeypatch.setattr("support_agent.nodes.write_memory.record_job", broken)
    with pytest.raises(RuntimeError):
        await end_session(agent, tenant_id="retail", session_id=session)
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT status FROM interactions WHERE tenant_id = 'retail' AND id = %s",
                (session,),
            )
        ).fetchone()
    assert row is not None and row["status"] == "open"
    assert await job_status(services, session) is None
    monkeypatch.undo()
    ended = await end_session(agent, tenant_id="retail", session_id=session)
    assert ended["memory_job"] in ("enqueued", "pending")
    assert await job_status(services, session) in ("enqueued", "pending")
