"""Retail account actions on the systems of record (retail policy, tau2-bench ``policy.md``).

Each runs through ``actions.ledger.idempotent``: one transaction that returns the first result for
a repeated idempotency key, re-reads the order under a row lock, re-checks the status rule (the
360 the policy saw may be a few seconds old), writes, and records itself in ``account_actions``.

- :func:`cancel_order`: a pending order → ``cancelled``, every payment refunded to its method.
- :func:`request_return`: items of a delivered order → ``return requested``.
- :func:`swap_items`: items of a delivered order exchanged (``exchange requested``; the price
  difference is recorded and settled when the returned items arrive), or of a pending order
  changed (``pending (item modified)``; the difference is charged or refunded now).
- :func:`modify_order`: a pending order's shipping address, or its payment method (the payment is
  taken from the new method and refunded to the old one).
- :func:`update_default_address`: the customer's default address.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from support_agent.actions.ledger import ActionCall, Conn, idempotent, lock_one, require
from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.services import Services

#: Order status after each swap kind, and the status it requires.
SWAP_STATUS = {"exchange": ("delivered", "exchange requested"),
               "modify": ("pending", "pending (item modified)")}  # fmt: skip


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
            "UPDATE orders SET status = 'cancelled', cancel_reason = %s, updated_at = now()"
            " WHERE tenant_id = %s AND id = %s",
            (reason, call.tenant_id, order_id),
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

    ``item_ids`` may repeat an item the order holds several times. The refund goes to
    ``payment_method_id``: the order's original payment method or one of the customer's gift
    cards (retail policy, tau2-bench ``policy.md``); it is paid when the items arrive.

    Returns:
        ``{"order_id", "status": "return requested", "item_ids", "refund", "payment_method_id"}``
        (refund in currency units: the returned items' prices).

    Raises:
        NotFoundError: the order or payment method is not this customer's, or an item is not in
            the order (as many times as asked).
        InvalidRequestError: the order is not delivered, or the refund method is neither the
            original one nor a gift card.
    """

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        order = await _lock_order(conn, call, order_id)
        require(
            order["status"] == "delivered",
            f"only delivered orders can be returned (status {order['status']})",
        )
        lines = await _order_lines(conn, call.tenant_id, order_id)
        taken = _take_lines(lines, item_ids)
        method = await _payment_method(conn, call, payment_method_id)
        original = await _original_method(conn, call.tenant_id, order_id)
        require(
            method["kind"] == "gift_card" or payment_method_id == original,
            "a refund can only go to the original payment method or a gift card",
        )
        await conn.execute(
            "UPDATE orders SET status = 'return requested', return_items = %s,"
            " return_payment_method_id = %s, updated_at = now() WHERE tenant_id = %s AND id = %s",
            (sorted(item_ids), payment_method_id, call.tenant_id, order_id),
        )
        params = {"order_id": order_id, "item_ids": item_ids,
                  "payment_method_id": payment_method_id}  # fmt: skip
        return params, {
            "order_id": order_id,
            "status": "return requested",
            "item_ids": item_ids,
            "refund": round(sum(float(line["price"]) for line in taken), 2),
            "payment_method_id": payment_method_id,
        }

    return await idempotent(services, call, body)


async def _order_lines(conn: Conn, tenant_id: str, order_id: str) -> list[dict[str, Any]]:
    """The order's lines (``line_no``, ``item_id``, ``product_id``, ``price``), in order."""
    rows = await (
        await conn.execute(
            "SELECT line_no, item_id, product_id, price FROM order_items"
            " WHERE tenant_id = %s AND order_id = %s ORDER BY line_no",
            (tenant_id, order_id),
        )
    ).fetchall()
    return [dict(r) for r in rows]


def _take_lines(lines: list[dict[str, Any]], item_ids: list[str]) -> list[dict[str, Any]]:
    """One distinct order line per requested item id (an item listed twice takes two lines).

    Raises:
        NotFoundError: no item ids, or an item is not in the order as many times as listed.
    """
    free = list(lines)
    taken: list[dict[str, Any]] = []
    for item_id in item_ids:
        line = next((x for x in free if x["item_id"] == item_id), None)
        if line is None:
            raise NotFoundError("item not found in this order")
        free.remove(line)
        taken.append(line)
    if not taken:
        raise NotFoundError("item not found in this order")
    return taken


async def _payment_method(conn: Conn, call: ActionCall, method_id: str) -> dict[str, Any]:
    """The customer's payment method (``id``, ``kind``, ``balance``), locked.

    Raises:
        NotFoundError: not one of this customer's payment methods.
    """
    return await lock_one(
        conn,
        "SELECT id, kind, balance FROM payment_methods WHERE tenant_id = %s AND id = %s"
        " AND customer_id = %s FOR UPDATE",
        (call.tenant_id, method_id, call.customer_id),
        missing="payment method not found for this customer",
    )


async def _original_method(conn: Conn, tenant_id: str, order_id: str) -> str | None:
    """The payment method of the order's first payment."""
    row = await (
        await conn.execute(
            "SELECT payment_method_id FROM payments WHERE tenant_id = %s AND order_id = %s"
            " AND kind = 'payment' ORDER BY seq LIMIT 1",
            (tenant_id, order_id),
        )
    ).fetchone()
    return str(row["payment_method_id"]) if row else None


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
            result = await _switch_payment(conn, call, order_id, str(change["payment_method_id"]))
        else:
            raise InvalidRequestError("a new address or payment method is needed")
        return {"order_id": order_id, **change}, {"order_id": order_id, "status": "pending",
                                                  **result}  # fmt: skip

    return await idempotent(services, call, body)


async def _switch_payment(
    conn: Conn, call: ActionCall, order_id: str, method_id: str
) -> dict[str, Any]:
    """Pay a pending order with another method.

    The amount is paid with the new method and refunded to the old one (a gift card's balance
    moves at once), as the retail policy says.

    Raises:
        NotFoundError: the method is not this customer's.
        InvalidRequestError: the order has more than its one payment, the method is the same, or
            a gift card cannot cover the amount.
    """
    payments = await (
        await conn.execute(
            "SELECT kind, amount, payment_method_id FROM payments WHERE tenant_id = %s"
            " AND order_id = %s ORDER BY seq",
            (call.tenant_id, order_id),
        )
    ).fetchall()
    require(
        len(payments) == 1 and payments[0]["kind"] == "payment",
        "only an order paid in one payment can change its payment method",
    )
    old, amount = str(payments[0]["payment_method_id"]), float(payments[0]["amount"])
    require(old != method_id, "the order is already paid with that payment method, so nothing "
            "needed changing")  # fmt: skip
    new = await _payment_method(conn, call, method_id)
    require(
        not (new["kind"] == "gift_card" and float(new["balance"] or 0) < amount),
        "the gift card balance does not cover the order",
    )
    previous = await _payment_method(conn, call, old)
    seq = await _next_payment_seq(conn, call.tenant_id, order_id)
    for n, (kind, method) in enumerate((("payment", method_id), ("refund", old))):
        await conn.execute(
            "INSERT INTO payments (tenant_id, order_id, seq, kind, amount, payment_method_id)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (call.tenant_id, order_id, seq + n, kind, amount, method),
        )
    for row, delta in ((new, -amount), (previous, amount)):
        if row["kind"] == "gift_card":
            await conn.execute(
                "UPDATE payment_methods SET balance = balance + %s WHERE tenant_id = %s"
                " AND id = %s",
                (delta, call.tenant_id, row["id"]),
            )
    return {"changed": "payment", "payment_method_id": method_id, "amount": amount,
            "refunded_to": old}  # fmt: skip


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
    services: Services,
    tenant_id: str,
    product_ids: list[str] | None = None,
    key: Literal["product_id", "name"] = "product_id",
) -> dict[str, list[dict[str, Any]]]:
    """Available variants of the catalog's products (price in currency units).

    Args:
        services: open services.
        tenant_id: the tenant.
        product_ids: only these products (``None``: the whole catalog).
        key: group by ``product_id`` or by the product's ``name``.

    Returns:
        ``{product id or name: [{"item_id", "options", "price"}]}``.
    """
    if product_ids is not None and not product_ids:
        return {}
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT v.product_id, p.name, v.item_id, v.options, v.price FROM product_variants v"
                " JOIN products p ON p.tenant_id = v.tenant_id AND p.id = v.product_id"
                " WHERE v.tenant_id = %s AND v.available"
                " AND (%s::text[] IS NULL OR v.product_id = ANY(%s)) ORDER BY v.item_id",
                (tenant_id, product_ids, product_ids),
            )
        ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row[key], []).append(
            {"item_id": row["item_id"], "options": row["options"], "price": float(row["price"])}
        )
    return out


async def session_results(
    services: Services, tenant_id: str, session_id: str
) -> list[dict[str, Any]]:
    """The results of the actions this session completed, oldest first."""
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT result FROM account_actions WHERE tenant_id = %s AND interaction_id = %s"
                " ORDER BY created_at",
                (tenant_id, session_id),
            )
        ).fetchall()
    return [dict(r["result"]) for r in rows]


async def swap_items(
    services: Services,
    call: ActionCall,
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
    kind: Literal["exchange", "modify"],
) -> dict[str, Any]:
    """Exchange items of a delivered order, or modify items of a pending one.

    ``item_ids[i]`` (an item of the order; an item the order holds twice may be listed twice)
    becomes ``new_item_ids[i]``, an available variant of the same product. ``kind`` is
    ``exchange`` (delivered → ``exchange requested``: the request is recorded on the order with
    the price difference, settled with ``payment_method_id`` when the returned items arrive) or
    ``modify`` (pending → ``pending (item modified)``: the order's items change now and the
    difference is charged to (positive) or refunded to (negative) ``payment_method_id``). A gift
    card must cover a charge (retail policy, tau2-bench ``policy.md``).

    Returns:
        ``{"order_id", "status", "item_ids", "new_item_ids", "price_difference",
        "payment_method_id"}`` (price difference in currency units, new minus old).

    Raises:
        NotFoundError: the order, an item or the payment method is not this customer's.
        InvalidRequestError: wrong order status, a variant of another product, unavailable or
            the same item, lists of different lengths, or a gift card without enough balance.
    """
    required, new_status = SWAP_STATUS[kind]
    require(bool(item_ids) and len(item_ids) == len(new_item_ids),
            "every item to change needs exactly one new option")  # fmt: skip

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        order = await _lock_order(conn, call, order_id)
        require(
            order["status"] == required,
            f"only {required} orders allow this (status {order['status']})",
        )
        lines = _take_lines(await _order_lines(conn, call.tenant_id, order_id), item_ids)
        new = await _new_variants(conn, call.tenant_id, lines, new_item_ids)
        diff = round(sum(float(new[n]["price"]) - float(line["price"])
                         for line, n in zip(lines, new_item_ids, strict=True)), 2)  # fmt: skip
        method = await _payment_method(conn, call, payment_method_id)
        require(
            not (method["kind"] == "gift_card" and diff > float(method["balance"] or 0)),
            "the gift card balance does not cover the difference",
        )
        if kind == "modify":
            for line, replacement in zip(lines, new_item_ids, strict=True):
                await conn.execute(
                    "UPDATE order_items SET item_id = %s, price = %s, options = %s"
                    " WHERE tenant_id = %s AND order_id = %s AND line_no = %s",
                    (replacement, new[replacement]["price"],
                     json.dumps(new[replacement]["options"]), call.tenant_id, order_id,
                     line["line_no"]),
                )  # fmt: skip
            if diff:
                await _settle(conn, call.tenant_id, order_id, diff, payment_method_id,
                              method["kind"])  # fmt: skip
            await conn.execute(
                "UPDATE orders SET status = %s, updated_at = now() WHERE tenant_id = %s"
                " AND id = %s",
                (new_status, call.tenant_id, order_id),
            )
        else:
            await conn.execute(
                "UPDATE orders SET status = %s, exchange_items = %s, exchange_new_items = %s,"
                " exchange_payment_method_id = %s, exchange_price_difference = %s,"
                " updated_at = now() WHERE tenant_id = %s AND id = %s",
                (new_status, sorted(item_ids), sorted(new_item_ids), payment_method_id, diff,
                 call.tenant_id, order_id),
            )  # fmt: skip
        params = {"order_id": order_id, "item_ids": item_ids, "new_item_ids": new_item_ids,
                  "payment_method_id": payment_method_id}  # fmt: skip
        return params, {**params, "status": new_status, "price_difference": diff}

    return await idempotent(services, call, body)


async def _new_variants(
    conn: Conn, tenant_id: str, lines: list[dict[str, Any]], new_item_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The new variants by item id, each checked against the line it replaces.

    Raises:
        InvalidRequestError: a new variant is of another product, unavailable or the same item.
    """
    new = {
        r["item_id"]: r
        for r in await (
            await conn.execute(
                "SELECT item_id, product_id, options, price, available FROM product_variants"
                " WHERE tenant_id = %s AND item_id = ANY(%s)",
                (tenant_id, list(new_item_ids)),
            )
        ).fetchall()
    }
    for line, replacement in zip(lines, new_item_ids, strict=True):
        variant = new.get(replacement)
        require(
            variant is not None and variant["product_id"] == line["product_id"],
            "an item can only change to a variant of its product",
        )
        require(bool(variant and variant["available"]) and replacement != line["item_id"],
                "that option is not available")  # fmt: skip
    return new


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
