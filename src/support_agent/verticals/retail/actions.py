"""Retail account actions on the systems of record (retail policy, tau2-bench ``policy.md``).

Each runs through ``actions.ledger.idempotent``: one transaction that returns the first result for
a repeated idempotency key, re-reads the order under a row lock, re-checks the status rule (the
360 the policy saw may be a few seconds old), writes, and records itself in ``account_actions``.

- :func:`cancel_order`: a pending order → ``cancelled``, every payment refunded to its method.
- :func:`request_return`: items of a delivered order → ``return requested``.
- :func:`swap_items`: items of a delivered order exchanged (``exchange requested``), or of a pending
  order changed (``pending (items modified)``), the price difference charged or refunded.
- :func:`modify_order`: a pending order's shipping address or payment method.
- :func:`update_default_address`: the customer's default address.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from support_agent.actions.ledger import ActionCall, Conn, idempotent, lock_one, require
from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.services import Services

#: Order status after each swap kind, and the status it requires.
SWAP_STATUS = {"exchange": ("delivered", "exchange requested"),
               "modify": ("pending", "pending (items modified)")}  # fmt: skip


async def _next_payment_seq(conn: Conn, tenant_id: str, order_id: str) -> int:
    """The next free ``seq`` of the order's payment history."""
    row = await (
        await conn.execute(
            "SELECT COALESCE(max(seq), -1) + 1 AS next FROM payments"
            " WHERE tenant_id = %s AND order_id = %s",
            (tenant_id, order_id),
        )
    ).fetchone()
    return int(row["next"]) if row else 0


async def _lock_order(conn: Conn, call: ActionCall, order_id: str) -> dict[str, Any]:
    return await lock_one(
        conn,
        "SELECT id, status FROM orders WHERE tenant_id = %s AND id = %s AND customer_id = %s"
        " FOR UPDATE",
        (call.tenant_id, order_id, call.customer_id),
        missing="order not found for this customer",
    )


async def cancel_order(
    services: Services,
    call: ActionCall,
    order_id: str,
    reason: str,
    *,
    reasons: tuple[str, ...],
    refund_timing: dict[str, str],
) -> dict[str, Any]:
    """Cancel a pending order and refund its payments to the original methods.

    Args:
        services: open services.
        call: who, which session, which idempotency key.
        order_id: the order.
        reason: why (one of ``reasons``).
        reasons: the cancellation reasons the tenant accepts (``vertical.settings``).
        refund_timing: when a refund arrives: ``{"gift_card": ..., "other": ...}``.

    Returns:
        ``{"order_id", "status": "cancelled", "reason", "refund": amount, "refund_timing"}``.

    Raises:
        NotFoundError: the order is not this customer's.
        InvalidRequestError: the order is not pending, or the reason is not accepted.
    """
    require(
        reason in reasons, "cancellation reason must be " + " or ".join(f"'{r}'" for r in reasons)
    )

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        order = await _lock_order(conn, call, order_id)
        require(
            order["status"] == "pending",
            f"only pending orders can be cancelled (status {order['status']})",
        )
        pays = await (
            await conn.execute(
                "SELECT p.amount, p.payment_method_id, m.kind FROM payments p"
                " LEFT JOIN payment_methods m ON m.tenant_id = p.tenant_id"
                " AND m.id = p.payment_method_id"
                " WHERE p.tenant_id = %s AND p.order_id = %s AND p.kind = 'payment'",
                (call.tenant_id, order_id),
            )
        ).fetchall()
        seq = await _next_payment_seq(conn, call.tenant_id, order_id)
        for n, pay in enumerate(pays):
            await conn.execute(
                "INSERT INTO payments (tenant_id, order_id, seq, kind, amount, payment_method_id)"
                " VALUES (%s, %s, %s, 'refund', %s, %s)",
                (call.tenant_id, order_id, seq + n, pay["amount"], pay["payment_method_id"]),
            )
            if pay["kind"] == "gift_card":
                await conn.execute(
                    "UPDATE payment_methods SET balance = balance + %s"
                    " WHERE tenant_id = %s AND id = %s",
                    (pay["amount"], call.tenant_id, pay["payment_method_id"]),
                )
        await conn.execute(
            "UPDATE orders SET status = 'cancelled', updated_at = now()"
            " WHERE tenant_id = %s AND id = %s",
            (call.tenant_id, order_id),
        )
        gift = all(p["kind"] == "gift_card" for p in pays)
        result = {
            "order_id": order_id,
            "status": "cancelled",
            "reason": reason,
            "refund": round(sum(float(p["amount"]) for p in pays), 2),
            "refund_timing": refund_timing["gift_card" if gift else "other"],
        }
        return {"order_id": order_id, "reason": reason}, result

    return await idempotent(services, call, body)


async def request_return(
    services: Services, call: ActionCall, order_id: str, item_ids: list[str], payment_method_id: str
) -> dict[str, Any]:
    """Request the return of items of a delivered order (status → ``return requested``).

    Returns:
        ``{"order_id", "status": "return requested", "item_ids", "refund", "payment_method_id"}``
        (refund in currency units: the items' prices).

    Raises:
        NotFoundError: the order is not this customer's, or an item is not in it.
        InvalidRequestError: the order is not delivered.
    """

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        order = await _lock_order(conn, call, order_id)
        require(
            order["status"] == "delivered",
            f"only delivered orders can be returned (status {order['status']})",
        )
        rows = await (
            await conn.execute(
                "SELECT item_id, price FROM order_items WHERE tenant_id = %s AND order_id = %s",
                (call.tenant_id, order_id),
            )
        ).fetchall()
        prices = {r["item_id"]: float(r["price"]) for r in rows}
        if not item_ids or any(i not in prices for i in item_ids):
            raise NotFoundError("item not found in this order")
        await conn.execute(
            "UPDATE orders SET status = 'return requested', updated_at = now()"
            " WHERE tenant_id = %s AND id = %s",
            (call.tenant_id, order_id),
        )
        params = {
            "order_id": order_id,
            "item_ids": item_ids,
            "payment_method_id": payment_method_id,
        }
        return params, {
            "order_id": order_id,
            "status": "return requested",
            "item_ids": item_ids,
            "refund": round(sum(prices[i] for i in item_ids), 2),
            "payment_method_id": payment_method_id,
        }

    return await idempotent(services, call, body)


async def modify_order(
    services: Services, call: ActionCall, order_id: str, change: dict[str, Any]
) -> dict[str, Any]:
    """Change a pending order's shipping address or payment method.

    ``change`` is ``{"address": {address1, address2, city, state, zip, country}}`` or
    ``{"payment_method_id": id}`` (a method on the customer's file); items change through
    :func:`swap_items`.

    Returns:
        ``{"order_id", "status": "pending", "changed": "address" | "payment"}`` plus the new value.

    Raises:
        NotFoundError: the order or payment method is not this customer's.
        InvalidRequestError: the order is not pending, or the change is empty or of another kind.
    """

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        order = await _lock_order(conn, call, order_id)
        require(
            order["status"] == "pending",
            f"only pending orders can be modified (status {order['status']})",
        )
        if change.get("address"):
            current = await (
                await conn.execute(
                    "SELECT address FROM orders WHERE tenant_id = %s AND id = %s",
                    (call.tenant_id, order_id),
                )
            ).fetchone()
            require(
                not current or _address_key(current["address"]) != _address_key(change["address"]),
                "the order already ships to that address, so nothing needed changing",
            )
            await conn.execute(
                "UPDATE orders SET address = %s, updated_at = now()"
                " WHERE tenant_id = %s AND id = %s",
                (json.dumps(change["address"]), call.tenant_id, order_id),
            )
            result: dict[str, Any] = {"changed": "address", "address": change["address"]}
        elif change.get("payment_method_id"):
            await lock_one(
                conn,
                "SELECT id FROM payment_methods WHERE tenant_id = %s AND id = %s"
                " AND customer_id = %s",
                (call.tenant_id, change["payment_method_id"], call.customer_id),
                missing="payment method not found for this customer",
            )
            paid_with = await (
                await conn.execute(
                    "SELECT DISTINCT payment_method_id FROM payments WHERE tenant_id = %s"
                    " AND order_id = %s AND kind = 'payment'",
                    (call.tenant_id, order_id),
                )
            ).fetchall()
            require(
                [r["payment_method_id"] for r in paid_with] != [change["payment_method_id"]],
                "the order is already paid with that payment method, so nothing needed changing",
            )
            await conn.execute(
                "UPDATE payments SET payment_method_id = %s WHERE tenant_id = %s"
                " AND order_id = %s AND kind = 'payment'",
                (change["payment_method_id"], call.tenant_id, order_id),
            )
            result = {"changed": "payment", "payment_method_id": change["payment_method_id"]}
        else:
            raise InvalidRequestError("a new address or payment method is needed")
        return {"order_id": order_id, **change}, {"order_id": order_id, "status": "pending",
                                                  **result}  # fmt: skip

    return await idempotent(services, call, body)


async def update_default_address(
    services: Services, call: ActionCall, address: dict[str, str]
) -> dict[str, Any]:
    """Set the customer's default address (``{address1, address2, city, state, zip, country}``).

    Returns:
        ``{"customer_id", "address"}``.

    Raises:
        NotFoundError: no such customer.
        InvalidRequestError: the address lacks a street, city, state or zip.
    """
    require(
        all(address.get(k) for k in ("address1", "city", "state", "zip")),
        "the address needs a street, city, state and zip",
    )

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        customer = await lock_one(
            conn,
            "SELECT address FROM customers WHERE tenant_id = %s AND id = %s FOR UPDATE",
            (call.tenant_id, call.customer_id),
            missing="customer not found",
        )
        require(
            _address_key(customer["address"]) != _address_key(address),
            "that is already your default address, so nothing needed changing",
        )
        await conn.execute(
            "UPDATE customers SET address = %s, zip = %s WHERE tenant_id = %s AND id = %s",
            (json.dumps(address), address["zip"], call.tenant_id, call.customer_id),
        )
        return {"address": address}, {"customer_id": call.customer_id, "address": address}

    return await idempotent(services, call, body)


def _address_key(address: dict[str, Any] | None) -> tuple[str, ...]:
    """An address compared field by field (street, unit, city, state, zip), ignoring case."""
    fields = ("address1", "address2", "city", "state", "zip")
    return tuple(str((address or {}).get(f) or "").strip().lower() for f in fields)


async def available_variants(
    services: Services, tenant_id: str, product_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Available variants of the products: ``{product_id: [{"item_id", "options", "price"}]}``."""
    if not product_ids:
        return {}
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT product_id, item_id, options, price FROM product_variants"
                " WHERE tenant_id = %s AND product_id = ANY(%s) AND available ORDER BY item_id",
                (tenant_id, product_ids),
            )
        ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["product_id"], []).append(
            {"item_id": row["item_id"], "options": row["options"], "price": float(row["price"])}
        )
    return out


def choose_variant(
    item: dict[str, Any], variants: list[dict[str, Any]], text: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The variant of ``item``'s product the message asks for.

    Each available variant other than the item itself scores one point per option value the
    message names (whole words, case-insensitive) that differs from the item's current value; the
    single best variant with at least one point is chosen.

    Returns:
        ``(variant or None, the other available variants)``.
    """
    lowered = text.lower()
    others = [v for v in variants if v["item_id"] != item["item_id"]]

    def score(variant: dict[str, Any]) -> int:
        return sum(
            1
            for key, value in variant["options"].items()
            if str(value).lower() != str(item.get("options", {}).get(key, "")).lower()
            and re.search(rf"\b{re.escape(str(value).lower())}\b", lowered)
        )

    scored = sorted(((score(v), v["item_id"], v) for v in others), key=lambda t: (-t[0], t[1]))
    if scored and scored[0][0] > 0 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
        return scored[0][2], others
    return None, others


async def swap_items(
    services: Services,
    call: ActionCall,
    order_id: str,
    swaps: dict[str, str],
    payment_method_id: str,
    kind: Literal["exchange", "modify"],
) -> dict[str, Any]:
    """Exchange items of a delivered order, or modify items of a pending one.

    ``swaps`` maps each current item id to an available variant of the same product; ``kind`` is
    ``exchange`` (delivered → ``exchange requested``; the customer gets return instructions) or
    ``modify`` (pending → ``pending (items modified)``; the order's items change now). The price
    difference is charged to (positive) or refunded to (negative) ``payment_method_id``; a gift
    card must cover a charge (retail policy, tau2-bench ``policy.md``).

    Returns:
        ``{"order_id", "status", "swaps", "price_difference", "payment_method_id"}``.

    Raises:
        NotFoundError: the order, an item or the payment method is not this customer's.
        InvalidRequestError: wrong order status, a variant of another product or unavailable,
            or a gift card without enough balance.
    """
    required, new_status = SWAP_STATUS[kind]

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        order = await _lock_order(conn, call, order_id)
        require(
            order["status"] == required,
            f"only {required} orders allow this (status {order['status']})",
        )
        lines, new = await _swap_rows(conn, call.tenant_id, order_id, swaps)
        diff = round(sum(float(new[n]["price"]) - float(lines[o]["price"])
                         for o, n in swaps.items()), 2)  # fmt: skip
        method = await lock_one(
            conn,
            "SELECT kind, balance FROM payment_methods WHERE tenant_id = %s AND id = %s"
            " AND customer_id = %s",
            (call.tenant_id, payment_method_id, call.customer_id),
            missing="payment method not found for this customer",
        )
        require(
            not (method["kind"] == "gift_card" and diff > float(method["balance"] or 0)),
            "the gift card balance does not cover the difference",
        )
        if kind == "modify":
            for old, replacement in swaps.items():
                await conn.execute(
                    "UPDATE order_items SET item_id = %s, price = %s, options = %s"
                    " WHERE tenant_id = %s AND order_id = %s AND line_no = %s",
                    (replacement, new[replacement]["price"],
                     json.dumps(new[replacement]["options"]), call.tenant_id, order_id,
                     lines[old]["line_no"]),
                )  # fmt: skip
        if diff:
            await _settle(conn, call.tenant_id, order_id, diff, payment_method_id, method["kind"])
        await conn.execute(
            "UPDATE orders SET status = %s, updated_at = now() WHERE tenant_id = %s AND id = %s",
            (new_status, call.tenant_id, order_id),
        )
        params = {"order_id": order_id, "swaps": swaps, "payment_method_id": payment_method_id}
        result = {"order_id": order_id, "status": new_status, "swaps": swaps,
                  "price_difference": diff, "payment_method_id": payment_method_id}  # fmt: skip
        return params, result

    return await idempotent(services, call, body)


async def _swap_rows(
    conn: Conn, tenant_id: str, order_id: str, swaps: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The order's lines by item id and the new variants by item id, checked.

    Raises:
        NotFoundError: an item is not in the order.
        InvalidRequestError: a new variant is of another product, unavailable or the same item.
    """
    lines = {
        r["item_id"]: r
        for r in await (
            await conn.execute(
                "SELECT line_no, item_id, product_id, price FROM order_items"
                " WHERE tenant_id = %s AND order_id = %s",
                (tenant_id, order_id),
            )
        ).fetchall()
    }
    new = {
        r["item_id"]: r
        for r in await (
            await conn.execute(
                "SELECT item_id, product_id, options, price, available FROM product_variants"
                " WHERE tenant_id = %s AND item_id = ANY(%s)",
                (tenant_id, list(swaps.values())),
            )
        ).fetchall()
    }
    if not swaps or any(old not in lines for old in swaps):
        raise NotFoundError("item not found in this order")
    for old, replacement in swaps.items():
        variant = new.get(replacement)
        require(
            variant is not None and variant["product_id"] == lines[old]["product_id"],
            "an item can only change to a variant of its product",
        )
        require(bool(variant and variant["available"]) and replacement != old,
                "that option is not available")  # fmt: skip
    return lines, new


async def _settle(
    conn: Conn, tenant_id: str, order_id: str, diff: float, method_id: str, method_kind: str
) -> None:
    """Charge (``diff`` > 0) or refund (< 0) a price difference to a payment method."""
    await conn.execute(
        "INSERT INTO payments (tenant_id, order_id, seq, kind, amount, payment_method_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (tenant_id, order_id, await _next_payment_seq(conn, tenant_id, order_id),
         "payment" if diff > 0 else "refund", abs(diff), method_id),
    )  # fmt: skip
    if method_kind == "gift_card":
        await conn.execute(
            "UPDATE payment_methods SET balance = balance - %s WHERE tenant_id = %s AND id = %s",
            (diff, tenant_id, method_id),
        )
