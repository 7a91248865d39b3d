"""Erasure is final: a session end and a message racing an erasure leave 0 traces.

50 trials through the public API, each a customer with a live session whose end, one more
message and the erasure are sent at once; afterwards every PostgreSQL table (rows, store items and
their vectors, checkpoints, blobs, writes), every Redis key and both job streams are scanned for
the customers' ids and emails. The customers are reloaded from the retail data at the end.
"""

from __future__ import annotations

import asyncio

import httpx

from support_agent.conversation import Agent
from support_agent.memory_store.hot import refresh_features
from support_agent.services import Services
from support_agent.verticals.retail.loader import load_retail
from tests.conftest import proof
from tests.traces import scan_postgres, scan_redis

TRIALS = 50


async def _customers(services: Services, n: int) -> list[dict[str, str]]:
    """``n`` retail customers from the far end of the id order (other tests pick from the start),
    with an email: a customer another test created without one would make ``"None"`` a needle
    that matches unrelated rows."""
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, email, zip FROM customers WHERE tenant_id = 'retail'"
                " AND email IS NOT NULL ORDER BY id DESC LIMIT %s",
                (n,),
            )
        ).fetchall()
    return [{"id": str(r["id"]), "email": str(r["email"]), "zip": str(r["zip"])} for r in rows]


async def test_end_message_and_erasure_at_once_leave_no_trace(
    client: httpx.AsyncClient, services: Services, agent: Agent
) -> None:
    customers = await _customers(services, TRIALS)
    try:
        for cust in customers:
            hello = await client.post("/v1/chat", json={"message": f"hi, {proof(cust)}"})
            assert hello.status_code == 200, hello.text
            session = hello.json()["session_id"]
            ask = await client.post(
                "/v1/chat", json={"session_id": session, "message": "where is my order?"}
            )
            assert ask.status_code == 200, ask.text
            end, more, erase = await asyncio.gather(
                client.post(f"/v1/sessions/{session}/end"),
                client.post("/v1/chat", json={"session_id": session, "message": "thanks"}),
                client.delete(f"/api/tenants/me/customers/{cust['id']}"),
            )
            assert erase.status_code == 200, erase.text
            assert end.status_code in (200, 404), end.text  # 404: the erasure came first
            assert more.status_code in (200, 409), more.text  # 409: the session had ended
        needles = [c["id"] for c in customers] + [c["email"] for c in customers]
        assert await scan_postgres(services, needles) == {}
        assert await scan_redis(services, needles) == []
    finally:
        users = {c["id"] for c in customers}
        await load_retail(services, "retail", users=users)
        await refresh_features(services, "retail", sorted(users))
