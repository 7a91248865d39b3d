"""Retail account actions on the systems of record (retail policy, tau2-bench ``policy.md``).

Each action re-reads the order under a row lock, re-checks the status rule (the 360 the policy saw
may be a few seconds old), writes, and records the action under an idempotency key in
``account_actions``: calling it again with the same key returns the first result and writes
nothing.
"""

from __future__ import annotations

import json
from typing import Any

from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.services import Services


async def _already_done(conn: Any, tenant_id: str, key: str) -> dict[str, Any] | None:
    row = await (
        await conn.execute(
            "SELECT result FROM account_actions WHERE tenant_id = %s AND idempotency_key = %s",
            (tenant_id, key),
        )
    ).fetchone()
    return None if row is None else dict(row["result"])


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


async def _record(
    conn: Any,
    tenant_id: str,
    key: str,
    customer_id: str,
    session_id: str,
    action: str,
    params: dict[str, Any],
    result: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO account_actions (tenant_id, idempotency_key, customer_id, interaction_id,"
        " action, params, result) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (tenant_id, key, customer_id, session_id, action, json.dumps(params), json.dumps(result)),
    )


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
        if (done := await _already_done(conn, tenant_id, idempotency_key)) is not None:
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
        await _record(
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
        if (done := await _already_done(conn, tenant_id, idempotency_key)) is not None:
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
        await _record(
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
