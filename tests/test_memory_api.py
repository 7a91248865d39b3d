"""Memory API: listing, profile with four layers, search, export, erasure, identity, tenancy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from support_agent.api.app import create_app
from support_agent.conversation import Agent, end_session
from support_agent.memory_store.pipeline import DEAD_LETTER, STREAM, MemoryWorker
from support_agent.services import Services
from support_agent.tenancy import create_api_key
from tests.conftest import add_acme_twin, customer_with, end_and_remember, new_session, proof, say
from tests.traces import scan_postgres, scan_redis


@pytest.fixture
async def api(
    services: Services, agent: Agent
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """A client plus a retail key and an acme key."""
    retail = await create_api_key(services, "retail")
    acme = await create_api_key(services, "acme")
    app = create_app(agent=agent)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c, retail, acme


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_every_endpoint_needs_a_key(api: tuple[httpx.AsyncClient, str, str]) -> None:
    client, _, _ = api
    calls = [
        ("GET", "/api/tenants/me/customers"),
        ("GET", "/api/tenants/me/customers/search?q=a"),
        ("GET", "/api/tenants/me/customers/x"),
        ("GET", "/api/tenants/me/customers/x/export?format=json"),
        ("DELETE", "/api/tenants/me/customers/x"),
        ("POST", "/api/tenants/me/customers/x/identities"),
        ("POST", "/api/tenants/me/customers/x/merge"),
        ("POST", "/v1/sessions/x/end"),
    ]
    for method, url in calls:
        r = await client.request(method, url, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401, (method, url, r.status_code)
        assert r.json()["error"]["code"] == "UNAUTHORIZED"


async def test_pagination_walks_all_customers_and_is_stable_under_inserts(
    api: tuple[httpx.AsyncClient, str, str], services: Services
) -> None:
    client, key, _ = api
    seen: list[str] = []
    cursor = None
    first_page = None
    while True:
        params = {"limit": 37, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/tenants/me/customers", params=params, headers=auth(key))
        assert r.status_code == 200
        body = r.json()
        if first_page is None:
            first_page = body
            row = body["data"][0]
            assert set(row) == {"id", "name", "phone", "email", "channels", "trustScore",
                                "churnRisk", "totalConversations", "firstContactAt",
                                "lastMessageAt"}  # fmt: skip
            # Insert customers around the cursor mid-walk: before it and after it.
            async with services.pool.connection() as conn:
                for cid in ("aaa_new_0001", "zzz_new_0001"):
                    await conn.execute(
                        "INSERT INTO customers (tenant_id, id, first_name, last_name)"
                        " VALUES ('retail', %s, 'New', 'Person') ON CONFLICT DO NOTHING",
                        (cid,),
                    )
        seen += [c["id"] for c in body["data"]]
        assert body["pagination"]["limit"] == 37
        if not body["pagination"]["hasMore"]:
            assert body["pagination"]["nextCursor"] is None
            break
        cursor = body["pagination"]["nextCursor"]
    assert len(seen) == len(set(seen))  # nothing listed twice
    assert seen == sorted(seen)
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id FROM customers WHERE tenant_id='retail' AND id NOT LIKE '%%_new_%%'"
            )
        ).fetchall()
    assert {r["id"] for r in rows} <= set(seen)  # nothing that existed was skipped
    assert "zzz_new_0001" in seen  # inserted after the cursor: appears in a later page
    r = await client.get("/api/tenants/me/customers", params={"limit": 0}, headers=auth(key))
    assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID_REQUEST"
    r = await client.get("/api/tenants/me/customers", params={"cursor": "%%%"}, headers=auth(key))
    assert r.status_code == 422


async def test_profile_has_four_layers_and_export_has_everything(
    api: tuple[httpx.AsyncClient, str, str], services: Services, agent: Agent
) -> None:
    client, key, _ = api
    cust = await customer_with(services, "delivered")
    session = new_session()
    await say(agent, session, proof(cust))
    await say(agent, session, f"the {cust['item']} I got arrived broken")
    await say(agent, session, "I prefer email for updates")
    await end_and_remember(agent, session)
    r = await client.get(f"/api/tenants/me/customers/{cust['id']}", headers=auth(key))
    assert r.status_code == 200
    profile = r.json()
    memory = profile["memory"]
    assert set(memory) == {"l1_identity", "l2_history", "l3_episodes", "l4_prefs_mood"}
    assert memory["l1_identity"]["channels"] == ["chat"]
    assert memory["l2_history"]["totalConversations"] == 1
    assert memory["l2_history"]["churnRisk"] == pytest.approx(0.35)
    assert memory["l3_episodes"][0]["conversationId"] == session
    assert memory["l4_prefs_mood"]["openIssues"]
    assert "I prefer email" in memory["l4_prefs_mood"]["personalDetails"]
    assert memory["l4_prefs_mood"]["promises"][0]["status"] == "pending"
    assert profile["totalConversations"] == 1
    r = await client.get(
        f"/api/tenants/me/customers/{cust['id']}/export", params={"format": "json"},
        headers=auth(key),
    )  # fmt: skip
    assert r.status_code == 200
    export = r.json()
    assert export["profile"]["id"] == cust["id"]
    assert len(export["messages"]) == 6
    assert export["interactions"][0]["id"] == session
    assert export["promises"] and export["issues"] and export["orders"] and export["identities"]
    r = await client.get(
        f"/api/tenants/me/customers/{cust['id']}/export", params={"format": "csv"},
        headers=auth(key),
    )  # fmt: skip
    assert r.status_code == 422


async def test_search_by_name_email_and_phone(
    api: tuple[httpx.AsyncClient, str, str], services: Services
) -> None:
    client, key, _ = api
    cust = await customer_with(services, "delivered")
    partial = f"{str(cust['first_name']).lower()} {str(cust['last_name'])[:3].lower()}"
    r = await client.get("/api/tenants/me/customers/search", params={"q": partial},
                         headers=auth(key))  # fmt: skip
    assert r.status_code == 200
    assert cust["id"] in [x["id"] for x in r.json()["results"]]
    r = await client.get(
        "/api/tenants/me/customers/search",
        params={"q": str(cust["email"]).split("@")[0]},
        headers=auth(key),
    )
    assert [x["id"] for x in r.json()["results"]] == [cust["id"]]
    r = await client.post(f"/api/tenants/me/customers/{cust['id']}/identities",
                          json={"kind": "phone", "value": "+1 (555) 014-2233", "channel": "phone"},
                          headers=auth(key))  # fmt: skip
    assert r.status_code == 200 and r.json()["linked"] is True
    # a staff-linked phone is not the phone on file (codes are never sent to it): search reads
    # the file, so it does not find the customer by it
    r = await client.get("/api/tenants/me/customers/search", params={"q": "014-2233"},
                         headers=auth(key))  # fmt: skip
    assert r.status_code == 404
    r = await client.get("/api/tenants/me/customers/search", params={"q": "qqqzzzxxx"},
                         headers=auth(key))  # fmt: skip
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


async def test_linked_phone_finds_the_same_memory_on_another_channel(
    api: tuple[httpx.AsyncClient, str, str], services: Services, agent: Agent
) -> None:
    client, key, _ = api
    cust = await customer_with(services, "delivered")
    r = await client.post(
        f"/api/tenants/me/customers/{cust['id']}/identities",
        json={"kind": "phone", "value": "+1 555 777 0101"},
        headers=auth(key),
    )
    assert r.status_code == 200
    other = await customer_with(services, "delivered")
    r = await client.post(
        f"/api/tenants/me/customers/{other['id']}/identities",
        json={"kind": "phone", "value": "15557770101"},
        headers=auth(key),
    )
    assert r.status_code == 422  # belongs to someone else: merge instead
    turn = await say(agent, new_session(), "hello", channel="phone", phone="555-777-0101")
    assert turn.decision == "ask_identification"  # retail: a phone identifies, email/zip verify


async def test_merge_keeps_every_layers_history(
    api: tuple[httpx.AsyncClient, str, str], services: Services, agent: Agent
) -> None:
    client, key, _ = api
    keep = await customer_with(services, "delivered")
    gone = await customer_with(services, "delivered")
    for cust in (keep, gone):
        session = new_session()
        await say(agent, session, proof(cust))
        await say(agent, session, f"the {cust['item']} I got arrived broken")
        await end_and_remember(agent, session)
    r = await client.post(
        f"/api/tenants/me/customers/{keep['id']}/merge",
        json={"from_customer_id": gone["id"]},
        headers=auth(key),
    )
    assert r.status_code == 200, r.text
    assert r.json()["episodes"] == 1
    profile = (
        await client.get(f"/api/tenants/me/customers/{keep['id']}", headers=auth(key))
    ).json()
    assert profile["memory"]["l2_history"]["totalConversations"] == 2
    assert len(profile["memory"]["l3_episodes"]) == 2
    assert len(profile["memory"]["l4_prefs_mood"]["openIssues"]) == 2
    r = await client.get(f"/api/tenants/me/customers/{gone['id']}", headers=auth(key))
    assert r.status_code == 404
    # The merged customer's email now finds the surviving customer.
    turn = await say(agent, new_session(), f"my email is {gone['email']}, zip code {keep['zip']}")
    assert turn.customer_id == keep["id"]


async def test_tenant_isolation_on_every_endpoint(
    api: tuple[httpx.AsyncClient, str, str], services: Services, agent: Agent
) -> None:
    client, retail_key, acme_key = api
    cust = await customer_with(services, "delivered")
    await add_acme_twin(services, str(cust["id"]))
    session = new_session()
    await say(agent, session, proof(cust))
    # acme sees its own twin, never the retail customer's data
    r = await client.get(f"/api/tenants/me/customers/{cust['id']}", headers=auth(acme_key))
    assert r.status_code == 200 and r.json()["email"] == "zed.twin@acme.example"
    r = await client.get("/api/tenants/me/customers", headers=auth(acme_key))
    assert [c["email"] for c in r.json()["data"]] == ["zed.twin@acme.example"]
    r = await client.get("/api/tenants/me/customers/search", params={"q": str(cust["email"])},
                         headers=auth(acme_key))  # fmt: skip
    assert r.status_code == 404
    export = (await client.get(f"/api/tenants/me/customers/{cust['id']}/export",
                               headers=auth(acme_key))).json()  # fmt: skip
    assert export["messages"] == [] and export["orders"] == []
    assert str(cust["email"]) not in json.dumps(export)
    other = await customer_with(services, "delivered")
    for method, url, body in [
        ("GET", f"/api/tenants/me/customers/{other['id']}", None),
        ("GET", f"/api/tenants/me/customers/{other['id']}/export", None),
        ("DELETE", f"/api/tenants/me/customers/{other['id']}", None),
        ("POST", f"/api/tenants/me/customers/{other['id']}/identities",
         {"kind": "handle", "value": "@x"}),
        ("POST", f"/api/tenants/me/customers/{cust['id']}/merge",
         {"from_customer_id": other["id"]}),
        ("POST", f"/v1/sessions/{session}/end", None),
    ]:  # fmt: skip
        r = await client.request(method, url, json=body, headers=auth(acme_key))
        assert r.status_code == 404, (method, url, r.text)
    r = await client.post("/v1/chat", json={"session_id": session, "message": "where is my order?"},
                          headers=auth(acme_key))  # fmt: skip
    assert r.status_code == 200
    assert r.json()["decision"] == "ask_identification"  # a fresh acme thread, no retail state
    r = await client.get(f"/api/tenants/me/customers/{other['id']}", headers=auth(retail_key))
    assert r.status_code == 200  # untouched for its own tenant


async def test_erasure_leaves_nothing_anywhere(
    api: tuple[httpx.AsyncClient, str, str], services: Services, agent: Agent
) -> None:
    client, key, _ = api
    cust = await customer_with(services, "pending")
    cid, email = str(cust["id"]), str(cust["email"])
    await add_acme_twin(services, cid)  # same id in another tenant: must survive
    done = new_session()
    await say(agent, done, f"my email is {email}, zip code {cust['zip']}")
    await say(agent, done, f"cancel order {cust['order_id']}, I ordered it by mistake")
    await say(agent, done, "yes")
    await end_and_remember(agent, done)
    queued = new_session()  # a second conversation whose memory job is still queued
    await say(agent, queued, f"my email is {email}, zip code {cust['zip']}")
    await say(agent, queued, "where is my refund?")
    await end_session(agent, tenant_id="retail", session_id=queued)
    await services.redis.xadd(
        DEAD_LETTER,
        {"tenant": "retail", "session": "old", "customer": cid, "error": "x", "attempts": "5"},
    )
    needles = [cid, email]
    assert await scan_postgres(services, needles)
    assert await scan_redis(services, needles)
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM interactions WHERE tenant_id = 'retail'"
                " AND customer_id = %s",
                (cid,),
            )
        ).fetchone()
    sessions = 0 if row is None else int(row["n"])  # ours, and any an earlier test left
    assert sessions >= 2

    r = await client.delete(f"/api/tenants/me/customers/{cid}", headers=auth(key))
    assert r.status_code == 200, r.text
    deleted = r.json()["deleted"]
    assert deleted["customers"] == 1 and deleted["store_items"] >= 1
    assert deleted["checkpoint_threads"] == sessions and deleted["queued_jobs"] >= 2

    hits = await scan_postgres(services, needles)
    assert hits == {"customers": 1}  # only acme's twin, which shares the id
    async with services.pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT tenant_id FROM customers WHERE id = %s", (cid,))).fetchone()  # fmt: skip
    assert row is not None and row["tenant_id"] == "acme"
    assert await scan_redis(services, needles) == []
    for stream in (STREAM, DEAD_LETTER):
        for _, fields in await services.redis.xrange(stream):
            assert fields.get(b"customer") != cid.encode()
    for url in (f"/api/tenants/me/customers/{cid}", f"/api/tenants/me/customers/{cid}/export"):
        r = await client.get(url, headers=auth(key))
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = await client.get("/api/tenants/me/customers/search", params={"q": email},
                         headers=auth(key))  # fmt: skip
    assert r.status_code == 404
    r = await client.delete(f"/api/tenants/me/customers/{cid}", headers=auth(key))
    assert r.status_code == 404
    assert await MemoryWorker(services, backoff_base_s=0.0).drain() == 0  # nothing comes back
    assert await scan_redis(services, needles) == []


@pytest.mark.parametrize(
    ("kind", "value"),
    [("email", "not-an-email"), ("email", "a@b"), ("phone", "12"), ("phone", "call me maybe"),
     ("handle", "two words"), ("customer_id", "")],
)  # fmt: skip
async def test_an_identity_value_must_fit_its_kind(
    api: tuple[httpx.AsyncClient, str, str], services: Services, kind: str, value: str
) -> None:
    client, key, _ = api
    cust = await customer_with(services, "delivered", fresh=False)
    r = await client.post(
        f"/api/tenants/me/customers/{cust['id']}/identities",
        json={"kind": kind, "value": value},
        headers=auth(key),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID_REQUEST", r.text
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM customer_identities WHERE tenant_id = 'retail'"
                " AND customer_id = %s AND kind = %s AND value = %s",
                (cust["id"], kind, value),
            )
        ).fetchone()
    assert row is not None and row["n"] == 0  # nothing stored
