"""Threads owned by their visitor, limits per visitor, short-lived customer tokens (#26: 6, 7, 10).

With only the public widget key, as an attacker would: another visitor's thread id answers 404 on
every thread and run route, exactly as an id that does not exist; the owner (its visitor token)
keeps its thread; a token-verified thread runs only with its customer's token; ``/v1/chat``
session ids are server-issued and never turn into graph threads; a flood from one client address
leaves another visitor served; invalid keys are limited per address before the key lookup;
customer tokens need ``iat`` and at most an hour of life. Real PostgreSQL and Redis, no mocks.
"""

from __future__ import annotations

import ipaddress
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from langgraph_sdk import get_client
from starlette.requests import Request

from support_agent.api.app import create_app
from support_agent.api.ratelimit import client_address
from support_agent.conversation import Agent
from support_agent.services import Services
from support_agent.tenancy import create_api_key
from support_agent.verification.attempts import client_key
from tests.conftest import WIDGET_SECRET_ENV, customer_with

ASSISTANT = "support_agent"


def _user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def _address() -> str:
    """A client address of its own for each visitor (per-address counters stay apart)."""
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def _token(customer_id: str, *, life_s: float = 600, issued_in_s: float = 0, **claims: Any) -> str:
    """A customer token signed with retail's identity secret (``iat`` now, or ``issued_in_s``
    seconds from now, unless overridden)."""
    now = time.time() + issued_in_s
    payload = {"sub": customer_id, "aud": "retail", "iat": int(now), "exp": int(now + life_s)}
    payload.update(claims)
    claims = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(claims, os.environ[WIDGET_SECRET_ENV])


@pytest.fixture(scope="module")
async def app(agent: Agent) -> AsyncIterator[FastAPI]:
    """The API in process (its lifespan opened once for the module)."""
    api = create_app(agent=agent)
    async with api.router.lifespan_context(api):
        yield api


def _http(app: FastAPI, key: str, address: str | None = None, **headers: str) -> httpx.AsyncClient:
    """A client of ``app`` from ``address`` (the socket peer the API sees) with ``key``."""
    transport = httpx.ASGITransport(app=app, client=(address or _address(), 40000))
    return httpx.AsyncClient(
        transport=transport, base_url="http://test", headers={"x-api-key": key, **headers}
    )


@dataclass
class Victim:
    """A visitor's token-verified thread, with one finished run."""

    thread_id: str
    run_id: str
    visitor_token: str
    customer: dict[str, Any]
    customer_token: str
    messages: int


@pytest.fixture(scope="module")
async def widget_key(services: Services) -> str:
    return await create_api_key(services, "retail", "widget")


@pytest.fixture(scope="module")
async def server_key(services: Services) -> str:
    return await create_api_key(services, "retail")


@pytest.fixture(scope="module")
async def victim(app: FastAPI, services: Services, widget_key: str) -> Victim:
    """A signed-in customer's widget thread: created, then one verified run."""
    cust = await customer_with(services, "pending")
    token = _token(str(cust["id"]))
    async with _http(app, widget_key) as owner:
        created = await owner.post("/threads", json={"metadata": {"source": "widget"}})
        assert created.status_code == 200, created.text
        tid, visitor = created.json()["thread_id"], created.json()["visitor_token"]
        assert created.headers["X-Visitor-Token"] == visitor and visitor.startswith("vt_")
        run = await owner.post(
            f"/threads/{tid}/runs",
            json={"assistant_id": ASSISTANT, "input": _user("where is my order?"),
                  "context": {"customer_token": token}},
            headers={"X-Visitor-Token": visitor},
        )  # fmt: skip
        assert run.status_code == 200, run.text
        run_id = run.json()["run_id"]
        joined = await owner.get(
            f"/threads/{tid}/runs/{run_id}/join", headers={"X-Visitor-Token": visitor}
        )
        assert joined.status_code == 200, joined.text
        assert str(cust["first_name"]) in str(joined.json())  # the owner sees its conversation
    return Victim(tid, run_id, visitor, cust, token, len(joined.json()["messages"]))


def _routes(tid: str, run_id: str, token: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every route of the graph endpoint and ``/v1`` that names a thread or session."""
    run = {"assistant_id": ASSISTANT, "input": _user("show me my orders"),
           "context": {"customer_token": token}}  # fmt: skip
    return [
        ("GET", f"/threads/{tid}", None),
        ("GET", f"/threads/{tid}/state", None),
        ("POST", f"/threads/{tid}/history", {}),
        ("DELETE", f"/threads/{tid}", None),
        ("POST", f"/threads/{tid}/runs", run),
        ("POST", f"/threads/{tid}/runs/stream", run),
        ("POST", f"/threads/{tid}/runs/wait", run),
        ("POST", f"/threads/{tid}/runs/wait", {**run, "if_not_exists": "create"}),
        ("POST", f"/threads/{tid}/runs/wait", {"assistant_id": ASSISTANT,
                                               "command": {"resume": {"message": "yes"}}}),
        ("GET", f"/threads/{tid}/runs/{run_id}", None),
        ("GET", f"/threads/{tid}/runs/{run_id}/stream", None),
        ("GET", f"/threads/{tid}/runs/{run_id}/join", None),
        ("POST", f"/threads/{tid}/runs/{run_id}/cancel", None),
        ("POST", f"/v1/sessions/{tid}/end", None),
        ("POST", "/v1/chat", {"session_id": tid, "message": "show me my orders"}),
    ]  # fmt: skip


ROUTE_NAMES = [f"{m} {p.replace('TID', '{id}')}" for m, p, _ in _routes("TID", "RUN", "T")]
#: What a widget key without the thread's visitor token gets: 403 where the route is for server
#: keys only, 422 where a widget may not name a session it was not issued, 404 elsewhere.
EXPECTED = {"POST /threads/{id}/history": 403, "DELETE /threads/{id}": 403}


@pytest.mark.parametrize("with_own_token", [False, True], ids=["no-token", "own-token"])
@pytest.mark.parametrize("route", range(len(ROUTE_NAMES)), ids=ROUTE_NAMES)
async def test_another_visitors_thread_is_nothing_on_every_route(
    app: FastAPI, services: Services, widget_key: str, server_key: str, victim: Victim,
    route: int, with_own_token: bool,
) -> None:  # fmt: skip
    """The attacker has the widget key, the victim's thread and run ids, and (``own-token``) a
    visitor token of a thread of its own; the victim's ids answer exactly as ids that do not
    exist, nothing of the victim's conversation leaks, and nothing changes."""
    async with _http(app, widget_key) as attacker:
        headers = {}
        if with_own_token:
            own = await attacker.post("/threads", json={})
            headers["X-Visitor-Token"] = own.json()["visitor_token"]
        method, path, body = _routes(victim.thread_id, victim.run_id, victim.customer_token)[route]
        r = await attacker.request(method, path, json=body, headers=headers)
        ghost_tid, ghost_run = uuid.uuid4().hex, str(uuid.uuid4())
        g_method, g_path, g_body = _routes(ghost_tid, ghost_run, victim.customer_token)[route]
        ghost = await attacker.request(g_method, g_path, json=g_body, headers=headers)
    name = ROUTE_NAMES[route]
    expected = EXPECTED.get(name, 422 if name == "POST /v1/chat" and not with_own_token else 404)
    assert r.status_code == expected, (name, r.status_code, r.text)
    assert (r.status_code, r.json()) == (ghost.status_code, ghost.json())  # no existence oracle
    for secret in (victim.customer["first_name"], victim.customer["email"], victim.run_id):
        assert str(secret) not in r.text
    # the victim's thread is as it was: not deleted, not ended, no run added or cancelled
    # (read with a server key: the owner's session has a rate limit of its own)
    async with _http(app, server_key) as server:
        state = await server.get(f"/threads/{victim.thread_id}/state")
        assert state.status_code == 200, state.text
        assert len(state.json()["values"]["messages"]) == victim.messages
        got = await server.get(f"/threads/{victim.thread_id}/runs/{victim.run_id}")
        assert got.json()["status"] == "success"
    async with services.pool.connection() as conn:
        runs = await (
            await conn.execute(
                "SELECT count(*) AS n FROM graph_runs WHERE tenant_id = 'retail'"
                " AND thread_id = %s",
                (victim.thread_id,),
            )
        ).fetchone()
        ended = await (
            await conn.execute(
                "SELECT status FROM interactions WHERE tenant_id = 'retail' AND id = %s",
                (victim.thread_id,),
            )
        ).fetchone()
    assert runs is not None and runs["n"] == 1
    assert ended is not None and ended["status"] == "open"


async def test_the_owner_keeps_its_thread_with_the_python_sdk(
    served: tuple[str, Any], services: Services
) -> None:
    """The official SDK sends the visitor token as a default header; without it, 404."""
    base, _ = served
    widget = await create_api_key(services, "retail", "widget")
    anonymous = get_client(url=base, api_key=widget)
    thread = await anonymous.threads.create()
    token = thread["visitor_token"]  # type: ignore[typeddict-item]
    owner = get_client(url=base, api_key=widget, headers={"X-Visitor-Token": token})
    tid = thread["thread_id"]
    parts = [
        p.event
        async for p in owner.runs.stream(tid, ASSISTANT, input=_user("hello"),
                                         stream_mode=["values", "messages-tuple"])
    ]  # fmt: skip
    assert parts[0] == "metadata" and parts[-1] == "end" and "values" in parts, parts
    done = await owner.runs.wait(tid, ASSISTANT, input=_user("what can you help with?"))
    assert [m for m in done["messages"] if m["type"] == "ai"]  # type: ignore[index,call-overload]
    state = await owner.threads.get_state(tid)
    assert len(state["values"]["messages"]) == 4  # type: ignore[call-overload]
    with pytest.raises(httpx.HTTPStatusError) as hidden:
        await anonymous.threads.get_state(tid)
    assert hidden.value.response.status_code == 404


async def test_a_verified_thread_runs_only_with_its_customers_token(
    app: FastAPI, services: Services, widget_key: str
) -> None:
    """Once a run was verified by a customer token, every run needs a token of that customer."""
    cust = await customer_with(services, "pending")
    other = await customer_with(services, "pending")
    token = _token(str(cust["id"]))
    async with _http(app, widget_key) as http:
        created = (await http.post("/threads", json={})).json()
        tid, visitor = created["thread_id"], created["visitor_token"]
        http.headers["X-Visitor-Token"] = visitor
        url = f"/threads/{tid}/runs/wait"
        first = await http.post(url, json={"assistant_id": ASSISTANT, "input": _user("hi"),
                                           "context": {"customer_token": token}})  # fmt: skip
        assert first.status_code == 200, first.text
        order = f"please cancel order {cust['order_id']}, I ordered it by mistake"
        bare = {"assistant_id": ASSISTANT, "input": _user(order)}
        refused = await http.post(url, json=bare)
        assert refused.status_code == 401, refused.text
        assert "customer token" in refused.json()["error"]["message"]
        resume = {"assistant_id": ASSISTANT, "command": {"resume": {"message": "yes"}}}
        assert (await http.post(url, json=resume)).status_code == 401
        streamed = await http.post(f"/threads/{tid}/runs/stream", json=bare)
        assert streamed.status_code == 401, streamed.text
        stranger = _token(str(other["id"]))
        swapped = await http.post(url, json={**bare, "context": {"customer_token": stranger}})
        assert swapped.status_code == 403, swapped.text
        ok = await http.post(url, json={**bare, "context": {"customer_token": token}})
        assert ok.status_code == 200, ok.text
        assert ok.json()["__interrupt__"], ok.json()  # the customer's own order, proposed
    async with services.pool.connection() as conn:
        n = await (
            await conn.execute(
                "SELECT count(*) AS n FROM graph_runs WHERE tenant_id = 'retail'"
                " AND thread_id = %s",
                (tid,),
            )
        ).fetchone()
    assert n is not None and n["n"] == 2  # the refused runs never started


async def test_a_chat_session_never_becomes_a_graph_thread(
    app: FastAPI, services: Services, widget_key: str
) -> None:
    """A ``/v1/chat`` session id (a phone call's, or a widget's) is refused as a thread id, by
    ``POST /threads`` and by ``if_not_exists=create``, even for a secret key."""
    secret = await create_api_key(services, "retail")
    cust = await customer_with(services, "delivered", fresh=False)
    async with _http(app, secret) as server, _http(app, widget_key) as widget:
        phone = await server.post(
            "/v1/chat", json={"channel": "phone", "message": f"my email is {cust['email']}"}
        )
        assert phone.status_code == 200, phone.text
        web = await widget.post("/v1/chat", json={"message": "hello"})
        assert web.status_code == 200, web.text
        for session in (phone.json()["session_id"], web.json()["session_id"]):
            for body in ({"thread_id": session}, {"thread_id": session, "if_exists": "do_nothing"}):
                r = await server.post("/threads", json=body)
                assert r.status_code == 409, r.text
                assert r.json()["error"]["code"] == "CONFLICT"
            run = {"assistant_id": ASSISTANT, "input": _user("what did I say?"),
                   "if_not_exists": "create"}  # fmt: skip
            r = await server.post(f"/threads/{session}/runs/wait", json=run)
            assert r.status_code == 409, r.text
            assert (await server.get(f"/threads/{session}/state")).status_code == 404
            # nor can a widget key name it
            r = await widget.post("/threads", json={"thread_id": session})
            assert r.status_code == 422, r.text
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM graph_threads WHERE tenant_id = 'retail'"
                " AND thread_id = ANY(%s)",
                ([phone.json()["session_id"], web.json()["session_id"]],),
            )
        ).fetchone()
    assert row is not None and row["n"] == 0


async def test_widget_session_ids_are_server_issued_and_owned(
    app: FastAPI, services: Services, widget_key: str
) -> None:
    """``/v1/chat`` with a widget key: a chosen session id is refused (nothing is created); a
    new session comes with its visitor token, which alone continues and ends it."""
    async with _http(app, widget_key) as http:
        chosen = await http.post("/v1/chat", json={"session_id": "sec-r1", "message": "hi"})
        assert chosen.status_code == 422, chosen.text
        assert "session_id" in chosen.json()["error"]["message"]
        thread = await http.post("/threads", json={"thread_id": "sec-r2"})
        assert thread.status_code == 422, thread.text
        start = await http.post("/v1/chat", json={"message": "hello"})
        assert start.status_code == 200, start.text
        session, visitor = start.json()["session_id"], start.json()["visitor_token"]
        assert start.headers["X-Visitor-Token"] == visitor
        own = {"X-Visitor-Token": visitor}
        cont = await http.post(
            "/v1/chat", json={"session_id": session, "message": "what can you do?"}, headers=own
        )
        assert cont.status_code == 200 and cont.json()["session_id"] == session, cont.text
        assert "visitor_token" not in cont.json()  # shown once, when the session starts
        other = (await http.post("/v1/chat", json={"message": "hi"})).json()["visitor_token"]
        body = {"session_id": session, "message": "and my orders?"}
        assert (await http.post("/v1/chat", json=body)).status_code == 422
        r = await http.post("/v1/chat", json=body, headers={"X-Visitor-Token": other})
        assert r.status_code == 404, r.text
        r = await http.post(f"/v1/sessions/{session}/end", headers={"X-Visitor-Token": other})
        assert r.status_code == 404, r.text
        streamed = await http.post(
            "/v1/chat", json={"message": "hi"}, headers={"Accept": "text/event-stream"}
        )
        assert '"visitor_token": "vt_' in streamed.text
        assert streamed.headers["X-Visitor-Token"] in streamed.text
        ended = await http.post(f"/v1/sessions/{session}/end", headers=own)
        assert ended.status_code == 200, ended.text
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id FROM interactions WHERE tenant_id = 'retail'"
                " AND id IN ('sec-r1', 'sec-r2')"
            )
        ).fetchall()
        stored = await (
            await conn.execute(
                "SELECT visitor_hash FROM visitor_bindings WHERE session_id = %s", (session,)
            )
        ).fetchone()
    assert rows == []
    assert stored is not None and visitor not in str(stored)  # only the hash is kept


@pytest.fixture
def limits(services: Services, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set limits for an app created after this (the limiter reads the services' settings)."""

    def apply(**update: Any) -> None:
        monkeypatch.setattr(services, "settings", services.settings.model_copy(update=update))

    return apply


async def test_a_flood_from_one_address_leaves_another_visitor_served(
    agent: Agent, services: Services, limits: Any
) -> None:
    """One address sends 40 requests with the widget key: 5 pass, the rest get 429, and the
    key's tenant budget (here 20 a minute) is not spent by the refused ones: another visitor
    still starts a conversation and is answered."""
    limits(visitor_rate_limit="5/minute", rate_limit="20/minute")
    widget = await create_api_key(services, "retail", "widget")
    app = create_app(agent=agent)
    async with app.router.lifespan_context(app):
        async with _http(app, widget, _address()) as flood:
            answers = [(await flood.post("/assistants/search", json={})) for _ in range(40)]
        codes = [r.status_code for r in answers]
        assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}, codes
        refused = answers[-1]
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "client address" in refused.json()["error"]["message"]
        # a page of a foreign origin with the key is refused (403) and counted all the same
        async with _http(app, widget, _address(), Origin="https://evil.example") as foreign:
            codes = [(await foreign.post("/assistants/search", json={})).status_code
                     for _ in range(7)]  # fmt: skip
        assert codes == [403] * 5 + [429] * 2, codes
        async with _http(app, widget, _address()) as visitor:
            created = await visitor.post("/threads", json={})
            assert created.status_code == 200, created.text
            visitor.headers["X-Visitor-Token"] = created.json()["visitor_token"]
            tid = created.json()["thread_id"]
            run = {"assistant_id": ASSISTANT, "input": _user("hello")}
            r = await visitor.post(f"/threads/{tid}/runs/wait", json=run)
            assert r.status_code == 200, r.text


async def test_one_session_is_limited_apart_from_its_address(
    agent: Agent, services: Services, limits: Any
) -> None:
    """A visitor hammering one session is stopped there; a new session from the same address
    is served."""
    limits(session_rate_limit="3/minute")
    widget = await create_api_key(services, "retail", "widget")
    app = create_app(agent=agent)
    async with app.router.lifespan_context(app), _http(app, widget) as http:
        created = (await http.post("/threads", json={})).json()
        own = {"X-Visitor-Token": created["visitor_token"]}
        url = f"/threads/{created['thread_id']}/state"
        codes = [(await http.get(url, headers=own)).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429], codes
        fresh = (await http.post("/threads", json={})).json()
        r = await http.get(f"/threads/{fresh['thread_id']}/state",
                           headers={"X-Visitor-Token": fresh["visitor_token"]})  # fmt: skip
        assert r.status_code == 200, r.text


async def test_behind_trusted_proxies_the_forwarded_address_is_the_visitor(
    agent: Agent, services: Services, limits: Any
) -> None:
    """Behind a trusted proxy each forwarded address has its own count (a spoofed left-most
    entry changes nothing); without trusted proxies ``X-Forwarded-For`` is ignored, so rotating
    it does not escape the limit."""
    limits(visitor_rate_limit="3/minute", trusted_proxies=["127.0.0.1/32"])
    widget = await create_api_key(services, "retail", "widget")
    app = create_app(agent=agent)
    attacker, other = _address(), _address()
    async with app.router.lifespan_context(app), _http(app, widget, "127.0.0.1") as proxy:
        codes = [
            (await proxy.post("/assistants/search", json={},
                              headers={"X-Forwarded-For": f"{_address()}, {attacker}"})).status_code
            for _ in range(5)
        ]  # fmt: skip
        assert codes == [200, 200, 200, 429, 429], codes
        served = await proxy.post("/assistants/search", json={},
                                  headers={"X-Forwarded-For": other})  # fmt: skip
        assert served.status_code == 200, served.text
    limits(visitor_rate_limit="3/minute", trusted_proxies=[])
    app = create_app(agent=agent)
    async with app.router.lifespan_context(app), _http(app, widget) as direct:
        codes = [
            (await direct.post("/assistants/search", json={},
                               headers={"X-Forwarded-For": _address()})).status_code
            for _ in range(5)
        ]  # fmt: skip
        assert codes == [200, 200, 200, 429, 429], codes


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", [], "203.0.113.9"),  # no proxies: the header is ignored
        ("203.0.113.9", "1.2.3.4", ["127.0.0.1/32"], "203.0.113.9"),  # peer not a proxy
        ("127.0.0.1", "9.9.9.9, 1.2.3.4", ["127.0.0.1/32"], "1.2.3.4"),  # right-most untrusted
        ("127.0.0.1", "1.2.3.4, 10.0.0.7", ["127.0.0.1/32", "10.0.0.0/8"], "1.2.3.4"),
        ("127.0.0.1", "10.0.0.8, 10.0.0.7", ["127.0.0.1/32", "10.0.0.0/8"], "10.0.0.8"),
        ("127.0.0.1", None, ["127.0.0.1/32"], "127.0.0.1"),
        ("::ffff:127.0.0.1", "[2001:db8::1]", ["127.0.0.1/32"], "2001:db8::1"),
    ],
)
def test_client_address(
    peer: str, forwarded: str | None, trusted: list[str], expected: str
) -> None:
    nets = [ipaddress.ip_network(t) for t in trusted]
    assert client_address(_request(peer, forwarded), nets) == expected


async def test_invalid_keys_are_limited_per_address_before_the_lookup(
    agent: Agent, services: Services, limits: Any
) -> None:
    """Five wrong keys from one address, then 429 for that address (a valid key too: nothing is
    looked up until the window passes); another address still gets its 401s."""
    limits(auth_failure_rate_limit="5/minute")
    valid = await create_api_key(services, "retail", "widget")
    app = create_app(agent=agent)
    guesser = _address()
    async with app.router.lifespan_context(app):
        async with _http(app, "pk_" + "x" * 43, guesser) as http:
            codes = [(await http.post("/assistants/search", json={})).status_code
                     for _ in range(8)]  # fmt: skip
            assert codes == [401] * 5 + [429] * 3, codes
            missing = await http.post("/assistants/search", json={}, headers={"x-api-key": ""})
            assert missing.status_code == 429
            r = await http.post("/assistants/search", json={}, headers={"x-api-key": valid})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        async with _http(app, "pk_" + "y" * 43) as elsewhere:
            assert (await elsewhere.post("/assistants/search", json={})).status_code == 401
        async with _http(app, valid) as fine:
            assert (await fine.post("/assistants/search", json={})).status_code == 200


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({}, True),
        ({"iat": None}, False),  # no iat
        ({"life_s": 7200}, False),  # longer than an hour
        ({"exp": 4102444800}, False),  # exp in 2100
        ({"issued_in_s": 600, "life_s": 300}, False),  # iat in the future (at run time)
        ({"life_s": 3600}, True),  # exactly the maximum
    ],
    ids=["valid", "no-iat", "two-hours", "exp-2100", "future-iat", "one-hour"],
)
async def test_customer_tokens_need_iat_and_a_short_life(
    app: FastAPI, services: Services, widget_key: str, claims: dict[str, Any], accepted: bool
) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    life = claims.pop("life_s", 600)
    token = _token(str(cust["id"]), life_s=life, **claims)
    async with _http(app, widget_key) as http:
        created = (await http.post("/threads", json={})).json()
        http.headers["X-Visitor-Token"] = created["visitor_token"]
        r = await http.post(
            f"/threads/{created['thread_id']}/runs/wait",
            json={"assistant_id": ASSISTANT, "input": _user("hi"),
                  "context": {"customer_token": token}},
        )  # fmt: skip
    assert r.status_code == (200 if accepted else 401), r.text
    assert token not in r.text


async def test_keys_and_tokens_in_the_url_are_not_read(
    app: FastAPI, services: Services, widget_key: str, victim: Victim
) -> None:
    """A key or visitor token in the query string authenticates nothing."""
    async with _http(app, "") as http:
        http.headers.pop("x-api-key")
        r = await http.get(f"/threads/{victim.thread_id}/state",
                           params={"api_key": widget_key, "key": widget_key})  # fmt: skip
        assert r.status_code == 401, r.text
    async with _http(app, widget_key) as http:
        r = await http.get(f"/threads/{victim.thread_id}/state",
                           params={"visitor_token": victim.visitor_token})  # fmt: skip
        assert r.status_code == 404, r.text
        r = await http.post(
            f"/threads/{victim.thread_id}/runs/wait",
            params={"customer_token": victim.customer_token},
            json={"assistant_id": ASSISTANT, "input": _user("hi")},
            headers={"X-Visitor-Token": victim.visitor_token},
        )
        assert r.status_code == 401, r.text  # the verified thread wants the token in the body


async def test_the_client_address_behind_the_proxy_reaches_verification(
    agent: Agent, services: Services, limits: Any
) -> None:
    """A failed verification is recorded against the visitor's address (the right-most untrusted
    ``X-Forwarded-For`` entry behind the trusted proxy), on ``/v1/chat`` and on a graph run."""
    limits(trusted_proxies=["127.0.0.1/32"])
    cust = await customer_with(services, "pending")
    wrong = f"my email is {cust['email']}, zip code 00001"
    widget = await create_api_key(services, "retail", "widget")
    visitor = _address()
    app = create_app(agent=agent)
    forwarded = {"X-Forwarded-For": f"{_address()}, {visitor}"}
    async with app.router.lifespan_context(app), _http(app, widget, "127.0.0.1") as proxy:
        chat = await proxy.post("/v1/chat", json={"message": wrong}, headers=forwarded)
        assert chat.status_code == 200, chat.text
        created = (await proxy.post("/threads", json={}, headers=forwarded)).json()
        run = await proxy.post(
            f"/threads/{created['thread_id']}/runs/wait",
            json={"assistant_id": ASSISTANT, "input": _user(wrong)},
            headers={**forwarded, "X-Visitor-Token": created["visitor_token"]},
        )
        assert run.status_code == 200, run.text
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT session_id, client FROM verification_attempts WHERE tenant_id = 'retail'"
                " AND session_id = ANY(%s)",
                ([chat.json()["session_id"], created["thread_id"]],),
            )
        ).fetchall()
    assert {r["session_id"] for r in rows} == {chat.json()["session_id"], created["thread_id"]}
    assert {r["client"] for r in rows} == {client_key("retail", visitor)}
