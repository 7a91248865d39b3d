"""HTTP API: the chat flow over HTTP and the error shape with stable codes."""

from __future__ import annotations

import httpx
import pytest

from support_agent.services import Services
from tests.conftest import customer_with


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
