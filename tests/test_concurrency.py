"""One turn at a time per session: concurrent messages queue, none is lost, consent stays single.

Through the public API (in-process ASGI, real PostgreSQL and Redis), and across two lock holders
that share nothing but the database (two processes' ``ThreadLocks``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from support_agent.conversation import Agent
from support_agent.errors import TurnInProgressError
from support_agent.infra.locks import ThreadLocks
from support_agent.services import Services
from support_agent.threads import thread_id
from tests.conftest import customer_with, order_actions, order_status, proof, propose_cancel

QUESTIONS = [
    "where is my order?",
    "what is the status of my last order",
    "has my order shipped yet",
    "when will my package arrive",
    "can you check my order status please",
]


async def _transcript(services: Services, session_id: str) -> list[str]:
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT content FROM messages WHERE tenant_id = 'retail'"
                " AND interaction_id = %s AND role = 'customer' ORDER BY seq",
                (session_id,),
            )
        ).fetchall()
    return [str(r["content"]) for r in rows]


async def _checkpointed(agent: Agent, session_id: str) -> list[str]:
    config: Any = {"configurable": {"thread_id": thread_id("retail", session_id)}}
    state = await agent.graph.aget_state(config)
    return [str(m.content) for m in state.values.get("messages", []) if m.type == "human"]


async def test_five_messages_at_once_on_one_session_none_lost(
    client: httpx.AsyncClient, services: Services, agent: Agent
) -> None:
    cust = await customer_with(services, "pending")  # its own: 20 sessions change its history
    for trial in range(20):
        hello = await client.post("/v1/chat", json={"message": f"hi, {proof(cust)}"})
        assert hello.status_code == 200, hello.text
        session = hello.json()["session_id"]
        sent = [f"{q} ({trial}.{i})" for i, q in enumerate(QUESTIONS)]
        answers = await asyncio.gather(
            *(client.post("/v1/chat", json={"session_id": session, "message": m}) for m in sent)
        )
        assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
        assert all(a.json()["reply"] for a in answers)
        transcript = await _transcript(services, session)
        assert sorted(transcript[1:]) == sorted(sent), f"trial {trial}: transcript {transcript}"
        checkpoint = await _checkpointed(agent, session)
        assert sorted(checkpoint[1:]) == sorted(sent), f"trial {trial}: checkpoint {checkpoint}"
        end = await client.post(f"/v1/sessions/{session}/end")
        assert end.status_code == 200, end.text


@pytest.mark.parametrize("first", ["yes", "no"])
async def test_yes_and_no_at_once_exactly_one_takes_effect(
    client: httpx.AsyncClient, services: Services, first: str
) -> None:
    """Whichever answer reaches the session's lock first is read against the proposal; the other
    finds nothing waiting. Never both, and no reply claims what did not happen."""
    session, order_id = await propose_cancel(client, services)
    second = "no" if first == "yes" else "yes"
    a, b = await asyncio.gather(
        client.post("/v1/chat", json={"session_id": session, "message": first}),
        client.post("/v1/chat", json={"session_id": session, "message": second}),
    )
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    replies = {first: a.json(), second: b.json()}
    cancelled = await order_status(services, order_id) == "cancelled"
    if cancelled:  # the "yes" came first
        assert replies["yes"]["decision"] == "execute", replies
        assert replies["yes"]["reply"].startswith("Done"), replies
        assert "won't" not in replies["no"]["reply"], replies  # too late to decline: it is done
    else:  # the "no" came first
        assert "won't" in replies["no"]["reply"], replies
        assert replies["yes"]["decision"] != "execute", replies
        assert "Done" not in replies["yes"]["reply"], replies
    assert await order_actions(services, order_id) == (1 if cancelled else 0)


async def test_two_processes_lock_holders_exclude_each_other(settings: Any, services: Any) -> None:
    """Two ``ThreadLocks`` on one database (as two API processes have): the second waits."""
    url = services.locks._conninfo  # noqa: SLF001 - the same database the service uses
    one, two = ThreadLocks(url, wait_s=5), ThreadLocks(url, wait_s=0.3)
    try:
        async with one.hold("retail:lock-test"):
            started = time.monotonic()
            with pytest.raises(TurnInProgressError):
                async with two.hold("retail:lock-test"):
                    pytest.fail("the second holder got a held lock")
            assert time.monotonic() - started >= 0.25
            async with two.hold("retail:another-session"):  # other keys are free
                pass
        async with two.hold("retail:lock-test"):  # released: free for the other process
            pass
    finally:
        await one.close()
        await two.close()


async def test_a_busy_session_answers_409_with_retry_after(
    client: httpx.AsyncClient, services: Services
) -> None:
    hello = await client.post("/v1/chat", json={"message": "hi there"})
    session = hello.json()["session_id"]
    other = ThreadLocks(services.locks._conninfo, wait_s=5)  # noqa: SLF001 - another process
    waited = services.locks.wait_s
    services.locks.wait_s = 0.3
    try:
        async with other.hold(thread_id("retail", session)):
            r = await client.post("/v1/chat", json={"session_id": session, "message": "hello?"})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "TURN_IN_PROGRESS"
        assert r.headers["Retry-After"] == "1"
        assert await _transcript(services, session) == ["hi there"]  # nothing was written
        again = await client.post("/v1/chat", json={"session_id": session, "message": "hello?"})
        assert again.status_code == 200, again.text
    finally:
        services.locks.wait_s = waited
        await other.close()
