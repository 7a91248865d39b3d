"""The expected end state of a τ²-bench retail task, and the same view of our systems of record.

τ²-bench grades a retail task by replaying its expected tool calls on a copy of the database
and comparing the result with the database the agent left behind. This module does the same
with its own code (no τ² dependency): :func:`replay` applies the write calls the task expects
to a deep copy of ``db.json``, following the semantics of τ²-bench's retail tools
(sierra-research/tau2-bench, ``domains/retail/tools.py``, MIT); :func:`expected_view` and
:func:`actual_view` reduce both worlds to one comparable shape for the task's customer:

``{"address": {...}, "balances": {method id: float}, "orders": {order id: {"status",
"address", "items": sorted item ids, "payments": sorted [kind, amount, method],
"cancel_reason", "return_items", "return_payment_method_id", "exchange_items",
"exchange_new_items", "exchange_payment_method_id"}}}``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from support_agent.services import Services

#: τ²-bench retail tools that change the database (the rest only read).
WRITE_TOOLS = frozenset({
    "cancel_pending_order",
    "exchange_delivered_order_items",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
})  # fmt: skip

_ADDRESS_KEYS = ("address1", "address2", "city", "state", "country", "zip")


def _variant(db: dict[str, Any], item_id: str) -> tuple[str, dict[str, Any]]:
    for product in db["products"].values():
        if item_id in product["variants"]:
            return product["product_id"], product["variants"][item_id]
    raise KeyError(f"item {item_id} is in no product")


def _pay(db: dict[str, Any], order: dict[str, Any], kind: str, amount: float, method: str) -> None:
    order["payment_history"].append(
        {"transaction_type": kind, "amount": amount, "payment_method_id": method}
    )
    pm = db["users"][order["user_id"]]["payment_methods"][method]
    if pm["source"] == "gift_card":
        pm["balance"] = round(pm["balance"] + (amount if kind == "refund" else -amount), 2)


class Rejected(ValueError):
    """A write the retail tools refuse (wrong status, gift card balance, unavailable item...)."""


def _require(condition: bool, why: str) -> None:
    if not condition:
        raise Rejected(why)


def replay(db: dict[str, Any], calls: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The database after the task's expected write calls (the input is not changed).

    A call the retail tools would refuse (the checks of τ²-bench's tools and ``policy.md``:
    order status, the refund method of a return, available variants of the same product, a
    gift card's balance for a price difference) changes nothing, as in τ²-bench.

    Args:
        db: the τ² retail database (``users``, ``orders``, ``products``).
        calls: the task's expected actions (``{"name", "arguments"}``); reads are skipped.

    Returns:
        ``(world, rejected)``: a changed deep copy of ``db`` and why each refused call was
        refused (``"<tool>: <reason>"``).
    """
    world = copy.deepcopy(db)
    rejected: list[str] = []
    for call in calls:
        if call["name"] in WRITE_TOOLS:
            try:
                _apply(world, call["name"], call["arguments"])
            except (Rejected, KeyError) as exc:
                rejected.append(f"{call['name']}: {exc}")
    return world, rejected


def _apply(world: dict[str, Any], name: str, args: dict[str, Any]) -> None:
    """One write call on ``world`` (checks first: a refused call changes nothing)."""
    if name == "modify_user_address":
        world["users"][args["user_id"]]["address"] = {k: args[k] for k in _ADDRESS_KEYS}
        return
    order = world["orders"][args["order_id"]]
    methods = world["users"][order["user_id"]]["payment_methods"]
    if name in ("return_delivered_order_items", "exchange_delivered_order_items"):
        _require(order["status"] == "delivered", "non-delivered order")
    else:
        _require(order["status"] == "pending", "non-pending order")
    if name == "cancel_pending_order":
        _require(args["reason"] in ("no longer needed", "ordered by mistake"), "bad reason")
        for pay in list(order["payment_history"]):
            _pay(world, order, "refund", pay["amount"], pay["payment_method_id"])
        order["status"], order["cancel_reason"] = "cancelled", args["reason"]
    elif name == "modify_pending_order_address":
        order["address"] = {k: args[k] for k in _ADDRESS_KEYS}
    elif name == "modify_pending_order_payment":
        paid = order["payment_history"]
        _require(len(paid) == 1, "more than one payment")
        new = methods[args["payment_method_id"]]
        _require(args["payment_method_id"] != paid[0]["payment_method_id"], "same method")
        _require(
            new["source"] != "gift_card" or new["balance"] >= paid[0]["amount"],
            "insufficient gift card balance",
        )
        _pay(world, order, "payment", paid[0]["amount"], args["payment_method_id"])
        _pay(world, order, "refund", paid[0]["amount"], paid[0]["payment_method_id"])
    elif name == "return_delivered_order_items":
        method = methods[args["payment_method_id"]]
        _require(
            method["source"] == "gift_card"
            or args["payment_method_id"] == order["payment_history"][0]["payment_method_id"],
            "refund method must be the original one or a gift card",
        )
        held = [i["item_id"] for i in order["items"]]
        for item_id in args["item_ids"]:
            _require(args["item_ids"].count(item_id) <= held.count(item_id), "item not in order")
        order["status"] = "return requested"
        order["return_items"] = sorted(args["item_ids"])
        order["return_payment_method_id"] = args["payment_method_id"]
    else:  # exchange (delivered) or modify items (pending): old and new ids pair up
        _require(len(args["item_ids"]) == len(args["new_item_ids"]), "unpaired items")
        diff, changes = 0.0, []
        free = list(order["items"])
        for old, new in zip(args["item_ids"], args["new_item_ids"], strict=True):
            line = next((i for i in free if i["item_id"] == old), None)
            _require(line is not None, "item not in order")
            assert line is not None
            free.remove(line)
            product_id, variant = _variant(world, new)
            _require(product_id == line["product_id"], "another product")
            _require(variant["available"] and new != old, "new item unavailable or the same")
            diff += variant["price"] - line["price"]
            changes.append((line, new, variant))
        diff = round(diff, 2)
        method = methods[args["payment_method_id"]]
        _require(
            method["source"] != "gift_card" or method["balance"] >= diff,
            "insufficient gift card balance to pay for the price difference",
        )
        if name == "exchange_delivered_order_items":
            order["status"] = "exchange requested"
            order["exchange_items"] = sorted(args["item_ids"])
            order["exchange_new_items"] = sorted(args["new_item_ids"])
            order["exchange_payment_method_id"] = args["payment_method_id"]
        else:
            for line, new, variant in changes:
                line.update(item_id=new, price=variant["price"], options=variant["options"])
            if diff:
                kind = "payment" if diff > 0 else "refund"
                _pay(world, order, kind, abs(diff), args["payment_method_id"])
            order["status"] = "pending (item modified)"


def _address(value: dict[str, Any] | None) -> dict[str, str]:
    value = value or {}
    return {k: str(value.get(k) or "").strip() for k in _ADDRESS_KEYS}


def _order_view(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": order["status"],
        "address": _address(order.get("address")),
        "items": sorted(i["item_id"] for i in order["items"]),
        "payments": sorted(
            [p["transaction_type"], round(float(p["amount"]), 2), p["payment_method_id"]]
            for p in order["payment_history"]
        ),
        "cancel_reason": order.get("cancel_reason"),
        "return_items": sorted(order.get("return_items") or []) or None,
        "return_payment_method_id": order.get("return_payment_method_id"),
        "exchange_items": sorted(order.get("exchange_items") or []) or None,
        "exchange_new_items": sorted(order.get("exchange_new_items") or []) or None,
        "exchange_payment_method_id": order.get("exchange_payment_method_id"),
    }


def expected_view(world: dict[str, Any], user_id: str) -> dict[str, Any]:
    """One customer's part of a τ² database, in the comparable shape (module docstring)."""
    user = world["users"][user_id]
    return {
        "address": _address(user["address"]),
        "balances": {
            pid: round(float(pm["balance"]), 2)
            for pid, pm in user["payment_methods"].items()
            if pm["source"] == "gift_card"
        },
        "orders": {
            oid: _order_view(order)
            for oid, order in world["orders"].items()
            if order["user_id"] == user_id
        },
    }


async def actual_view(services: Services, tenant_id: str, user_id: str) -> dict[str, Any]:
    """The same customer's part of our systems of record, in the comparable shape."""
    async with services.pool.connection() as conn:
        customer = await (
            await conn.execute(
                "SELECT address FROM customers WHERE tenant_id = %s AND id = %s",
                (tenant_id, user_id),
            )
        ).fetchone()
        methods = await (
            await conn.execute(
                "SELECT id, balance FROM payment_methods WHERE tenant_id = %s"
                " AND customer_id = %s AND kind = 'gift_card'",
                (tenant_id, user_id),
            )
        ).fetchall()
        orders = await (
            await conn.execute(
                "SELECT id, status, address, cancel_reason, return_items,"
                " return_payment_method_id, exchange_items, exchange_new_items,"
                " exchange_payment_method_id FROM orders WHERE tenant_id = %s"
                " AND customer_id = %s",
                (tenant_id, user_id),
            )
        ).fetchall()
        items = await (
            await conn.execute(
                "SELECT order_id, item_id FROM order_items WHERE tenant_id = %s AND order_id ="
                " ANY(%s)",
                (tenant_id, [o["id"] for o in orders]),
            )
        ).fetchall()
        payments = await (
            await conn.execute(
                "SELECT order_id, kind, amount, payment_method_id FROM payments"
                " WHERE tenant_id = %s AND order_id = ANY(%s)",
                (tenant_id, [o["id"] for o in orders]),
            )
        ).fetchall()
    view_orders: dict[str, Any] = {}
    for o in orders:
        address = o["address"] if isinstance(o["address"], dict) else json.loads(o["address"])
        view_orders[o["id"]] = _order_view({
            **o,
            "address": address,
            "items": [i for i in items if i["order_id"] == o["id"]],
            "payment_history": [
                {"transaction_type": p["kind"], "amount": p["amount"],
                 "payment_method_id": p["payment_method_id"]}
                for p in payments if p["order_id"] == o["id"]
            ],
        })  # fmt: skip
    address = (customer or {}).get("address") or {}
    return {
        "address": _address(address if isinstance(address, dict) else json.loads(address)),
        "balances": {m["id"]: round(float(m["balance"]), 2) for m in methods},
        "orders": view_orders,
    }


def differences(got: dict[str, Any], want: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Where ``got`` differs from ``want``, split into missed and unwanted changes.

    Args:
        got: our end state (the comparable shape).
        want: the expected end state.
        base: the state before the task.

    Returns:
        ``{"missing": [paths the task changed that we did not get right], "unwanted": [paths
        we changed that the task did not ask to change]}``; both empty when the writes match.
    """
    missing, unwanted = [], []
    paths = [("address",), ("balances",)] + [("orders", oid) for oid in want["orders"]]
    for path in paths:
        g: Any = got
        w: Any = want
        b: Any = base
        for key in path:
            g, w, b = (g or {}).get(key), (w or {}).get(key), (b or {}).get(key)
        if g == w:
            continue
        if w != b:
            missing.append("/".join(path))
        else:
            unwanted.append("/".join(path))
    return {"missing": missing, "unwanted": unwanted}
