"""The graph endpoint with the official JavaScript SDK (``@langchain/langgraph-sdk``) under Node.

``tests/js/sdk_flow.mjs`` runs against the API served by uvicorn: a thread, a streamed
multi-turn conversation with a real retail customer, state and history, the consent interrupt
approved with ``command.resume``, a cancelled run, a bank thread it must not see, and a widget
key's thread run with its visitor token as the client's default header (404 without it). The SDK is
pinned in ``tests/js/package-lock.json``; ``make test`` runs ``npm ci`` there when needed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from support_agent.infra.locks import ThreadLocks
from support_agent.services import Services
from support_agent.tenancy import create_api_key
from support_agent.threads import thread_id as checkpoint_thread
from tests.conftest import customer_with, order_status

JS = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")
#: Without Node these tests fail, unless ``SUPPORT_AGENT_ALLOW_SKIP=1`` says to skip them.
pytestmark = pytest.mark.skipif(
    NODE is None and os.environ.get("SUPPORT_AGENT_ALLOW_SKIP") == "1",
    reason="node is not installed (SUPPORT_AGENT_ALLOW_SKIP=1)",
)


async def _ensure_sdk() -> None:
    """Install the pinned SDK (``npm ci``) when ``tests/js/node_modules`` is missing."""
    if (JS / "node_modules" / "@langchain" / "langgraph-sdk").exists():
        return
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed to install @langchain/langgraph-sdk"
    proc = await asyncio.create_subprocess_exec(
        npm, "ci", "--no-audit", "--no-fund", cwd=JS,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def test_official_js_sdk(served: tuple[str, Any], services: Services) -> None:
    assert NODE is not None, "node is needed for the JS SDK test (apt-get install nodejs)"
    await _ensure_sdk()
    base, _ = served
    key = await create_api_key(services, "retail")
    widget_key = await create_api_key(services, "retail", "widget")
    cust = await customer_with(services, "pending")
    order_id = str(cust["order_id"])
    blocked = f"js-{uuid.uuid4().hex}"
    bank_key = await create_api_key(services, "bank")
    async with services.pool.connection() as conn:
        bank_thread = str(uuid.uuid4())
        await conn.execute(
            "INSERT INTO graph_threads (tenant_id, thread_id) VALUES ('bank', %s)", (bank_thread,)
        )
    assert bank_key  # the bank thread belongs to a tenant with its own keys
    env = {**os.environ, "API_URL": base, "API_KEY": key, "EMAIL": str(cust["email"]),
           "ZIP": str(cust["zip"]),
           "ORDER_ID": order_id, "BLOCKED_THREAD": blocked,
           "OTHER_TENANT_THREAD": bank_thread, "WIDGET_KEY": widget_key}  # fmt: skip
    env.pop("LANGSMITH_API_KEY", None)
    env.pop("LANGGRAPH_API_KEY", None)
    other = ThreadLocks(services.locks._conninfo, wait_s=5)  # noqa: SLF001 - another process
    try:
        async with other.hold(checkpoint_thread("retail", blocked)):  # the run on it must wait
            proc = await asyncio.create_subprocess_exec(
                str(NODE), str(JS / "sdk_flow.mjs"), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=300)
    finally:
        await other.close()
    assert proc.returncode == 0, stderr.decode()
    out = json.loads(stdout.decode().strip().splitlines()[-1])

    assert {"metadata", "values", "updates", "messages"} <= set(out["first_events"]), out
    assert out["first_reply"] in out["streamed_ai"]
    assert cust["first_name"] in out["first_reply"]  # identified: greeted by name
    assert out["interrupt"]["name"] == "cancel_order"
    assert out["interrupt"]["args"]["target_id"] == order_id
    assert out["state_next"] and out["state_interrupts"] == 1
    assert out["history_length"] >= 2 and out["history_thread_ids"] == [out["thread_id"]]
    assert out["thread_metadata"]["graph_id"] == "support_agent"
    assert out["thread_metadata"]["source"] == "js-sdk"
    assert out["approved_interrupt"] is None
    assert "cancelled" in out["approved_reply"].lower()
    assert await order_status(services, order_id) == "cancelled"
    assert out["cancelled_status"] == "interrupted"
    assert out["blocked_messages"] == 0  # the cancelled run wrote nothing
    assert out["other_tenant"] == 404
    # a widget key's thread, with its visitor token as the SDK's default header
    assert out["widget_token_issued"] is True
    assert out["widget_reply"] and out["widget_state_messages"] == 2
    assert out["widget_without_token"] == 404  # the thread is the visitor's alone
