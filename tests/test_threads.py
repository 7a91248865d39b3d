"""Memory that carries every open thread across sessions and channels (issue #10), through the
public chat API, with the customer identifying differently in each session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from support_agent.api.app import create_app
from support_agent.conversation import Agent
from support_agent.demo import pick_bank_customer
from support_agent.evaluation.conversations import reset_customer
from support_agent.evaluation.memory_suite import FAMILIES, evaluate_memory
from support_agent.memory_store.hot import sync_hot_tier
from support_agent.services import Services
from support_agent.templates import money
from support_agent.tenancy import create_api_key
from support_agent.verticals.bank.loader import load_bank
from tests.conftest import bank_proof, proof


async def _chat(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/chat", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _end(client: httpx.AsyncClient, session_id: str) -> None:
    r = await client.post(f"/v1/sessions/{session_id}/end")
    assert r.status_code == 200, r.text


async def _rows(services: Services, sql: str, *args: object) -> list[dict[str, Any]]:
    async with services.pool.connection() as conn:
        return [dict(r) for r in await (await conn.execute(sql, args)).fetchall()]


@pytest.fixture
async def bank_client(services: Services, agent: Agent) -> AsyncIterator[httpx.AsyncClient]:
    await load_bank(services)
    await sync_hot_tier(services, "bank")
    key = await create_api_key(services, "bank")
    app = create_app(agent=agent)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {key}"}
        ) as c:
            yield c


async def test_two_open_issues_are_both_carried_to_the_next_session(
    client: httpx.AsyncClient, services: Services
) -> None:
    (cust,) = await _rows(
        services,
        """
        SELECT c.id, c.email, c.first_name, c.last_name, c.zip,
               min(o.id) AS first_order, max(o.id) AS second_order
        FROM customers c JOIN orders o ON o.tenant_id = c.tenant_id AND o.customer_id = c.id
        WHERE c.tenant_id = 'retail' AND o.status = 'delivered'
          AND NOT EXISTS (SELECT 1 FROM issues i WHERE i.tenant_id = 'retail'
                          AND i.customer_id = c.id)
          AND (SELECT count(*) FROM customers c2 WHERE c2.tenant_id = 'retail'
               AND c2.first_name = c.first_name AND c2.last_name = c.last_name
               AND c2.zip = c.zip) = 1
        GROUP BY c.tenant_id, c.id HAVING count(*) >= 2 ORDER BY c.id DESC LIMIT 1""",
    )
    items = {}
    for key in ("first_order", "second_order"):
        (row,) = await _rows(
            services,
            "SELECT min(name) AS name FROM order_items WHERE"
            " tenant_id = 'retail' AND order_id = %s",
            cust[key],
        )
        items[key] = row["name"]
    first = await _chat(client, channel="chat", message=f"hi, {proof(cust)}")
    session = first["session_id"]
    one = await _chat(
        client,
        session_id=session,
        message=f"The {items['first_order']} from order {cust['first_order']} arrived broken.",
    )
    two = await _chat(
        client,
        session_id=session,
        message=f"And the {items['second_order']} from order {cust['second_order']} is scratched.",
    )
    assert one["decision"] in ("respond", "confirm") and two["decision"] in ("respond", "confirm")
    await _end(client, session)
    hello = await _chat(
        client,
        channel="phone",
        message=f"Hi, {cust['first_name']} {cust['last_name']}, zip {cust['zip']}",
    )
    follow = await _chat(
        client, session_id=hello["session_id"], message="I'm following up on both of my complaints"
    )
    reply = follow["reply"]
    assert cust["first_order"] in reply and cust["second_order"] in reply, reply
    assert "Which order" not in reply and "Tell me which" not in reply


async def _fresh_bank_customer(agent: Agent) -> dict[str, Any]:
    """The bank scenario's customer and fee, reset to the data as loaded (earlier tests may
    have disputed its fees or left it an open issue)."""
    cust = await pick_bank_customer(agent.services, any_fee=True)
    source = agent.services.settings.shared_data_dir / "tau2-retail" / "db.json.gz"
    await reset_customer(agent, "bank", str(cust["id"]), source)
    return cust


async def test_bank_dispute_follow_up_on_another_channel(
    bank_client: httpx.AsyncClient, services: Services, agent: Agent
) -> None:
    cust = await _fresh_bank_customer(agent)
    fee = money(float(cust["amount"]))
    hello = await _chat(bank_client, channel="chat", message=f"Hi, {bank_proof(cust)}")
    session = hello["session_id"]
    proposed = await _chat(
        bank_client, session_id=session, message=f"I want to dispute the {fee} fee, it's wrong"
    )
    assert proposed["decision"] == "confirm", proposed["reply"]
    done = await _chat(bank_client, session_id=session, message="yes")
    assert done["decision"] == "execute", done["reply"]
    await _end(bank_client, session)
    (phone,) = await _rows(
        services, "SELECT phone FROM customers WHERE tenant_id = 'bank' AND id = %s", cust["id"]
    )
    born = f"{cust['date_of_birth']:%m/%d/%Y}"  # the bank's policy: a second fact on file
    again = await _chat(
        bank_client, channel="phone", message=f"hi, my phone is {phone['phone']}, born {born}"
    )
    assert "verified" in again["reply"], again["reply"]
    follow = await _chat(
        bank_client, session_id=again["session_id"], message="Any news on the dispute I opened?"
    )
    reply = follow["reply"]
    assert "Which transaction" not in reply and fee in reply and "submitted" in reply, reply


async def test_handoff_outcome_is_carried_to_the_next_session(
    client: httpx.AsyncClient, services: Services
) -> None:
    (cust,) = await _rows(
        services,
        """
        SELECT c.id, c.email, c.first_name, c.last_name, c.zip, min(o.id) AS order_id
        FROM customers c JOIN orders o ON o.tenant_id = c.tenant_id AND o.customer_id = c.id
        WHERE c.tenant_id = 'retail' AND o.status = 'delivered'
          AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.tenant_id = 'retail'
                          AND h.customer_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM issues i WHERE i.tenant_id = 'retail'
                          AND i.customer_id = c.id)
          AND (SELECT count(*) FROM customers c2 WHERE c2.tenant_id = 'retail'
               AND c2.first_name = c.first_name AND c2.last_name = c.last_name
               AND c2.zip = c.zip) = 1
        GROUP BY c.tenant_id, c.id ORDER BY c.id LIMIT 1""",
    )
    hello = await _chat(client, channel="email", message=f"hello, {proof(cust)}")
    session = hello["session_id"]
    human = await _chat(client, session_id=session, message="I want to talk to a real person")
    assert human["decision"] == "escalate" and human["handoff"], human["reply"]
    handoff_id = human["handoff"]["handoff_id"]
    r = await client.post(
        f"/api/tenants/me/handoffs/{handoff_id}/resolve",
        json={"resolution": "shipped a free replacement", "satisfaction": 5},
    )
    assert r.status_code == 200, r.text
    again = await _chat(
        client,
        channel="chat",
        customer={"customer_id": cust["id"]},
        message=f"Hi, I'm {cust['first_name']} {cust['last_name']}, zip {cust['zip']}",
    )
    follow = await _chat(
        client, session_id=again["session_id"], message="I'm following up on my complaint"
    )
    reply = follow["reply"]
    assert "shipped a free replacement" in reply and "Tell me which" not in reply, reply
    opening = again["reply"]  # the next session opens with the colleague's outcome, once
    assert "Last time my colleague" in opening and "shipped a free replacement" in opening
    await _end(client, again["session_id"])
    third = await _chat(client, channel="email", message=f"hello, {proof(cust)}")
    assert "you're verified" in third["reply"] and "Last time" not in third["reply"]


async def _verified_with_pending_order(
    client: httpx.AsyncClient, services: Services, *, offset: int
) -> tuple[dict[str, Any], str]:
    """A retail customer with a pending order (the ``offset``-th from the end, so tests do not
    share one), verified by email in a new session: ``(customer, session id)``."""
    (cust,) = await _rows(
        services,
        """
        SELECT c.email, c.zip, min(o.id) AS order_id FROM customers c JOIN orders o
        ON o.tenant_id = c.tenant_id AND o.customer_id = c.id
        WHERE c.tenant_id = 'retail' AND o.status = 'pending'
        GROUP BY c.tenant_id, c.id ORDER BY c.id DESC OFFSET %s LIMIT 1""",
        offset,
    )
    hello = await _chat(client, message=f"hi, {proof(cust)}")
    return cust, str(hello["session_id"])


async def test_endings_get_a_closing_reply_and_never_act(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust, session = await _verified_with_pending_order(client, services, offset=3)
    proposal = await _chat(
        client,
        session_id=session,
        message=f"please cancel order {cust['order_id']}, I ordered it by mistake",
    )
    assert proposal["decision"] == "confirm", proposal["reply"]
    later = await _chat(client, session_id=session, message="OK, I'll get back to you on that.")
    assert "Done" not in later["reply"] and later["decision"] != "execute"
    (order,) = await _rows(
        services,
        "SELECT status FROM orders WHERE tenant_id = 'retail' AND id = %s",
        cust["order_id"],
    )
    assert order["status"] == "pending"
    bye = await _chat(client, session_id=session, message="Perfect, that's all.")
    assert "nothing has been changed" in bye["reply"] and "Hello" not in bye["reply"], bye["reply"]
    assert "You're welcome" in bye["reply"]
    (order,) = await _rows(
        services,
        "SELECT status FROM orders WHERE tenant_id = 'retail' AND id = %s",
        cust["order_id"],
    )
    assert order["status"] == "pending"  # an ending is never a yes
    thanks = await _chat(client, session_id=session, message="thanks, bye")
    assert "You're welcome" in thanks["reply"] and thanks["decision"] == "respond"


async def test_a_message_that_identifies_and_asks_gets_both(
    client: httpx.AsyncClient, services: Services
) -> None:
    (cust,) = await _rows(
        services,
        """
        SELECT c.email, c.zip, c.id, o.id AS order_id, min(i.name) AS item FROM customers c
        JOIN orders o ON o.tenant_id = c.tenant_id AND o.customer_id = c.id
        JOIN order_items i ON i.tenant_id = o.tenant_id AND i.order_id = o.id
        WHERE c.tenant_id = 'retail' AND o.status = 'delivered'
          AND (SELECT count(*) FROM orders o2 WHERE o2.tenant_id = 'retail'
               AND o2.customer_id = c.id) = 1
        GROUP BY c.tenant_id, c.id, o.id ORDER BY c.id DESC LIMIT 1""",
    )
    hello = await _chat(client, message=f"hi, {proof(cust)}")
    session = hello["session_id"]
    proposal = await _chat(
        client,
        session_id=session,
        message=f"I'd like to return the {cust['item']} from order {cust['order_id']}",
    )
    assert proposal["decision"] == "confirm", proposal["reply"]
    done = await _chat(client, session_id=session, message="yes")
    assert done["decision"] == "execute", done["reply"]
    await _end(client, session)
    both = await _chat(
        client,
        channel="email",
        message=f"Hi, it's {cust['email']}, zip {cust['zip']}, did my return go through?",
    )
    reply = both["reply"]
    assert "verified" in reply and cust["order_id"] in reply and "return" in reply, reply


async def test_history_questions_are_answered_from_memory(
    client: httpx.AsyncClient, services: Services
) -> None:
    (cust,) = await _rows(
        services,
        """
        SELECT c.email, c.id, c.first_name, c.last_name, c.zip FROM customers c
        WHERE c.tenant_id = 'retail' AND NOT EXISTS (SELECT 1 FROM interactions x
              WHERE x.tenant_id = 'retail' AND x.customer_id = c.id)
          AND (SELECT count(*) FROM customers c2 WHERE c2.tenant_id = 'retail'
               AND c2.first_name = c.first_name AND c2.last_name = c.last_name
               AND c2.zip = c.zip) = 1
        ORDER BY c.id LIMIT 1 OFFSET 7""",
    )
    first = await _chat(client, channel="email", message=f"hi, {proof(cust)}")
    ask = await _chat(
        client, session_id=first["session_id"], message="when did I last contact you?"
    )
    assert "first conversation" in ask["reply"], ask["reply"]
    await _end(client, first["session_id"])
    (row,) = await _rows(
        services,
        "SELECT started_at FROM interactions WHERE tenant_id = 'retail' AND id = %s",
        first["session_id"],
    )
    again = await _chat(
        client,
        channel="chat",
        message=f"I'm {cust['first_name']} {cust['last_name']}, zip {cust['zip']}",
    )
    last = await _chat(
        client, session_id=again["session_id"], message="When did I last contact you?"
    )
    when = row["started_at"].strftime("%b %-d")
    assert f"on {when} by email" in last["reply"], last["reply"]
    promised = await _chat(
        client, session_id=again["session_id"], message="what did you promise me?"
    )
    assert "no open promise" in promised["reply"], promised["reply"]


async def test_memory_suite_every_family_carries_its_threads(
    agent: Agent, services: Services, tmp_path: Any
) -> None:
    """One conversation of every family of ``support-agent eval memory`` on the test data."""
    await load_bank(services)
    await sync_hot_tier(services, "bank")
    summary = await evaluate_memory(agent, tmp_path, per_family=1)
    assert set(summary["families"]) == set(FAMILIES), summary
    assert summary["failures"] == [], summary["failures"]
    assert summary["leaks"] == 0 and summary["stale"] == 0 and summary["reask_rate"] == 0.0
    assert summary["closing_rate"] == 1.0
    assert (tmp_path / "report.json").is_file() and (tmp_path / "erasure-0.json").is_file()


async def test_an_ending_while_a_question_waits_closes_and_drops_the_question(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust, session = await _verified_with_pending_order(client, services, offset=5)
    asked = await _chat(
        client,
        session_id=session,
        message=f"I need to change the shipping address of order {cust['order_id']}",
    )
    assert "address" in asked["reply"], asked["reply"]
    bye = await _chat(client, session_id=session, message="OK, I'll get back to you on that.")
    assert "You're welcome" in bye["reply"], bye["reply"]
    assert "address" not in bye["reply"] and bye["decision"] == "respond", bye["reply"]
    again = await _chat(client, session_id=session, message="thank you")
    assert "You're welcome" in again["reply"] and "address" not in again["reply"], again["reply"]
    # The detail itself, ending in thanks, is the answer (not an ending).
    await _chat(
        client,
        session_id=session,
        message=f"I need to change the shipping address of order {cust['order_id']}",
    )
    detail = await _chat(
        client, session_id=session, message="12 Oak Street, Austin, TX 78701, thanks"
    )
    assert detail["decision"] == "confirm" and "Oak" in detail["reply"], detail["reply"]


async def test_bank_introduction_request_and_ending_in_the_customers_words(
    bank_client: httpx.AsyncClient, services: Services, agent: Agent
) -> None:
    """An introduction gets a greeting only; "dispute the $X charge from Y" is understood; an
    ending after a message the agent did not understand closes instead of escalating."""
    cust = await _fresh_bank_customer(agent)
    (charge,) = await _rows(
        services,
        """
        WITH recent AS (SELECT * FROM transactions WHERE tenant_id = 'bank'
                        AND customer_id = %s ORDER BY occurred_on DESC, id LIMIT 20)
        SELECT id, description, -amount AS amount FROM recent r
        WHERE amount < 0 AND description !~* 'fee'
          AND (SELECT count(*) FROM recent o WHERE o.amount = r.amount) = 1
          AND NOT EXISTS (SELECT 1 FROM disputes x WHERE x.tenant_id = 'bank'
                          AND x.transaction_id = r.id)
        ORDER BY occurred_on DESC, id LIMIT 1""",
        cust["id"],
    )
    hello = await _chat(bank_client, message=f"hi, {bank_proof(cust)}")
    assert hello["reply"].endswith("How can I help you today?"), hello["reply"]
    assert hello["intent"] == "other"
    session = hello["session_id"]
    amount = money(float(charge["amount"]))
    proposed = await _chat(
        bank_client,
        session_id=session,
        message=f"I want to dispute the {amount} charge from {charge['description']}",
    )
    assert proposed["decision"] == "confirm" and amount in proposed["reply"], proposed["reply"]
    no = await _chat(bank_client, session_id=session, message="no, leave it")
    assert no["decision"] == "respond"
    unclear = await _chat(bank_client, session_id=session, message="blorp zzzt wibble")
    assert unclear["decision"] == "respond", unclear["reply"]
    bye = await _chat(bank_client, session_id=session, message="ok thanks, bye")
    assert bye["decision"] == "respond" and "welcome" in bye["reply"], bye["reply"]
    assert bye["handoff"] is None
    disputes = await _rows(
        services,
        "SELECT id FROM disputes WHERE tenant_id = 'bank' AND transaction_id = %s",
        charge["id"],
    )
    assert disputes == []  # "no" and an ending never file anything
