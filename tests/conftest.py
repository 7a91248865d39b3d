"""Shared fixtures: one real embedded PostgreSQL (pgvector) + Redis per test session.

The session's :class:`Agent` starts both servers under a fresh temporary DATA_DIR, loads the
retail tenant through its vertical and syncs the hot tier. Tests that change data pick their own
customers or session ids, so they stay independent of each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI

from support_agent.api.app import create_app
from support_agent.conversation import Agent, TurnResult, end_session, run_turn
from support_agent.memory_store.hot import sync_hot_tier
from support_agent.memory_store.pipeline import MemoryWorker
from support_agent.services import Services
from support_agent.settings import Settings
from support_agent.tenancy import create_api_key
from support_agent.tenants import PACKS_DIR, TenantPacks
from support_agent.threads import thread_id
from support_agent.verticals.retail.loader import load_retail

#: The built-in tenant packs, for tests that read configuration without a database.
PACKS = TenantPacks()


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


#: Tenant packs kept in the test tree (``library``: a third vertical, ``tests.library_vertical``).
TEST_PACKS = Path(__file__).resolve().parent / "packs"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now (held open together while chosen,
    so none is handed out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


#: The origin the browser tests serve their host page from (retail's widget allows it) and the
#: environment variable of retail's customer-token secret in the tests.
WIDGET_ORIGIN = f"http://127.0.0.1:{free_port()}"
WIDGET_SECRET_ENV = "RETAIL_WIDGET_SECRET"
os.environ.setdefault(WIDGET_SECRET_ENV, "test-secret-" + uuid.uuid4().hex)


@pytest.fixture(scope="session")
def packs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Extra tenants: ``acme``, the retail pack under another name (tenant isolation tests), and
    ``library``, a third vertical from the test tree; retail itself with the browser tests' page
    origin among its widget's allowed origins."""
    root = tmp_path_factory.mktemp("packs")
    shutil.copytree(PACKS_DIR / "retail", root / "retail")
    retail = (root / "retail" / "tenant.yaml").read_text()
    allowed = 'allowed_origins: ["http://localhost:8000", "http://127.0.0.1:8000"]'
    assert allowed in retail
    (root / "retail" / "tenant.yaml").write_text(
        retail.replace(allowed, f'allowed_origins: ["{WIDGET_ORIGIN}"]')
    )
    shutil.copytree(TEST_PACKS / "library", root / "library")
    shutil.copytree(PACKS_DIR / "retail", root / "acme")
    config = (root / "acme" / "tenant.yaml").read_text()
    config = config.replace("Retail store", "Acme outlet")
    config = config.replace("offer_help_before_human: 0", "offer_help_before_human: 1")
    (root / "acme" / "tenant.yaml").write_text(config)
    return root


@pytest.fixture(scope="session")
def settings(data_dir: Path, packs_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=None,
        redis_url=None,
        openai_api_key=None,
        openai_base_url=None,
        tenant_packs_dir=packs_dir,
    )


@pytest.fixture(scope="session")
async def agent(settings: Settings) -> AsyncIterator[Agent]:
    async with Agent.open(settings) as opened:
        await load_retail(opened.services)
        await sync_hot_tier(opened.services, "retail")
        yield opened


@pytest.fixture(scope="session")
def services(agent: Agent) -> Services:
    return agent.services


def new_session() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def say(
    agent: Agent, session_id: str, message: str, channel: str = "chat", **identity: str
) -> TurnResult:
    return await run_turn(
        agent,
        tenant_id="retail",
        channel=channel,
        message=message,
        session_id=session_id,
        identity=identity or None,
    )


def proof(cust: dict[str, object]) -> str:
    """What a retail customer types to verify: the email and the zip code on file (the retail
    policy's ``email_zip`` way; an email alone only finds the account)."""
    return f"my email is {cust['email']}, zip code {cust['zip']}"


def bank_proof(cust: dict[str, object]) -> str:
    """What a bank customer types to verify: two facts on file, email and date of birth (the
    bank's policy: any 2 of date of birth, email, phone, address)."""
    born = cust["date_of_birth"]
    assert isinstance(born, date), "select the customer's date_of_birth"
    return f"my email is {cust['email']} and my date of birth is {born:%m/%d/%Y}"


_taken: dict[str, int] = {}


async def customer_with(
    services: Services, status: str, *, fresh: bool = True
) -> dict[str, object]:
    """A retail customer with an order in ``status`` (their first such) holding an item whose
    product name appears nowhere else in their orders, so a message naming it is unambiguous.

    ``fresh=True`` hands every call a different customer that no conversation has touched yet
    (no interaction in the CRM: tests and evaluations that pick customers their own way never
    share one with a test that counts what it wrote); ``fresh=False`` returns the same shared
    customer for read-only tests.
    """
    if fresh:
        offset = _taken[status] = _taken.get(status, 0) + 1
    else:
        offset = 0
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                """
            SELECT c.id, c.first_name, c.last_name, c.zip, c.email, o.id AS order_id,
                   min(oi.name) AS item, min(oi.item_id) AS item_id
            FROM customers c
            JOIN orders o ON o.tenant_id = c.tenant_id AND o.customer_id = c.id
            JOIN order_items oi ON oi.tenant_id = o.tenant_id AND oi.order_id = o.id
            WHERE c.tenant_id = 'retail' AND o.status = %s
              AND (NOT %s OR NOT EXISTS (SELECT 1 FROM interactions i
                   WHERE i.tenant_id = c.tenant_id AND i.customer_id = c.id))
              AND (SELECT count(*) FROM customers c2 WHERE c2.tenant_id = 'retail'
                   AND c2.first_name = c.first_name AND c2.last_name = c.last_name
                   AND c2.zip = c.zip) = 1
              AND o.id = (SELECT min(o4.id) FROM orders o4 WHERE o4.tenant_id = 'retail'
                          AND o4.customer_id = c.id AND o4.status = %s)
              AND (SELECT count(*) FROM order_items i2 JOIN orders o2
                   ON o2.tenant_id = i2.tenant_id AND o2.id = i2.order_id
                   WHERE i2.tenant_id = 'retail' AND o2.customer_id = c.id
                   AND i2.name = oi.name) = 1
            GROUP BY c.id, c.first_name, c.last_name, c.zip, c.email, o.id
            ORDER BY c.id OFFSET %s LIMIT 1
            """,
                (status, fresh, status, offset),
            )
        ).fetchall()
    assert rows, f"no more retail customers with a suitable {status} order"
    return dict(rows[0])


async def order_status(services: Services, order_id: object) -> str:
    """The order's status in the systems of record (not the cached 360)."""
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT status FROM orders WHERE tenant_id='retail' AND id=%s", (order_id,)
            )
        ).fetchone()
    assert row is not None
    return str(row["status"])


async def customer_said(agent: Agent, session_id: str, tenant_id: str = "retail") -> list[str]:
    """The customer's messages in a session's checkpointed transcript, in order."""
    config = {"configurable": {"thread_id": thread_id(tenant_id, session_id)}}
    state = await agent.graph.aget_state(config)  # type: ignore[arg-type]
    return [str(m.content) for m in state.values.get("messages", []) if m.type == "human"]


async def order_actions(services: Services, order_id: object) -> int:
    """How many account actions the retail systems of record hold for an order."""
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM account_actions WHERE tenant_id = 'retail'"
                " AND params->>'order_id' = %s",
                (str(order_id),),
            )
        ).fetchone()
    assert row is not None
    return int(row["n"])


async def job_status(services: Services, session_id: str) -> str | None:
    """The status of a retail session's memory job, or ``None`` when it has none."""
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT status FROM memory_jobs WHERE tenant_id = 'retail' AND session_id = %s",
                (session_id,),
            )
        ).fetchone()
    return None if row is None else str(row["status"])


async def propose_cancel(client: httpx.AsyncClient, services: Services) -> tuple[str, str]:
    """Over the API: a fresh customer with a pending order identifies by email and asks to
    cancel it; the agent proposes the cancellation. Returns ``(session_id, order_id)``."""
    cust = await customer_with(services, "pending")
    order_id = str(cust["order_id"])
    hello = await client.post("/v1/chat", json={"message": f"hi, {proof(cust)}"})
    session = str(hello.json()["session_id"])
    cancel = f"please cancel order {order_id}, I ordered it by mistake"
    proposal = await client.post("/v1/chat", json={"session_id": session, "message": cancel})
    assert proposal.json()["decision"] == "confirm", proposal.text
    return session, order_id


async def end_and_remember(agent: Agent, session_id: str, reason: str = "explicit") -> int:
    """End a session, then let a memory worker apply every queued job; returns jobs applied."""
    await end_session(agent, tenant_id="retail", session_id=session_id, reason=reason)
    return await MemoryWorker(agent.services, backoff_base_s=0.0).drain(timeout_s=60)


async def add_acme_twin(services: Services, customer_id: str) -> None:
    """Give tenant ``acme`` a customer with the same id as a retail customer, other details."""
    async with services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES ('acme', 'Acme outlet') ON CONFLICT DO NOTHING"
        )
        await conn.execute(
            "INSERT INTO customers (tenant_id, id, first_name, last_name, email, zip)"
            " VALUES ('acme', %s, 'Zed', 'Twin', 'zed.twin@acme.example', '00001')"
            " ON CONFLICT DO NOTHING",
            (customer_id,),
        )


@pytest.fixture
async def served(agent: Agent) -> AsyncIterator[tuple[str, FastAPI]]:
    """The API served by uvicorn on this test's event loop: ``(base URL, app)``."""
    app = create_app(agent=agent)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the API did not start"
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", app
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def client(services: Services, agent: Agent) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the API (in process, ASGI) with a retail API key."""
    key = await create_api_key(services, "retail")
    app = create_app(agent=agent)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {key}"},
        ) as c:
            yield c


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


@contextlib.contextmanager
def redis_cluster(root: Path) -> Iterator[list[int]]:
    """A real Redis Cluster of three masters (Debian's ``redis-server``, installed by ``make
    test``) on loopback ports, slots split by ``redis-cli --cluster create``; yields the ports.
    Each node keeps its files under ``root``; all are stopped on exit."""
    assert Path(REDIS_SERVER).exists(), "Debian's redis-server is missing: run make test (apt-get)"
    chosen = free_ports(6)  # all distinct: a bus port must not be another node's port
    ports, buses = chosen[:3], chosen[3:]
    procs = []
    for port, bus in zip(ports, buses, strict=True):
        (root / str(port)).mkdir()
        log = (root / str(port) / "redis.log").open("wb")
        procs.append(subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-port", str(bus),  # the bus port (default port + 10000)
             "--cluster-config-file", "nodes.conf", "--dir", str(root / str(port)),
             "--save", "", "--appendonly", "no", "--protected-mode", "no"],
            stdout=log, stderr=log,
        ))  # fmt: skip
    try:
        for port, proc in zip(ports, procs, strict=True):
            client = redis.Redis(port=port, socket_timeout=1)
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    said = (root / str(port) / "redis.log").read_text()[-2000:]
                    assert proc.poll() is None, f"redis-server on {port} exited: {said}"
                    assert time.monotonic() < deadline, f"redis-server on {port} did not start"
                    time.sleep(0.1)
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while any(redis.Redis(port=p).cluster("info")["cluster_state"] != "ok" for p in ports):
            assert time.monotonic() < deadline, "the cluster did not become ready"
            time.sleep(0.2)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
