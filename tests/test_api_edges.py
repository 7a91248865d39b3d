"""The API's edges: rate limits per API key, body size and media type, one error shape."""

from __future__ import annotations

import httpx

from support_agent.api.deps import MAX_BODY_BYTES
from support_agent.services import Services
from support_agent.tenancy import create_api_key


async def test_a_key_over_its_tenants_rate_limit_gets_429_with_retry_after(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The library pack allows 4 requests a minute per key; retail keeps the default."""
    first_key = await create_api_key(services, "library")
    second_key = await create_api_key(services, "library")
    url = "/api/tenants/me/handoffs"
    answers = [
        (await client.get(url, headers={"Authorization": f"Bearer {first_key}"})).status_code
        for _ in range(5)
    ]
    assert answers == [200, 200, 200, 200, 429]
    r = await client.get(url, headers={"Authorization": f"Bearer {first_key}"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert first_key not in r.text  # the key is never echoed
    # another key of the same tenant has its own count; another tenant its own limit
    other = await client.get(url, headers={"Authorization": f"Bearer {second_key}"})
    assert other.status_code == 200
    for _ in range(6):
        assert (await client.get(url)).status_code == 200  # the retail key: 600/minute


async def test_an_oversized_body_is_413_and_a_non_json_body_is_415(
    client: httpx.AsyncClient, services: Services
) -> None:
    async with services.pool.connection() as conn:
        before = await (await conn.execute("SELECT count(*) AS n FROM messages")).fetchone()
    big = {"message": "x" * (MAX_BODY_BYTES + 1)}
    r = await client.post("/v1/chat", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE", r.text
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = await client.post("/v1/chat", content="message=hi", headers=form)
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    r = await client.post("/v1/chat", content='{"message": "hi"}',
                          headers={"Content-Type": "text/plain"})  # fmt: skip
    assert r.status_code == 415
    r = await client.post("/v1/chat", content=b'{"message": "hi"}',
                          headers={"Content-Type": "application/json; charset=utf-8"})  # fmt: skip
    assert r.status_code == 200, r.text
    async with services.pool.connection() as conn:
        after = await (await conn.execute("SELECT count(*) AS n FROM messages")).fetchone()
    assert before is not None and after is not None
    assert after["n"] - before["n"] == 2  # only the accepted message and its reply


async def test_the_openapi_document_lists_every_error_status(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    chat = doc["paths"]["/v1/chat"]["post"]["responses"]
    assert {"400", "401", "404", "409", "413", "415", "422", "429", "500", "503"} <= set(chat)
    assert "Retry-After" in chat["429"]["headers"] and "Retry-After" in chat["409"]["headers"]
    erase = doc["paths"]["/api/tenants/me/customers/{customer_id}"]["delete"]["responses"]
    assert {"401", "404", "409", "429", "503"} <= set(erase) and "413" not in erase
