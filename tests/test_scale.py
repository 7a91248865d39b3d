"""Scale-out on the real servers: background duties run once per cluster (the leader lease), and
any API process takes any turn of any session."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from support_agent.conversation import Agent, end_session
from support_agent.failpoints import EXIT_STATUS, FAILPOINT_ENV
from support_agent.infra.leader import LeaderLease
from support_agent.memory_store.episodes import episodes_namespace
from support_agent.memory_store.pipeline import MemoryWorker
from support_agent.services import Services
from support_agent.settings import Settings
from support_agent.tenancy import create_api_key
from tests.conftest import (
    customer_said,
    customer_with,
    free_port,
    job_status,
    new_session,
    order_actions,
    order_status,
    proof,
    say,
)


async def test_one_process_holds_a_lease_until_it_leaves_or_its_connection_dies(
    services: Services,
) -> None:
    url = services.locks._conninfo  # noqa: SLF001 - the database the service uses
    one, two = LeaderLease(url, "test:lease"), LeaderLease(url, "test:lease")
    other = LeaderLease(url, "test:another-duty")
    try:
        assert await one.is_leader()
        assert not await two.is_leader()
        assert await one.is_leader()  # asked again: still the holder, and still alone
        assert not await two.is_leader()
        assert await other.is_leader()  # another name is another lease
        await one.close()  # the holder leaves: the next to ask takes over
        assert await two.is_leader()
        assert not await one.is_leader()
        # The holder's connection dies (a crashed process, a network cut): PostgreSQL releases
        # the lock at once; the old holder notices on its next ask and another takes over.
        async with services.pool.connection() as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objid = (hashtextextended('test:lease', 0) & 4294967295)::oid"
                " AND pid <> pg_backend_pid()"
            )
        holders = [await lease.is_leader() for lease in (two, one)]
        holders += [await lease.is_leader() for lease in (two, one)]
        assert holders[2:] in ([True, False], [False, True])  # exactly one, whichever asked
    finally:
        for lease in (one, two, other):
            await lease.close()


async def test_only_the_lease_holder_relays_the_outbox(services: Services, agent: Agent) -> None:
    """A job left ``pending`` in PostgreSQL (Redis was down when the session ended) is published
    by the one worker holding the background lease, not by every worker."""
    cust = await customer_with(services, "delivered")
    session = new_session()
    await say(agent, session, proof(cust))
    await say(agent, session, "where is my order?")
    await end_session(agent, tenant_id="retail", session_id=session)
    await MemoryWorker(services, backoff_base_s=0.0).drain()
    assert await job_status(services, session) == "done"
    async with services.pool.connection() as conn:  # as if Redis had been down at the end
        await conn.execute(
            "UPDATE memory_jobs SET status = 'pending', created_at = now() - interval '1 minute'"
            " WHERE tenant_id = 'retail' AND session_id = %s",
            (session,),
        )
    url = services.locks._conninfo  # noqa: SLF001
    holder, follower = LeaderLease(url, "test:relay"), LeaderLease(url, "test:relay")
    try:
        assert await holder.is_leader()
        following = MemoryWorker(dataclasses.replace(services, leader=follower))
        await following.run_once(block_ms=None)
        assert await job_status(services, session) == "pending"  # not its duty
        leading = MemoryWorker(dataclasses.replace(services, leader=holder))
        await leading.run_once(block_ms=None)
        assert await job_status(services, session) in ("enqueued", "done")
    finally:
        await holder.close()
        await follower.close()


def _environment(settings: Settings, servers: dict[str, str] | None) -> dict[str, str]:
    """A child process's environment: the test session's ``DATA_DIR`` (intent models) and
    packs, and either the session's embedded servers or ``servers`` (``DATABASE_URL``, ...)."""
    env = {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "TENANT_PACKS_DIR": str(settings.tenant_packs_dir),
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT": "100000/minute",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return {**env, **(servers or {})}


@contextlib.contextmanager
def _api_processes(
    settings: Settings, n: int, log_dir: Path, servers: dict[str, str] | None = None,
    *, workers: int = 1,
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:  # fmt: skip
    """``n`` separate ``support-agent serve`` processes on their own ports (each with
    ``workers`` uvicorn workers), attached to the test session's servers (same ``DATA_DIR``) or
    to ``servers`` (environment variables); yields ``[(base URL, process)]``."""
    env = _environment(settings, servers)
    procs = []
    for i in range(n):
        port = free_port()
        cmd = [sys.executable, "-m", "support_agent.cli", "serve", "--port", str(port)]
        log = (log_dir / f"api-{i}.log").open("wb")
        proc = subprocess.Popen([*cmd, "--workers", str(workers)], env=env, stdout=log, stderr=log)
        procs.append((f"http://127.0.0.1:{port}", proc))
    try:
        deadline = time.monotonic() + 180
        for i, (url, proc) in enumerate(procs):
            while True:
                assert proc.poll() is None, (log_dir / f"api-{i}.log").read_text()[-3000:]
                assert time.monotonic() < deadline, f"API process {i} did not start"
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
        yield procs
    finally:
        for _, proc in procs:
            proc.terminate()
        for _, proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_a_session_moves_between_api_processes_mid_conversation(
    settings: Settings, services: Services, agent: Agent, tmp_path: Path
) -> None:
    """Two API processes share nothing but PostgreSQL and Redis. One conversation's turns
    alternate between them: the proposal made on one is confirmed on the other and acts once, a
    second "yes" on the first acts no more, the session ends on the other and its memory job is
    applied once (by whichever process's worker took it)."""
    key = await create_api_key(services, "retail")
    cust = await customer_with(services, "pending")
    order_id = str(cust["order_id"])
    with _api_processes(settings, 2, tmp_path) as procs:
        a, b = (
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            for url, _ in procs
        )
        async with a, b:
            hello = await a.post("/v1/chat", json={"message": f"hi, {proof(cust)}"})
            assert hello.status_code == 200, hello.text
            session = hello.json()["session_id"]

            async def say_on(client: httpx.AsyncClient, message: str) -> dict[str, Any]:
                r = await client.post("/v1/chat", json={"session_id": session, "message": message})
                assert r.status_code == 200, r.text
                return dict(r.json())

            cancel = f"please cancel order {order_id}, I ordered it by mistake"
            proposal = await say_on(b, cancel)
            assert proposal["decision"] == "confirm", proposal
            assert await order_status(services, order_id) != "cancelled"  # nothing before "yes"
            done = await say_on(a, "yes")
            assert done["decision"] == "execute" and done["reply"].startswith("Done"), done
            again = await say_on(b, "yes")
            assert again["decision"] != "execute" and "Done" not in again["reply"], again
            ended = await b.post(f"/v1/sessions/{session}/end")
            assert ended.status_code == 200, ended.text
            deadline = time.monotonic() + 60
            while await job_status(services, session) != "done":
                assert time.monotonic() < deadline, await job_status(services, session)
                await asyncio.sleep(0.2)
    assert await order_status(services, order_id) == "cancelled"
    assert await order_actions(services, order_id) == 1
    async with services.pool.connection() as conn:
        job = await (
            await conn.execute(
                "SELECT attempts FROM memory_jobs WHERE tenant_id = 'retail' AND session_id = %s",
                (session,),
            )
        ).fetchone()
    assert job is not None and job["attempts"] == 1  # applied once
    episodes = await services.store.asearch(episodes_namespace("retail", str(cust["id"])))
    assert [e.key for e in episodes] == [session]
    said = await customer_said(agent, session)
    assert said == [f"hi, {proof(cust)}", cancel, "yes", "yes"]


async def test_a_yes_whose_answer_was_lost_is_reported_done_when_resent(
    settings: Settings, services: Services, agent: Agent, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """An API process dies after the cancellation committed and before the turn's checkpoint
    and answer (failpoint ``turn_after_action``). The client resends its "yes" with the same
    ``message_id`` to another process: the cancellation is reported done (its first result), not
    refused because the order now shows it cancelled, and it is not made twice."""
    cust = await customer_with(services, "pending")
    order_id = str(cust["order_id"])
    session = new_session()
    hello = f"hi, {proof(cust)}"
    cancel = f"please cancel order {order_id}, I ordered it by mistake"
    for i, message in enumerate((hello, cancel)):
        body = {"session_id": session, "message": message, "message_id": f"m{i}"}
        r = await client.post("/v1/chat", json=body)
        assert r.status_code == 200, r.text
    assert r.json()["decision"] == "confirm", r.text
    yes = {"session_id": session, "message": "yes", "message_id": "m2"}
    key = await create_api_key(services, "retail")
    with _api_processes(settings, 1, tmp_path, {FAILPOINT_ENV: "turn_after_action"}) as procs:
        ((url, dying),) = procs
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as other:
            try:
                lost = await other.post("/v1/chat", json=yes)
            except httpx.TransportError:
                lost = None
        assert lost is None, lost.text  # no answer: the process died with the turn
        assert dying.wait(30) == EXIT_STATUS
    assert await order_status(services, order_id) == "cancelled"  # the change did commit
    resent = await client.post("/v1/chat", json=yes)
    assert resent.status_code == 200, resent.text
    body = resent.json()
    assert body["decision"] == "execute" and body["reply"].startswith("Done"), body
    assert order_id in body["reply"]
    assert await order_actions(services, order_id) == 1  # reported, not made again
    said = await customer_said(agent, session)
    assert said == [hello, cancel, "yes"]
    again = await client.post("/v1/chat", json={**yes, "message_id": "m3"})
    assert again.json()["decision"] != "execute" and "Done" not in again.json()["reply"]


async def test_the_workers_serve_spawns_log_in_the_service_format(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    """``serve --workers 2`` spawns its API processes; their records (the service's own and
    uvicorn's) come out in the CLI's ``key=value`` format, with the ``extra`` fields."""
    key = await create_api_key(services, "retail")
    with _api_processes(settings, 1, tmp_path, {"LOG_LEVEL": "INFO"}, workers=2) as procs:
        ((url, _),) = procs
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as http:
            for _ in range(4):  # the kernel spreads connections over the workers
                r = await http.post("/v1/chat", json={"message": "hello there"})
                assert r.status_code == 200, r.text
    log = (tmp_path / "api-0.log").read_text()
    decided = [line for line in log.splitlines() if " turn_decided " in line]
    assert decided, log[-3000:]
    assert all(" INFO support_agent." in line and " tenant_id=retail" in line for line in decided)
    started = [line for line in log.splitlines() if "Application startup complete" in line]
    assert len(started) == 2 and all(" INFO uvicorn.error " in line for line in started), started


async def test_serve_counts_a_visitor_under_its_socket_address_whatever_it_forwards(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    """Behind no trusted proxy, ``serve`` counts a widget visitor under the address it connects
    from: an X-Forwarded-For made up anew on every request does not escape the visitor limit
    (uvicorn's own proxy-header handling trusted it from 127.0.0.1)."""
    widget = await create_api_key(services, "retail", "widget")
    with _api_processes(settings, 1, tmp_path) as [(url, _)]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            statuses = []
            for n in range(40):  # VISITOR_RATE_LIMIT: 30 a minute
                r = await http.post(
                    "/threads",
                    json={},
                    headers={"Authorization": f"Bearer {widget}",
                             "X-Forwarded-For": f"203.0.113.{n}"},
                )  # fmt: skip
                statuses.append(r.status_code)
    # 30 a minute for 127.0.0.1 (fewer when other tests of the session spent some this minute)
    assert statuses.count(200) <= 30 and statuses[-10:] == [429] * 10, statuses
