"""The product's promise: a customer never repeats themselves, across channels and restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support_agent.conversation import Agent
from support_agent.services import Services
from tests.conftest import customer_with, end_and_remember, new_session, proof, say


async def test_two_sessions_two_channels(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered")
    name = f"{cust['first_name']} {cust['last_name']}"
    chat = new_session()
    await say(agent, chat, f"Hi, I'm {name}, zip {cust['zip']}.")
    proposal = await say(agent, chat, f"The {cust['item']} I received arrived broken.")
    assert proposal.decision == "confirm"
    assert cust["order_id"] in proposal.reply
    assert await end_and_remember(agent, chat, reason="idle_timeout") >= 1

    phone = new_session()
    hello = await say(
        agent, phone, f"Hello, this is {name}, zip code {cust['zip']}.", channel="phone"
    )
    assert hello.memory["open_issue"]["order_id"] == cust["order_id"]
    # The four layers, updated by the memory pipeline after session 1.
    assert "chat" in hello.memory["l1_identity"]["channels"]
    assert hello.memory["l2_history"]["totalConversations"] == 1
    assert hello.memory["l2_history"]["churnRisk"] == pytest.approx(0.1 + 0.25, abs=1e-3)
    assert hello.memory["l4_prefs_mood"]["openIssues"]
    assert any(
        p["status"] == "pending" and cust["order_id"] in p["text"]
        for p in hello.memory["l4_prefs_mood"]["promises"]
    )
    assert chat in hello.memory["episodes"]
    update = await say(agent, phone, "Any update?", channel="phone")
    assert cust["order_id"] in update.reply
    assert str(cust["item"]) in update.reply
    assert update.decision == "respond"
    assert update.policy["action"] == "follow_up_open_issue"
    assert "which order" not in update.reply.lower()


def _cli(args: list[str], env: dict[str, str]) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "support_agent.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


async def test_session_resumes_after_a_process_restart(
    services: Services, data_dir: Path, agent: Agent
) -> None:
    cust = await customer_with(services, "delivered")
    session = new_session()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": str(services.embedded.database_url),
        "REDIS_URL": str(services.embedded.redis_url),
        "LOG_LEVEL": "WARNING",
    }
    first = _cli(["chat", proof(cust), "--session-id", session], env)
    assert first["customer_id"] == cust["id"]
    # A new process continues the same thread: no need to identify again.
    second = _cli(["chat", f"where is order {cust['order_id']}?", "--session-id", session], env)
    assert second["customer_id"] == cust["id"]
    assert second["decision"] == "respond"
    assert cust["order_id"] in str(second["reply"]) and "delivered" in str(second["reply"])
    state = (
        await agent.graph.aget_state({"configurable": {"thread_id": f"retail:{session}"}})
    ).values
    assert state["turn"] == 2
    assert len(state["messages"]) == 4
