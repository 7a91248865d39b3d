"""HTTP API: the chat flow over HTTP and the error shape with stable codes."""

from __future__ import annotations

import json

import httpx
import pytest

from support_agent.services import Services
from tests.conftest import customer_with, proof


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "postgres": True, "redis": True}


async def test_chat_two_sessions_over_http(client: httpx.AsyncClient, services: Services) -> None:
    cust = await customer_with(services, "delivered")
    r = await client.post(
        "/v1/chat",
        json={
            "channel": "chat",
            "customer": {"email": cust["email"]},
            "message": f"the {cust['item']} I got arrived broken",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "session_id", "reply", "decision", "intent", "actions", "handoff", "approval"
    }  # fmt: skip
    assert body["decision"] == "confirm" and cust["order_id"] in body["reply"]
    (request,) = body["approval"]["action_requests"]  # the write waiting for a yes
    assert request["args"]["target_id"] == cust["order_id"]
    end = await client.post(f"/v1/sessions/{body['session_id']}/end")
    assert end.status_code == 200 and end.json()["memory_job"] in ("enqueued", "done")
    r2 = await client.post(
        "/v1/chat",
        json={"channel": "phone", "customer": {"email": cust["email"]}, "message": "any update?"},
    )
    assert r2.status_code == 200
    assert cust["order_id"] in r2.json()["reply"]
    again = await client.post(
        "/v1/chat", json={"session_id": body["session_id"], "message": "hello?"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "SESSION_ENDED"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"message": ""}, 422, "INVALID_REQUEST"),
        ({"message": "hi", "customer": {"name": "Ann Lee"}}, 422, "INVALID_REQUEST"),
        ({"message": "hi", "unexpected": 1}, 422, "INVALID_REQUEST"),
        ({"message": "hi", "session_id": "../etc"}, 422, "INVALID_REQUEST"),
    ],
)
async def test_bad_requests_get_a_clear_error(
    client: httpx.AsyncClient, payload: dict[str, object], status: int, code: str
) -> None:
    r = await client.post("/v1/chat", json=payload)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]


async def test_malformed_json_and_unknown_session(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/chat", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID_REQUEST"
    r = await client.post("/v1/sessions/does-not-exist/end")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer "])
async def test_chat_needs_a_valid_key(client: httpx.AsyncClient, header: str | None) -> None:
    client.headers.pop("Authorization")
    headers = {} if header is None else {"Authorization": header}
    r = await client.post("/v1/chat", json={"message": "hi"}, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "UNAUTHORIZED"


async def test_nul_and_lone_surrogates_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Text PostgreSQL cannot store gets a 422 naming the field, before any turn runs."""
    cust = await customer_with(services, "delivered")
    hello = await client.post("/v1/chat", json={"message": proof(cust)})
    session = hello.json()["session_id"]
    cases = [
        ("post", "/v1/chat", {"session_id": session, "message": "where is my order\u0000"},
         "body.message"),
        ("post", "/v1/chat", {"message": "hi", "identity": {"email": "a\u0000@b.com"}},
         "body.identity.email"),
        ("post", "/v1/chat", {"session_id": session, "message": "lone \ud800 surrogate"},
         "body.message"),
        ("get", "/api/tenants/me/customers/search?q=ab%00c", None, "query.q"),
        ("get", f"/api/tenants/me/customers/{cust['id']}%00", None, "path.customer_id"),
    ]  # fmt: skip
    for method, url, body, where in cases:
        if body is None:
            r = await client.request(method, url)
        else:  # json.dumps keeps the lone surrogate as an escape, as a client would send it
            content = json.dumps(body).encode()
            r = await client.request(
                method, url, content=content, headers={"content-type": "application/json"}
            )
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["code"] == "INVALID_REQUEST"
        assert where in r.json()["error"]["message"], r.json()
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM messages WHERE tenant_id = 'retail'"
                " AND interaction_id = %s",
                (session,),
            )
        ).fetchone()
    assert row is not None and row["n"] == 2  # only the greeting turn: nothing half-written
    ended = await client.post(f"/v1/sessions/{session}/end")
    assert ended.status_code == 200 and ended.json()["memory_job"] is not None


async def test_framework_errors_have_the_documented_shape(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/no-such-route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = await client.get("/v1/chat")
    assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in r.headers["allow"]
    assert "detail" not in r.json()


async def test_openapi_declares_the_bearer_scheme_and_error_statuses(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {**schemes["HTTPBearer"], "type": "http", "scheme": "bearer"}
    chat = doc["paths"]["/v1/chat"]["post"]
    assert chat["security"] == [{"HTTPBearer": []}]
    assert {"401", "404", "422", "500", "503"} <= set(chat["responses"])
    assert "authorization" not in [p["name"].lower() for p in chat.get("parameters", [])]
    health = doc["paths"]["/healthz"]["get"]
    assert "security" not in health and "401" not in health["responses"]
    memory = doc["paths"]["/api/tenants/me/customers/{customer_id}"]["get"]
    assert memory["security"] == [{"HTTPBearer": []}] and "401" in memory["responses"]
    # the scheme name is case-insensitive, as documented
    r = await client.post(
        "/v1/chat",
        json={"message": "hi"},
        headers={"Authorization": client.headers["Authorization"].replace("Bearer", "bearer")},
    )
    assert r.status_code == 200
