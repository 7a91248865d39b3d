"""Retail account actions beyond cancel and return: modify a pending order, update the default
address. Each runs only after the customer confirms, and only once.
"""

from __future__ import annotations

from typing import Any

from support_agent.conversation import Agent
from support_agent.services import Services
from tests.conftest import customer_with, new_session, say

NEW_ADDRESS = "12 Main Street, Apt 4, Springfield, IL 62704"


async def _row(services: Services, sql: str, *params: object) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        row = await (await conn.execute(sql, params)).fetchone()
    assert row is not None
    return dict(row)


async def test_pending_order_address_changes_after_yes(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "pending")
    sid = new_session()
    await say(agent, sid, f"I'm {cust['first_name']} {cust['last_name']}, zip {cust['zip']}")
    asked = await say(
        agent, sid, f"Please change the shipping address of order {cust['order_id']} to "
        f"{NEW_ADDRESS}"
    )  # fmt: skip
    assert asked.decision == "confirm" and asked.policy["action"] == "modify_order"
    assert "12 Main Street" in asked.reply
    sql = "SELECT address FROM orders WHERE tenant_id='retail' AND id=%s"
    before = (await _row(services, sql, cust["order_id"]))["address"]
    assert before["address1"] != "12 Main Street"
    done = await say(agent, sid, "yes")
    assert done.decision == "execute", done.reply
    after = (await _row(services, sql, cust["order_id"]))["address"]
    assert (after["address1"], after["zip"]) == ("12 Main Street", "62704")
    again = await say(agent, sid, "yes")  # a repeated yes changes nothing more
    assert again.decision != "execute"
    count = await _row(
        services,
        "SELECT count(*) AS n FROM account_actions WHERE tenant_id='retail'"
        " AND action='modify_order' AND customer_id=%s",
        cust["id"],
    )
    assert count["n"] == 1


async def test_missing_address_is_asked_for_then_confirmed(
    services: Services, agent: Agent
) -> None:
    cust = await customer_with(services, "pending")
    sid = new_session()
    await say(agent, sid, f"I'm {cust['first_name']} {cust['last_name']}, zip {cust['zip']}")
    asked = await say(agent, sid, f"I need to change the address on order {cust['order_id']}")
    assert "new address" in asked.reply and asked.decision != "execute"
    proposed = await say(agent, sid, NEW_ADDRESS)
    assert proposed.decision == "confirm", proposed.reply
    assert "12 Main Street" in proposed.reply
    sql = "SELECT address FROM orders WHERE tenant_id='retail' AND id=%s"
    assert (await _row(services, sql, cust["order_id"]))["address"]["zip"] != "62704"
    await say(agent, sid, "yes")
    assert (await _row(services, sql, cust["order_id"]))["address"]["zip"] == "62704"


async def test_delivered_order_cannot_be_modified(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    sid = new_session()
    await say(agent, sid, f"I'm {cust['first_name']} {cust['last_name']}, zip {cust['zip']}")
    result = await say(
        agent, sid, f"Change the shipping address of order {cust['order_id']} to {NEW_ADDRESS}"
    )
    assert result.decision == "deny"
    assert "order is delivered" in result.policy["reason"]


async def test_default_address_is_updated_after_yes(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "processed")
    sid = new_session()
    await say(agent, sid, f"I'm {cust['first_name']} {cust['last_name']}, zip {cust['zip']}")
    asked = await say(agent, sid, f"Please update my default address on file to {NEW_ADDRESS}")
    assert asked.decision == "confirm" and asked.policy["action"] == "update_default_address"
    sql = "SELECT address, zip FROM customers WHERE tenant_id='retail' AND id=%s"
    assert (await _row(services, sql, cust["id"]))["zip"] == cust["zip"]
    await say(agent, sid, "yes")
    row = await _row(services, sql, cust["id"])
    assert row["zip"] == "62704" and row["address"]["city"] == "Springfield"


async def _distinct_variant(services: Services, status: str) -> tuple[dict[str, Any], str, str]:
    """A customer with a ``status`` order, one of its items, and an option value that exactly one
    other available variant of that product has (so naming it picks that variant)."""
    for _ in range(20):
        cust = await customer_with(services, status)
        async with services.pool.connection() as conn:
            item = await (
                await conn.execute(
                    "SELECT item_id, product_id, options FROM order_items WHERE tenant_id='retail'"
                    " AND order_id=%s AND name=%s",
                    (cust["order_id"], cust["item"]),
                )
            ).fetchone()
            assert item is not None
            paid = await (
                await conn.execute(
                    "SELECT m.kind FROM payments p JOIN payment_methods m ON m.tenant_id ="
                    " p.tenant_id AND m.id = p.payment_method_id WHERE p.tenant_id='retail'"
                    " AND p.order_id=%s ORDER BY p.seq LIMIT 1",
                    (cust["order_id"],),
                )
            ).fetchone()
            if paid is None or paid["kind"] == "gift_card":  # a gift card may not cover it
                continue
            others = await (
                await conn.execute(
                    "SELECT item_id, options FROM product_variants WHERE tenant_id='retail'"
                    " AND product_id=%s AND available AND item_id <> %s",
                    (item["product_id"], item["item_id"]),
                )
            ).fetchall()
        for other in others:
            for key, value in other["options"].items():
                same = [o for o in others if str(o["options"].get(key)) == str(value)]
                if str(item["options"].get(key)) != str(value) and len(same) == 1:
                    return {**cust, "item_id": item["item_id"]}, str(value), str(other["item_id"])
    raise AssertionError(f"no suitable {status} order in 20 customers")


async def test_exchange_picks_the_named_variant_and_runs_once(
    services: Services, agent: Agent
) -> None:
    cust, value, new_item = await _distinct_variant(services, "delivered")
    sid = new_session()
    await say(agent, sid, f"I'm {cust['first_name']} {cust['last_name']}, zip {cust['zip']}")
    asked = await say(agent, sid, f"can I exchange the {cust['item']} for the {value} one instead")
    assert asked.decision == "confirm" and asked.policy["action"] == "exchange_items", asked.reply
    args = asked.policy["target"]["args"]
    assert (args["item_ids"], args["new_item_ids"]) == ([cust["item_id"]], [new_item])
    assert value in asked.reply
    done = await say(agent, sid, "yes")
    assert done.decision == "execute", done.reply
    row = await _row(services, "SELECT status FROM orders WHERE tenant_id='retail' AND id=%s",
                     cust["order_id"])  # fmt: skip
    assert row["status"] == "exchange requested"
    count = await _row(
        services,
        "SELECT count(*) AS n FROM account_actions WHERE tenant_id='retail'"
        " AND action='exchange_items' AND customer_id=%s",
        cust["id"],
    )
    assert count["n"] == 1


async def test_pending_item_change_asks_for_the_option_then_changes_the_order(
    services: Services, agent: Agent
) -> None:
    cust, value, new_item = await _distinct_variant(services, "pending")
    sid = new_session()
    await say(agent, sid, f"I'm {cust['first_name']} {cust['last_name']}, zip {cust['zip']}")
    asked = await say(
        agent, sid, f"I want to change the {cust['item']} in order {cust['order_id']}"
    )
    assert "Which option" in asked.reply, asked.reply
    proposed = await say(agent, sid, f"the {value} one please")
    assert proposed.decision == "confirm", proposed.reply
    args = proposed.policy["target"]["args"]
    assert (args["item_ids"], args["new_item_ids"]) == ([cust["item_id"]], [new_item])
    await say(agent, sid, "yes")
    line = await _row(
        services,
        "SELECT o.status, i.item_id FROM orders o JOIN order_items i ON i.tenant_id=o.tenant_id"
        " AND i.order_id=o.id WHERE o.tenant_id='retail' AND o.id=%s AND i.name=%s",
        cust["order_id"],
        cust["item"],
    )
    assert line == {"status": "pending (item modified)", "item_id": new_item}
