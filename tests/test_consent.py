"""Consent and truthful outcomes, through the public chat API.

A proposed write runs only after an unambiguous "yes" to exactly that proposal; every other answer
leaves the systems of record untouched. A reply says "Done" only when this turn changed them, and
the idempotency key is the change itself: two different changes to one order both land, the same
change confirmed twice runs once.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from support_agent.consent import evaluate, read_labelled
from support_agent.conversation import Agent
from support_agent.services import Services
from support_agent.threads import thread_id
from tests.conftest import customer_said, customer_with, proof

ROOT = Path(__file__).resolve().parents[1]

#: The replies that cancelled an order before consent was read (issue #9): none may now.
NOT_A_YES = [
    "ok wait, no",
    "Sure, but actually don't",
    "do it later, not now",
    "yes? what does that mean",
    "correct me if I'm wrong, that's everything?",
    "Okay I need to think about it",
]


async def _order(services: Services, order_id: object) -> dict[str, Any]:
    """The order as the systems of record hold it: status, address, payments and the ledger."""
    async with services.pool.connection() as conn:
        order = await (
            await conn.execute(
                "SELECT status, address FROM orders WHERE tenant_id = 'retail' AND id = %s",
                (order_id,),
            )
        ).fetchone()
        payments = await (
            await conn.execute(
                "SELECT kind, amount, payment_method_id FROM payments WHERE tenant_id = 'retail'"
                " AND order_id = %s ORDER BY seq",
                (order_id,),
            )
        ).fetchall()
        ledger = await (
            await conn.execute(
                "SELECT action, params FROM account_actions WHERE tenant_id = 'retail'"
                " AND params->>'order_id' = %s ORDER BY created_at",
                (order_id,),
            )
        ).fetchall()
    assert order is not None
    return {
        "status": order["status"],
        "address": order["address"],
        "payments": [dict(p) for p in payments],
        "ledger": [dict(r) for r in ledger],
    }


async def _chat(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/chat", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _propose_cancel(
    client: httpx.AsyncClient, services: Services
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A verified customer with a pending order, and the agent's proposal to cancel it."""
    cust = await customer_with(services, "pending")
    order_id = str(cust["order_id"])
    hello = await _chat(client, message=f"hi, {proof(cust)}")
    proposal = await _chat(
        client,
        session_id=hello["session_id"],
        message=f"please cancel order {order_id}, I ordered it by mistake",
    )
    assert proposal["decision"] == "confirm", proposal["reply"]
    assert f"cancel order {order_id}" in proposal["reply"] and "yes" in proposal["reply"]
    assert proposal["approval"]["action_requests"][0]["name"] == "cancel_order"
    return cust, str(hello["session_id"]), await _order(services, order_id)


def test_consent_set_approve_precision_and_recall() -> None:
    rows = read_labelled(ROOT / "evals" / "consent.csv")
    report = evaluate(rows)
    assert report["n"] >= 400
    assert report["approve_precision"] == 1.0, report["false_approvals"]
    assert report["approve_recall"] >= 0.95, report["missed_approvals"]


@pytest.mark.parametrize("reply", NOT_A_YES)
async def test_no_quoted_reply_cancels_the_order(
    client: httpx.AsyncClient, services: Services, reply: str
) -> None:
    cust, session, before = await _propose_cancel(client, services)
    answer = await _chat(client, session_id=session, message=reply)
    after = await _order(services, cust["order_id"])
    assert after == before and after["status"] == "pending"  # nothing changed, nothing recorded
    assert answer["decision"] != "execute" and "Done" not in answer["reply"]
    assert not [a for a in answer["actions"] if a["status"] == "done"]


async def test_unclear_answer_is_asked_once_more_then_yes_cancels_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust, session, before = await _propose_cancel(client, services)
    again = await _chat(client, session_id=session, message="Okay I need to think about it")
    assert again["decision"] == "confirm" and "yes or no" in again["reply"]
    done = await _chat(client, session_id=session, message="yes")
    assert done["decision"] == "execute" and done["reply"].startswith("Done")
    after = await _order(services, cust["order_id"])
    assert after["status"] == "cancelled"
    paid = [p for p in before["payments"] if p["kind"] == "payment"]
    refunds = [p for p in after["payments"] if p["kind"] == "refund"]
    assert sorted((r["amount"], r["payment_method_id"]) for r in refunds) == sorted(
        (p["amount"], p["payment_method_id"]) for p in paid
    )  # every payment refunded to its method, once
    refund = sum(float(p["amount"]) for p in paid)
    assert f"${refund:,.2f}" in done["reply"]  # the amount said is the amount refunded
    # the same "yes" resent: nothing waits for it, nothing runs again
    resent = await _chat(client, session_id=session, message="yes")
    assert resent["decision"] != "execute" and "Done" not in resent["reply"]
    assert await _order(services, cust["order_id"]) == after
    assert len(after["ledger"]) == 1


async def test_a_message_resent_with_its_id_is_answered_once(
    client: httpx.AsyncClient, services: Services, agent: Agent
) -> None:
    """A client whose connection broke resends its message with the same ``message_id``: the
    turn that already ran is returned again (a proposal still awaiting its yes, a "yes" that was
    done), nothing runs twice and the transcript holds each message once."""
    cust = await customer_with(services, "pending")
    order_id = str(cust["order_id"])
    session = f"client-{uuid.uuid4().hex}"  # the client's own session id
    first = {"session_id": session, "message": f"hi, {proof(cust)}"}
    await _chat(client, **first, message_id="m1")
    ask = {
        "session_id": session,
        "message": f"please cancel order {order_id}, I ordered it by mistake",
    }
    proposal = await _chat(client, **ask, message_id="m2")
    assert proposal["decision"] == "confirm" and proposal["approval"] is not None
    assert await _chat(client, **ask, message_id="m2") == proposal  # still awaiting, same words
    before = await _order(services, order_id)
    assert before["status"] == "pending"
    yes = {"session_id": session, "message": "yes"}
    done = await _chat(client, **yes, message_id="m3")
    assert done["decision"] == "execute" and done["reply"].startswith("Done"), done
    after = await _order(services, order_id)
    assert after["status"] == "cancelled" and len(after["ledger"]) == 1
    assert await _chat(client, **yes, message_id="m3") == done  # the same answer, not re-run
    reused = await client.post("/v1/chat", json={**yes, "message": "no", "message_id": "m3"})
    assert reused.status_code == 409, reused.text  # one key, one message
    assert await _order(services, order_id) == after
    later = await _chat(client, **yes, message_id="m4")  # a new "yes": nothing awaits it
    assert later["decision"] != "execute" and "Done" not in later["reply"]
    stale = await client.post("/v1/chat", json={**yes, "message_id": "m3"})
    assert stale.status_code == 409, stale.text  # answered before m4: not the last turn
    bad = await client.post("/v1/chat", json={**yes, "message_id": "m 5"})
    assert bad.status_code == 422, bad.text
    said = await customer_said(agent, session)
    assert said == [first["message"], ask["message"], "yes", "yes"], said
    assert await _order(services, order_id) == after


async def test_a_second_unclear_answer_leaves_the_order_as_is(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust, session, before = await _propose_cancel(client, services)
    await _chat(client, session_id=session, message="hmm maybe")
    dropped = await _chat(client, session_id=session, message="not sure yet")
    assert "nothing has been changed" in dropped["reply"]
    late = await _chat(client, session_id=session, message="yes")  # the proposal is gone
    assert late["decision"] != "execute"
    assert await _order(services, cust["order_id"]) == before


async def test_a_new_request_supersedes_the_proposal_and_says_so(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust, session, before = await _propose_cancel(client, services)
    answer = await _chat(client, session_id=session, message=f"where is order {cust['order_id']}?")
    assert answer["reply"].startswith("OK, I won't go ahead with a cancellation")
    assert await _order(services, cust["order_id"]) == before


async def test_the_proposal_is_a_langgraph_interrupt_with_the_exact_action(
    client: httpx.AsyncClient, services: Services, agent: Any
) -> None:
    cust, session, _ = await _propose_cancel(client, services)
    state = await agent.graph.aget_state(
        {"configurable": {"thread_id": thread_id("retail", session)}}
    )
    (pending,) = state.interrupts
    request = pending.value["action_requests"][0]
    assert request["name"] == "cancel_order"
    assert request["args"]["target_id"] == cust["order_id"]
    assert request["args"]["reason"] == "ordered by mistake"
    assert "To confirm" in request["description"]
    assert pending.value["review_configs"] == [
        {"action_name": "cancel_order", "allowed_decisions": ["approve", "reject"]}
    ]


async def _change_address(
    client: httpx.AsyncClient, session: str, order_id: str, street: str
) -> dict[str, Any]:
    proposal = await _chat(
        client,
        session_id=session,
        message=f"please change the shipping address of order {order_id} to {street}, "
        "Springfield, IL 62704",
    )
    assert proposal["decision"] == "confirm", proposal["reply"]
    assert street in proposal["reply"]
    return await _chat(client, session_id=session, message="yes")


async def test_two_different_changes_to_one_order_both_land(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust = await customer_with(services, "pending")
    order_id = str(cust["order_id"])
    session = (await _chat(client, message=proof(cust)))["session_id"]
    first = await _change_address(client, session, order_id, "12 Main Street")
    assert first["decision"] == "execute" and "12 Main Street" in first["reply"]
    assert (await _order(services, order_id))["address"]["address1"] == "12 Main Street"
    second = await _change_address(client, session, order_id, "48 Oak Avenue")
    assert second["decision"] == "execute" and "48 Oak Avenue" in second["reply"]
    after = await _order(services, order_id)
    assert after["address"]["address1"] == "48 Oak Avenue"  # the second change landed too
    assert [r["params"]["address"]["address1"] for r in after["ledger"]] == [
        "12 Main Street",
        "48 Oak Avenue",
    ]
    # the first change confirmed again: its key is known, it does not run a second time
    again = await _change_address(client, session, order_id, "12 Main Street")
    assert again["decision"] != "execute" and "already done" in again["reply"]
    assert "Done" not in again["reply"]
    assert await _order(services, order_id) == after


async def test_default_address_updated_twice_both_land(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust = await customer_with(services, "delivered")
    session = (await _chat(client, message=proof(cust)))["session_id"]
    for street in ("7 Elm Road", "9 Birch Lane"):
        proposal = await _chat(
            client,
            session_id=session,
            message=f"update my default address to {street}, Austin, TX 78701",
        )
        assert proposal["decision"] == "confirm" and street in proposal["reply"], proposal
        done = await _chat(client, session_id=session, message="yes")
        assert done["decision"] == "execute" and street in done["reply"]
        async with services.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT address FROM customers WHERE tenant_id = 'retail' AND id = %s",
                    (cust["id"],),
                )
            ).fetchone()
        assert row is not None and row["address"]["address1"] == street
