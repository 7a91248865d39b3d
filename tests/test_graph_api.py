"""The graph endpoint (a LangGraph API subset) with the official Python ``langgraph-sdk`` client.

Against the API served by uvicorn (real PostgreSQL and Redis): a thread, a streamed multi-turn
conversation with a real retail customer, state and history, the consent interrupt approved
with ``command.resume``, a cancelled run; then tenancy (a retail key never reaches a bank
thread), widget keys (chat only, public state only) and CORS.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from langgraph_sdk import get_client

from support_agent.conversation import Agent
from support_agent.infra.locks import ThreadLocks
from support_agent.services import Services
from support_agent.tenancy import create_api_key
from support_agent.threads import thread_id as checkpoint_thread
from tests.conftest import WIDGET_ORIGIN, WIDGET_SECRET_ENV, customer_with, order_status, proof

ALL_MODES = ["values", "updates", "messages-tuple", "custom"]


def _user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def _stream(client: Any, thread: str, **kwargs: Any) -> list[tuple[str, Any]]:
    return [
        (part.event, part.data)
        async for part in client.runs.stream(thread, "support_agent", **kwargs)
    ]


def _last_ai(values: dict[str, Any]) -> str:
    ai = [m for m in values["messages"] if m["type"] == "ai"]
    assert ai, values["messages"]
    return str(ai[-1]["content"])


async def test_python_sdk_conversation_interrupt_and_cancel(
    served: tuple[str, Any], services: Services
) -> None:
    base, _ = served
    key = await create_api_key(services, "retail")
    client = get_client(url=base, api_key=key)
    cust = await customer_with(services, "pending")
    order_id = str(cust["order_id"])

    thread = await client.threads.create(metadata={"source": "sdk-test"})
    tid = thread["thread_id"]
    assert thread["status"] == "idle" and thread["values"] == {}

    # Turn 1: the customer identifies by email; every event kind the client asked for arrives.
    events = await _stream(client, tid, input=_user(f"hi, {proof(cust)}"), stream_mode=ALL_MODES)
    kinds = [e for e, _ in events]
    assert kinds[0] == "metadata" and kinds[-1] == "end", kinds
    run_id = events[0][1]["run_id"]
    assert events[-1][1] == {"run_id": run_id, "status": "success"}
    assert {"values", "updates", "messages"} <= set(kinds), kinds
    values = [d for e, d in events if e == "values"][-1]
    assert values["authenticated"] is True and values["customer_id"] == cust["id"]
    reply = _last_ai(values)
    streamed = [d for e, d in events if e == "messages"]
    assert any(m["type"] == "ai" and m["content"] == reply for m, _ in streamed), streamed
    updated = {node for e, d in events if e == "updates" for node in d}
    assert {"identify", "load_360", "respond_or_escalate", "write_memory"} <= updated

    # agent-chat-ui relies on graph_id / assistant_id in the thread's metadata
    meta = (await client.threads.get(tid))["metadata"]
    assert meta["graph_id"] == "support_agent" and meta["assistant_id"] and meta["source"]

    # Turn 2: a write is proposed and the run stops for consent (values.__interrupt__).
    events = await _stream(
        client, tid, input=_user(f"please cancel order {order_id}, I ordered it by mistake")
    )
    last = [d for e, d in events if e == "values"][-1]
    request = last["__interrupt__"][0]["value"]["action_requests"][0]
    assert request["name"] == "cancel_order" and request["args"]["target_id"] == order_id
    assert await order_status(services, order_id) == "pending"  # nothing done without a yes
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted" and thread["interrupts"], thread

    state = await client.threads.get_state(tid)
    assert state["next"] and state["tasks"][0]["interrupts"], state
    assert state["checkpoint"]["thread_id"] == tid
    history = await client.threads.get_history(tid, limit=50)
    assert len(history) >= 2 and all(h["checkpoint"]["thread_id"] == tid for h in history)
    assert history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]

    # The approval button: command.resume with the reviewer's decision executes the write once.
    approved = await client.runs.wait(
        tid, "support_agent", command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    assert await order_status(services, order_id) == "cancelled"
    assert "__interrupt__" not in approved
    assert "cancel" in _last_ai(approved).lower()
    with pytest.raises(httpx.HTTPStatusError) as nothing:  # nothing awaits an answer any more
        await client.runs.wait(tid, "support_agent", command={"resume": {"decisions": []}})
    assert nothing.value.response.status_code == 409
    assert (await client.threads.get(tid))["status"] == "idle"

    # Cancel: a run waiting for the session (held by another process) is cancelled; nothing
    # is written and the thread is as it was.
    before = len((await client.threads.get_state(tid))["values"]["messages"])
    other = ThreadLocks(services.locks._conninfo, wait_s=5)  # noqa: SLF001 - another process
    try:
        async with other.hold(checkpoint_thread("retail", tid)):
            stream = client.runs.stream(tid, "support_agent", input=_user("where is my refund?"))
            first = await anext(stream)
            assert first.event == "metadata"
            cancelled_id = first.data["run_id"]
            await client.runs.cancel(tid, cancelled_id)
            rest = [(p.event, p.data) async for p in stream]
    finally:
        await other.close()
    assert ("end", {"run_id": cancelled_id, "status": "interrupted"}) in rest, rest
    assert any(e == "error" for e, _ in rest), rest
    assert (await client.runs.get(tid, cancelled_id))["status"] == "interrupted"
    after = (await client.threads.get_state(tid))["values"]["messages"]
    assert len(after) == before

    # The thread is found by its metadata; deleting it ends the session (memory job queued).
    found = await client.threads.search(metadata={"source": "sdk-test"}, limit=100)
    assert tid in {t["thread_id"] for t in found}
    await client.threads.delete(tid)
    with pytest.raises(httpx.HTTPStatusError) as gone:
        await client.threads.get(tid)
    assert gone.value.response.status_code == 404
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT status FROM interactions WHERE tenant_id = 'retail' AND id = %s", (tid,)
            )
        ).fetchone()
    assert row is not None and row["status"] == "ended"


async def test_join_stream_replays_after_last_event_id(
    served: tuple[str, Any], services: Services
) -> None:
    """A client that dropped its stream rejoins and gets exactly the events it missed."""
    base, _ = served
    key = await create_api_key(services, "retail")
    client = get_client(url=base, api_key=key)
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "support_agent", input=_user("hello"))
    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": key}) as http:
        url = f"/threads/{tid}/runs/{run['run_id']}/stream"
        full = await http.get(url)
        ids = [int(line[4:]) for line in full.text.splitlines() if line.startswith("id: ")]
        assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 3
        rest = await http.get(url, headers={"Last-Event-ID": "2"})
        rest_ids = [int(line[4:]) for line in rest.text.splitlines() if line.startswith("id: ")]
        assert rest_ids == ids[2:]
    joined = await client.runs.join(tid, run["run_id"])
    assert _last_ai(joined)


async def test_a_run_of_another_process_is_waited_for_and_never_falsely_cancelled(
    served: tuple[str, Any], services: Services
) -> None:
    """A run recorded by another API process (its events live there): ``join`` waits for its
    recorded end instead of answering with the state before it, and ``cancel`` answers 409
    instead of a 202 for a cancel that did not happen."""
    base, _ = served
    key = await create_api_key(services, "retail")
    client = get_client(url=base, api_key=key)
    tid = (await client.threads.create())["thread_id"]
    done = await client.runs.wait(tid, "support_agent", input=_user("hello"))
    run_id = str(uuid.uuid4())
    async with services.pool.connection() as conn:  # as the other process records its run
        await conn.execute(
            "INSERT INTO graph_runs (run_id, tenant_id, thread_id, assistant_id)"
            " VALUES (%s, 'retail', %s, 'support_agent')",
            (run_id, tid),
        )
    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": key}, timeout=30) as http:
        cancel = await http.post(f"/threads/{tid}/runs/{run_id}/cancel")
        assert cancel.status_code == 409 and "not cancelled" in cancel.text, cancel.text
        stream = await http.get(f"/threads/{tid}/runs/{run_id}/stream")
        assert stream.status_code == 409, stream.text
        join = asyncio.create_task(http.get(f"/threads/{tid}/runs/{run_id}/join"))
        await asyncio.sleep(0.5)
        assert not join.done()  # still waiting for the other process
        async with services.pool.connection() as conn:
            await conn.execute(
                "UPDATE graph_runs SET status = 'success' WHERE run_id = %s", (run_id,)
            )
        joined = await join
        assert joined.status_code == 200, joined.text
        assert _last_ai(joined.json()) == _last_ai(done)
        ended = await http.post(f"/threads/{tid}/runs/{run_id}/cancel")
        assert ended.status_code == 202  # a finished run: nothing left to cancel


async def test_tenants_never_reach_each_other_threads(
    served: tuple[str, Any], services: Services
) -> None:
    base, _ = served
    bank = get_client(url=base, api_key=await create_api_key(services, "bank"))
    retail_key = await create_api_key(services, "retail")
    retail = get_client(url=base, api_key=retail_key)
    tid = (await bank.threads.create(metadata={"owner": "bank"}))["thread_id"]
    run = await bank.runs.create(tid, "support_agent", input=_user("hello"))
    await bank.runs.join(tid, run["run_id"])
    calls = [
        retail.threads.get(tid),
        retail.threads.get_state(tid),
        retail.threads.get_history(tid),
        retail.runs.wait(tid, "support_agent", input=_user("show me everything")),
        retail.runs.wait(tid, "support_agent", command={"resume": {"message": "yes"}}),
        retail.runs.get(tid, run["run_id"]),
        retail.runs.join(tid, run["run_id"]),
        retail.runs.cancel(tid, run["run_id"]),
        retail.threads.delete(tid),
    ]
    for call in calls:
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await call
        assert refused.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as refused:
        async for _ in retail.runs.stream(tid, "support_agent", input=_user("hi")):
            pass
    assert refused.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as refused:
        async for _ in retail.runs.join_stream(tid, run["run_id"]):
            pass
    assert refused.value.response.status_code == 404
    listed = await retail.threads.search(metadata={"owner": "bank"})
    assert listed == []
    assert (await bank.threads.get(tid))["metadata"]["owner"] == "bank"  # untouched


async def test_widget_key_is_chat_only_with_public_state(
    served: tuple[str, Any], services: Services
) -> None:
    base, _ = served
    widget = await create_api_key(services, "retail", "widget")
    cust = await customer_with(services, "delivered", fresh=False)
    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": widget}) as http:
        for method, path in [
            ("GET", "/api/tenants/me/customers"),
            ("GET", f"/api/tenants/me/customers/{cust['id']}"),
            ("GET", "/api/tenants/me/handoffs"),
            ("POST", "/threads/search"),
        ]:
            r = await http.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"]["code"] == "FORBIDDEN"
        r = await http.post(
            "/v1/chat", json={"message": "hi", "customer": {"email": cust["email"]}}
        )
        assert r.status_code == 403, r.text  # nor on /v1/chat
        created = (await http.post("/threads", json={})).json()
        tid = created["thread_id"]
        http.headers["X-Visitor-Token"] = created["visitor_token"]  # the thread is this visitor's
        # a widget cannot claim an identity; it sends the site's signed token
        r = await http.post(
            f"/threads/{tid}/runs/wait",
            json={"assistant_id": "support_agent", "input": {**_user("hi"),
                  "identity": {"email": str(cust["email"])}}},
        )  # fmt: skip
        assert r.status_code == 403, r.text
        now = int(time.time())
        forged = jwt.encode({"sub": cust["id"], "aud": "retail", "iat": now, "exp": now + 60},
                            "x" * 32)  # fmt: skip
        r = await http.post(
            f"/threads/{tid}/runs/wait",
            json={"assistant_id": "support_agent", "input": _user("where is my order?"),
                  "context": {"customer_token": forged}},
        )  # fmt: skip
        assert r.status_code == 401, r.text
        token = jwt.encode(
            {"sub": cust["id"], "aud": "retail", "iat": now, "exp": now + 60},
            os.environ[WIDGET_SECRET_ENV],
        )
        r = await http.post(
            f"/threads/{tid}/runs/wait",
            json={"assistant_id": "support_agent", "input": _user("where is my order?"),
                  "context": {"customer_token": token, "channel": "web"}},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        values = r.json()
        assert set(values) <= {"messages", "decision", "awaiting_consent", "handoff",
                               "__interrupt__"}, set(values)  # fmt: skip
        assert "c360" not in str(values) and str(cust["email"]) not in str(values)
        state = (await http.get(f"/threads/{tid}/state")).json()
        assert set(state["values"]) <= set(values) | {"__interrupt__"}
        assert state["metadata"] == {}
    # the same thread seen with a server key: the customer was identified by the token
    async with httpx.AsyncClient(
        base_url=base,
        headers={"Authorization": f"Bearer {await create_api_key(services, 'retail')}"},
    ) as server:
        full = (await server.get(f"/threads/{tid}/state")).json()["values"]
        assert full["customer_id"] == cust["id"] and full["authenticated"] is True


async def test_cors_allows_only_the_tenants_origins(
    served: tuple[str, Any], services: Services
) -> None:
    base, _ = served
    widget = await create_api_key(services, "retail", "widget")
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-api-key"}  # fmt: skip
    async with httpx.AsyncClient(base_url=base) as http:
        ok = await http.options("/threads", headers={"Origin": WIDGET_ORIGIN, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == WIDGET_ORIGIN
        evil = "https://evil.example"
        bad = await http.options("/threads", headers={"Origin": evil, **preflight})
        assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
        r = await http.post("/threads", json={}, headers={"x-api-key": widget, "Origin": evil})
        assert r.status_code == 403, r.text
        r = await http.post("/threads", json={},
                            headers={"x-api-key": widget, "Origin": WIDGET_ORIGIN})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == WIDGET_ORIGIN
        assert "Content-Location" in r.headers["access-control-expose-headers"]


async def test_v1_chat_streams_with_event_stream(
    client: httpx.AsyncClient, agent: Agent, services: Services
) -> None:
    """``/v1/chat`` answers JSON, and server-sent events when asked for them."""
    cust = await customer_with(services, "delivered", fresh=False)
    body = {"message": f"hi, {proof(cust)}"}
    plain = await client.post("/v1/chat", json=body)
    assert plain.headers["content-type"].startswith("application/json")
    r = await client.post("/v1/chat", json=body, headers={"Accept": "text/event-stream"})
    assert r.headers["content-type"].startswith("text/event-stream"), r.headers
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "metadata" and events[-1] == "end" and "reply" in events, events
    await asyncio.sleep(0)


async def test_a_run_that_fails_answers_500_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a turn: ``runs/wait`` answers 500 ``INTERNAL_ERROR`` (not a conflict), the stream
    says ``error`` then ``end{status: error}``, and the thread keeps its awaited proposal."""
    tid = (await client.post("/threads", json={})).json()["thread_id"]
    cust = await customer_with(services, "pending")
    run = {"assistant_id": "support_agent", "input": _user(proof(cust))}
    assert (await client.post(f"/threads/{tid}/runs/wait", json=run)).status_code == 200
    cancel = _user(f"please cancel order {cust['order_id']}, I ordered it by mistake")
    proposed = await client.post(f"/threads/{tid}/runs/wait",
                                 json={**run, "input": cancel})  # fmt: skip
    assert proposed.json()["__interrupt__"]

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("the CRM write failed")

    monkeypatch.setattr("support_agent.nodes.write_memory.record_turn", broken)
    failed = await client.post(f"/threads/{tid}/runs/wait",
                               json={**run, "input": _user("where is it?")})  # fmt: skip
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "INTERNAL_ERROR"
    streamed = await client.post(f"/threads/{tid}/runs/stream",
                                 json={**run, "input": _user("where is it?")})  # fmt: skip
    events = [line[7:] for line in streamed.text.splitlines() if line.startswith("event: ")]
    assert events[-2:] == ["error", "end"] and '"status": "error"' in streamed.text
    monkeypatch.undo()
    thread = (await client.get(f"/threads/{tid}")).json()
    assert thread["status"] == "interrupted" and thread["values"]["__interrupt__"]
    assert await order_status(services, cust["order_id"]) == "pending"
