"""``langgraph dev`` (LangGraph Studio's server) with the official ``langgraph-sdk`` client.

A real ``langgraph dev`` process serves ``langgraph.json`` against this test session's embedded
PostgreSQL and Redis. Two threads for two customers, run without any ``context``, must be two
separate conversations: the session is the server's thread id, never a shared default.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from support_agent.services import Services
from tests.conftest import customer_with, proof

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "langgraph"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def studio(
    services: Services, data_dir: Path, packs_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = _free_port()  # never 2024: taken on these machines
    log = tmp_path_factory.mktemp("studio") / "langgraph-dev.log"
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": str(services.embedded.database_url),
        "REDIS_URL": str(services.embedded.redis_url),
        "TENANT_PACKS_DIR": str(packs_dir),
        "DEFAULT_TENANT": "retail",
        "MEMORY_WORKER": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LANGSMITH_TRACING": "false",
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(LANGGRAPH), "dev", "--port", str(port), "--no-browser", "--no-reload"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_two_threads_without_context_are_two_conversations(
    studio: str, services: Services
) -> None:
    client = get_client(url=studio)
    first = await customer_with(services, "delivered")
    second = await customer_with(services, "delivered")
    assert first["id"] != second["id"]
    threads = []
    for cust in (first, second):
        thread = await client.threads.create()
        out = await client.runs.wait(
            thread["thread_id"], "support_agent",
            input={"messages": [{"role": "user", "content": f"hi, {proof(cust)}"}]},
        )  # fmt: skip
        assert isinstance(out, dict) and out.get("decision") == "respond", out
        assert str(cust["first_name"]) in out["reply"]  # greeted by name: identified
        threads.append(thread["thread_id"])
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, tenant_id, customer_id FROM interactions WHERE id = ANY(%s)",
                (threads,),
            )
        ).fetchall()
        messages = await (
            await conn.execute(
                "SELECT interaction_id, count(*) AS n FROM messages WHERE interaction_id = ANY(%s)"
                " GROUP BY interaction_id",
                (threads,),
            )
        ).fetchall()
    by_thread = {r["id"]: r for r in rows}
    assert set(by_thread) == set(threads)  # one interaction per thread, none shared
    assert [by_thread[t]["customer_id"] for t in threads] == [first["id"], second["id"]]
    assert {r["tenant_id"] for r in rows} == {"retail"}  # the server's configured tenant
    assert {m["interaction_id"]: m["n"] for m in messages} == dict.fromkeys(threads, 2)


async def test_a_bad_api_key_is_refused_and_a_good_one_picks_its_tenant(
    studio: str, services: Services
) -> None:
    from support_agent.tenancy import create_api_key

    bad = get_client(url=studio, headers={"Authorization": "Bearer sa_nope"})
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await bad.threads.create()
    assert refused.value.response.status_code == 401
    key = await create_api_key(services, "acme")
    acme = get_client(url=studio, headers={"Authorization": f"Bearer {key}"})
    thread = await acme.threads.create()
    hello = {"messages": [{"role": "user", "content": "hello"}]}
    out = await acme.runs.wait(thread["thread_id"], "support_agent", input=hello)
    assert isinstance(out, dict) and "reply" in out
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT tenant_id FROM interactions WHERE id = %s", (thread["thread_id"],)
            )  # fmt: skip
        ).fetchone()
    assert row is not None and row["tenant_id"] == "acme"


async def _ledger(services: Services, order_id: object) -> tuple[str, int]:
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT o.status, (SELECT count(*) FROM account_actions a WHERE a.tenant_id ="
                " o.tenant_id AND a.params->>'order_id' = o.id) AS n FROM orders o"
                " WHERE o.tenant_id = 'retail' AND o.id = %s",
                (order_id,),
            )
        ).fetchone()
    assert row is not None
    return str(row["status"]), int(row["n"])


async def _to_the_interrupt(client: Any, services: Services) -> tuple[str, dict[str, Any]]:
    """A thread whose run stopped at the consent interrupt for cancelling a pending order."""
    cust = await customer_with(services, "pending")
    thread = (await client.threads.create())["thread_id"]
    for text in (proof(cust),
                 f"cancel order {cust['order_id']}, I no longer need it"):  # fmt: skip
        await client.runs.wait(
            thread, "support_agent", input={"messages": [{"role": "user", "content": text}]}
        )
    state = await client.threads.get_state(thread)
    assert state["next"] == ["await_consent"], state["next"]
    (pending,) = state["interrupts"]
    (request,) = pending["value"]["action_requests"]
    assert request["name"] == "cancel_order" and request["args"]["target_id"] == cust["order_id"]
    assert pending["value"]["review_configs"][0]["allowed_decisions"] == ["approve", "reject"]
    return thread, cust


async def test_sdk_sees_the_interrupt_and_approve_executes_once(
    studio: str, services: Services
) -> None:
    client = get_client(url=studio)
    thread, cust = await _to_the_interrupt(client, services)
    assert await _ledger(services, cust["order_id"]) == ("pending", 0)
    approve = {"resume": {"decisions": [{"type": "approve"}]}}
    out = await client.runs.wait(thread, "support_agent", command=approve)
    assert isinstance(out, dict) and out["decision"] == "execute", out
    assert await _ledger(services, cust["order_id"]) == ("cancelled", 1)
    assert (await client.threads.get_state(thread))["interrupts"] == []
    # approving again: nothing waits for a decision, nothing runs a second time
    await client.runs.wait(thread, "support_agent", command=approve)
    assert await _ledger(services, cust["order_id"]) == ("cancelled", 1)


async def test_sdk_reject_executes_nothing(studio: str, services: Services) -> None:
    client = get_client(url=studio)
    thread, cust = await _to_the_interrupt(client, services)
    reject = {"resume": {"decisions": [{"type": "reject", "message": "keep it"}]}}
    out = await client.runs.wait(thread, "support_agent", command=reject)
    assert isinstance(out, dict) and out["decision"] == "respond", out
    assert "won't" in out["reply"]
    assert await _ledger(services, cust["order_id"]) == ("pending", 0)


async def test_our_http_app_is_mounted_next_to_the_server(studio: str, services: Services) -> None:
    """``langgraph.json`` ``http.app``: the console, the widget, the APIs and MCP under Studio."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from support_agent.tenancy import create_api_key

    key = await create_api_key(services, "retail", "agent")
    async with httpx.AsyncClient(base_url=studio, timeout=30) as http:
        console = await http.get("/console")
        assert console.status_code == 200 and "Agent console" in console.text
        widget = await http.get("/widget.js")
        assert widget.headers["content-type"].startswith("application/javascript")
        queue = await http.get(
            "/api/tenants/me/handoffs", headers={"Authorization": f"Bearer {key}"}
        )
        assert queue.status_code == 200 and "data" in queue.json()
        assert (await http.get("/api/tenants/me/handoffs")).status_code == 401
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as mcp_http,
        streamable_http_client(f"{studio}/mcp/", http_client=mcp_http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        assert "get_customer_360" in {t.name for t in (await session.list_tools()).tools}
