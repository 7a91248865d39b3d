"""Facts on request and wording, through the public chat API (issue #9, items 4 and 5).

Every fact asked for comes from the systems of record: tracking numbers shown to their verified
owner, catalog counts, the refund total of the conversation. Single items cannot be cancelled and
the agent says so, changing nothing; refusals are in the customer's terms; no greeting once the
conversation has started; a user id with the zip on file verifies.
"""

from __future__ import annotations

from typing import Any

import httpx

from support_agent.services import Services
from tests.conftest import customer_with, order_status, proof


async def _chat(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/chat", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _verified(client: httpx.AsyncClient, cust: dict[str, Any]) -> str:
    hello = await _chat(client, message=f"hi, {proof(cust)}")
    assert "verified" in hello["reply"]
    return str(hello["session_id"])


async def _rows(services: Services, sql: str, *args: object) -> list[dict[str, Any]]:
    async with services.pool.connection() as conn:
        return [dict(r) for r in await (await conn.execute(sql, args)).fetchall()]


async def test_tracking_number_is_shown_to_its_verified_owner(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    (row,) = await _rows(
        services,
        "SELECT tracking_ids FROM order_fulfillments WHERE"
        " tenant_id = 'retail' AND order_id = %s AND line_no = 0",
        cust["order_id"],
    )
    session = await _verified(client, cust)
    answer = await _chat(
        client,
        session_id=session,
        message=f"what's the tracking number of order {cust['order_id']}?",
    )
    assert row["tracking_ids"][0] in answer["reply"] and "[phone]" not in answer["reply"]


async def test_catalog_count_comes_from_the_catalog(
    client: httpx.AsyncClient, services: Services
) -> None:
    (row,) = await _rows(
        services,
        "SELECT count(*) AS n FROM product_variants v JOIN products p"
        " ON p.tenant_id = v.tenant_id AND p.id = v.product_id WHERE"
        " v.tenant_id = 'retail' AND p.name = 'T-Shirt' AND v.available",
    )
    cust = await customer_with(services, "delivered", fresh=False)
    session = await _verified(client, cust)
    answer = await _chat(
        client,
        session_id=session,
        message="how many tshirt options are available in the store right now?",
    )
    assert f"There are {row['n']} T-Shirt options available" in answer["reply"], answer["reply"]


async def test_single_item_cannot_be_cancelled_and_nothing_changes(
    client: httpx.AsyncClient, services: Services
) -> None:
    (order,) = await _rows(
        services,
        """
        SELECT o.id, c.email, c.zip, min(i.name) AS item FROM orders o
        JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id
        JOIN order_items i ON i.tenant_id = o.tenant_id AND i.order_id = o.id
        WHERE o.tenant_id = 'retail' AND o.status = 'pending'
        GROUP BY o.id, c.email, c.zip HAVING count(DISTINCT i.name) >= 2
        ORDER BY o.id DESC LIMIT 1""",
    )
    session = await _verified(client, order)
    answer = await _chat(
        client,
        session_id=session,
        message=f"please cancel just the {order['item']} from order {order['id']}",
    )
    assert "can't be cancelled" in answer["reply"] and "whole" in answer["reply"], answer["reply"]
    assert answer["approval"] is None and answer["decision"] == "respond"
    stray = await _chat(client, session_id=session, message="yes")
    assert "Done" not in stray["reply"]
    assert await order_status(services, order["id"]) == "pending"


async def test_refusal_in_customer_terms(client: httpx.AsyncClient, services: Services) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    session = await _verified(client, cust)
    answer = await _chat(
        client,
        session_id=session,
        message=f"please cancel order {cust['order_id']}, I no longer need it",
    )
    reply = answer["reply"]
    assert "requires" not in reply and "only orders that have not shipped yet" in reply, reply
    assert f"order {cust['order_id']} is delivered" in reply
    assert await order_status(services, cust["order_id"]) == "delivered"


async def test_no_greeting_once_the_conversation_has_started(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    session = await _verified(client, cust)
    answer = await _chat(client, session_id=session, message="hmm")
    assert "Hello" not in answer["reply"] and "another way" in answer["reply"], answer["reply"]


async def test_user_id_with_the_zip_on_file_verifies(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    wrong = "00000" if cust["zip"] != "00000" else "11111"
    miss = await _chat(client, message=f"my user id is {cust['id']}, zip {wrong}")
    assert "you're verified" not in miss["reply"] and "user id and zip code" in miss["reply"]
    hit = await _chat(client, message=f"my user id is {cust['id']}, zip code {cust['zip']}")
    assert f"Thanks, {cust['first_name']}, you're verified" in hit["reply"], hit["reply"]
    (row,) = await _rows(
        services,
        "SELECT customer_id FROM interactions WHERE tenant_id = 'retail' AND id = %s",
        hit["session_id"],
    )
    assert row["customer_id"] == cust["id"]


async def test_refund_total_of_the_conversation(
    client: httpx.AsyncClient, services: Services
) -> None:
    cust = await customer_with(services, "pending")
    session = await _verified(client, cust)
    await _chat(
        client,
        session_id=session,
        message=f"please cancel order {cust['order_id']}, I no longer need it",
    )
    done = await _chat(client, session_id=session, message="yes")
    assert done["reply"].startswith("Done")
    paid = await _rows(
        services,
        "SELECT sum(amount) AS s FROM payments WHERE tenant_id = 'retail'"
        " AND order_id = %s AND kind = 'payment'",
        cust["order_id"],
    )
    total = await _chat(client, session_id=session, message="how much will I get back in total?")
    assert f"In total you'll get back ${float(paid[0]['s']):,.2f}" in total["reply"], total["reply"]
