"""Retail account actions on the systems of record (retail policy, tau2-bench ``policy.md``).

Each action re-reads the order under a row lock, re-checks the status rule (the 360 the policy saw
may be a few seconds old), writes, and records the action under an idempotency key in
``account_actions``: calling it again with the same key returns the first result and writes
nothing.
"""

from __future__ import annotations

import json
from typing import Any

from support_agent.actions.ledger import already_done, record_action
from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.services import Services


async def _lock_order(conn: Any, tenant_id: str, customer_id: str, order_id: str) -> dict[str, Any]:
    row = await (
        await conn.execute(
            "SELECT id, status FROM orders WHERE tenant_id = %s AND id = %s AND customer_id = %s"
            " FOR UPDATE",
            (tenant_id, order_id, customer_id),
        )
    ).fetchone()
    if row is None:
        raise NotFoundError("order not found for this customer")
    return dict(row)


async def cancel_order(
    services: Services,
    tenant_id: str,
    customer_id: str,
    session_id: str,
    order_id: str,
    reason: str,
    idempotency_key: str,
) -> dict[str, Any]:
    """Cancel a pending order and refund its payments to the original methods.

    Returns:
        ``{"order_id", "status": "cancelled", "refund": amount, "refund_timing"}``.

    Raises:
        NotFoundError: the order is not this customer's.
        InvalidRequestError: the order is not pending, or the reason is not accepted.
    """
    if reason not in ("no longer needed", "ordered by mistake"):
        raise InvalidRequestError(
            "cancellation reason must be 'no longer needed' or 'ordered by mistake'"
        )
    async with services.pool.connection() as conn, conn.transaction():
        if (done := await already_done(conn, tenant_id, idempotency_key)) is not None:
            return done
        order = await _lock_order(conn, tenant_id, customer_id, order_id)
        if order["status"] != "pending":
            raise InvalidRequestError(
                f"only pending orders can be cancelled (status {order['status']})"
            )
        pays = await (
            await conn.execute(
                "SELECT p.amount, p.payment_method_id, m.kind FROM payments p"
                " LEFT JOIN payment_methods m ON m.tenant_id = p.tenant_id"
                " AND m.id = p.payment_method_id"
                " WHERE p.tenant_id = %s AND p.order_id = %s AND p.kind = 'payment'",
                (tenant_id, order_id),
            )
        ).fetchall()
        seq_row = await (
            await conn.execute(
                "SELECT COALESCE(max(seq), -1) + 1 AS next FROM payments"
                " WHERE tenant_id = %s AND order_id = %s",
                (tenant_id, order_id),
            )
        ).fetchone()
        seq = int(seq_row["next"]) if seq_row else 0
        total = 0.0
        for n, pay in enumerate(pays):
            total += float(pay["amount"])
            await conn.execute(
                "INSERT INTO payments (tenant_id, order_id, seq, kind, amount, payment_method_id)"
                " VALUES (%s, %s, %s, 'refund', %s, %s)",
                (tenant_id, order_id, seq + n, pay["amount"], pay["payment_method_id"]),
            )
            if pay["kind"] == "gift_card":
                await conn.execute(
                    "UPDATE payment_methods SET balance = balance + %s"
                    " WHERE tenant_id = %s AND id = %s",
                    (pay["amount"], tenant_id, pay["payment_method_id"]),
                )
        await conn.execute(
            "UPDATE orders SET status = 'cancelled', updated_at = now()"
            " WHERE tenant_id = %s AND id = %s",
            (tenant_id, order_id),
        )
        gift = all(p["kind"] == "gift_card" for p in pays)
        result = {
            "order_id": order_id,
            "status": "cancelled",
            "reason": reason,
            "refund": round(total, 2),
            "refund_timing": "immediately" if gift else "in 5 to 7 business days",
        }
        await record_action(
            conn,
            tenant_id,
            idempotency_key,
            customer_id,
            session_id,
            "cancel_order",
            {"order_id": order_id, "reason": reason},
            result,
        )
        return result


async def request_return(
    services: Services,
    tenant_id: str,
    customer_id: str,
    session_id: str,
    order_id: str,
    item_ids: list[str],
    payment_method_id: str,
    idempotency_key: str,
) -> dict[str, Any]:
    """Request the return of items of a delivered order (status → ``return requested``).

    Returns:
        ``{"order_id", "status": "return requested", "item_ids", "refund", "payment_method_id"}``.

    Raises:
        NotFoundError: the order is not this customer's, or an item is not in it.
        InvalidRequestError: the order is not delivered.
    """
    async with services.pool.connection() as conn, conn.transaction():
        if (done := await already_done(conn, tenant_id, idempotency_key)) is not None:
            return done
        order = await _lock_order(conn, tenant_id, customer_id, order_id)
        if order["status"] != "delivered":
            raise InvalidRequestError(
                f"only delivered orders can be returned (status {order['status']})"
            )
        rows = await (
            await conn.execute(
                "SELECT item_id, price FROM order_items WHERE tenant_id = %s AND order_id = %s",
                (tenant_id, order_id),
            )
        ).fetchall()
        prices = {r["item_id"]: float(r["price"]) for r in rows}
        if not item_ids or any(i not in prices for i in item_ids):
            raise NotFoundError("item not found in this order")
        await conn.execute(
            "UPDATE orders SET status = 'return requested', updated_at = now()"
            " WHERE tenant_id = %s AND id = %s",
            (tenant_id, order_id),
        )
        result = {
            "order_id": order_id,
            "status": "return requested",
            "item_ids": item_ids,
            "refund": round(sum(prices[i] for i in item_ids), 2),
            "payment_method_id": payment_method_id,
        }
        await record_action(
            conn,
            tenant_id,
            idempotency_key,
            customer_id,
            session_id,
            "return_items",
            {"order_id": order_id, "item_ids": item_ids, "payment_method_id": payment_method_id},
            result,
        )
        return result


async def modify_order(
    services: Services,
    tenant_id: str,
    customer_id: str,
    session_id: str,
    order_id: str,
    change: dict[str, Any],
    idempotency_key: str,
) -> dict[str, Any]:
    """Change a pending order's shipping address or payment method.

    ``change`` is ``{"address": {address1, address2, city, state, zip, country}}`` or
    ``{"payment_method_id": id}`` (a method on the customer's file). Changing items needs a choice
    of variant and goes to a human agent.

    Returns:
        ``{"order_id", "status": "pending", "changed": "address" | "payment"}`` plus the new value.

    Raises:
        NotFoundError: the order or payment method is not this customer's.
        InvalidRequestError: the order is not pending, or the change is empty or of another kind.
    """
    async with services.pool.connection() as conn, conn.transaction():
        if (done := await already_done(conn, tenant_id, idempotency_key)) is not None:
            return done
        order = await _lock_order(conn, tenant_id, customer_id, order_id)
        if order["status"] != "pending":
            raise InvalidRequestError(
                f"only pending orders can be modified (status {order['status']})"
            )
        if change.get("address"):
            await conn.execute(
                "UPDATE orders SET address = %s, updated_at = now()"
                " WHERE tenant_id = %s AND id = %s",
                (json.dumps(change["address"]), tenant_id, order_id),
            )
            result: dict[str, Any] = {"changed": "address", "address": change["address"]}
        elif change.get("payment_method_id"):
            method = await (
                await conn.execute(
                    "SELECT id FROM payment_methods WHERE tenant_id = %s AND id = %s"
                    " AND customer_id = %s",
                    (tenant_id, change["payment_method_id"], customer_id),
                )
            ).fetchone()
            if method is None:
                raise NotFoundError("payment method not found for this customer")
            await conn.execute(
                "UPDATE payments SET payment_method_id = %s WHERE tenant_id = %s"
                " AND order_id = %s AND kind = 'payment'",
                (change["payment_method_id"], tenant_id, order_id),
            )
            result = {"changed": "payment", "payment_method_id": change["payment_method_id"]}
        else:
            raise InvalidRequestError("a new address or payment method is needed")
        result = {"order_id": order_id, "status": "pending", **result}
        await record_action(conn, tenant_id, idempotency_key, customer_id, session_id,
                            "modify_order", {"order_id": order_id, **change}, result)  # fmt: skip
        return result


async def update_default_address(
    services: Services,
    tenant_id: str,
    customer_id: str,
    session_id: str,
    address: dict[str, str],
    idempotency_key: str,
) -> dict[str, Any]:
    """Set the customer's default address (``{address1, address2, city, state, zip, country}``).

    Returns:
        ``{"customer_id", "address"}``.

    Raises:
        NotFoundError: no such customer.
        InvalidRequestError: the address lacks a street, city, state or zip.
    """
    if not all(address.get(k) for k in ("address1", "city", "state", "zip")):
        raise InvalidRequestError("the address needs a street, city, state and zip")
    async with services.pool.connection() as conn, conn.transaction():
        if (done := await already_done(conn, tenant_id, idempotency_key)) is not None:
            return done
        cur = await conn.execute(
            "UPDATE customers SET address = %s, zip = %s WHERE tenant_id = %s AND id = %s",
            (json.dumps(address), address["zip"], tenant_id, customer_id),
        )
        if cur.rowcount == 0:
            raise NotFoundError("customer not found")
        result = {"customer_id": customer_id, "address": address}
        await record_action(conn, tenant_id, idempotency_key, customer_id, session_id,
                            "update_default_address", {"address": address}, result)  # fmt: skip
        return result
