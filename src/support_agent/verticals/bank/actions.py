"""Bank account actions on the systems of record (Rho-Bank policy, tau2-bench banking).

Each runs through ``actions.ledger.idempotent``: one transaction that returns the first result for
a repeated idempotency key, locks the record it changes, re-checks the status rule the policy
engine applied (the 360 it saw may be seconds old), writes and records itself.

- :func:`freeze_card`: an active card → ``FROZEN`` (lost, stolen or compromised card).
- :func:`order_replacement_card`: a replacement for an active or frozen card, shipped in the
  delivery time the tenant's settings state ("What Happens When You Order a Replacement Card").
- :func:`dispute_transaction`: a dispute ``SUBMITTED`` on a posted debit that has none yet.
- :func:`apply_retention_offer`: applies a retention offer made in this session
  (``policy.retention`` approved it), by what the offer means in the tenant's settings: a fee
  waiver flag on the card, a downgrade to the no-annual-fee card, or a statement credit.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from support_agent.actions.ledger import ActionCall, Conn, idempotent, lock_one, require
from support_agent.actions.offers import offer_row_id
from support_agent.errors import InvalidRequestError
from support_agent.services import Services
from support_agent.state import Offer

OfferKind = Literal["fee_waiver", "downgrade", "statement_credit"]


async def _lock_card(conn: Conn, call: ActionCall, card_id: str) -> dict[str, Any]:
    return await lock_one(
        conn,
        "SELECT id, kind, product, status, details FROM holdings WHERE tenant_id = %s"
        " AND id = %s AND customer_id = %s AND kind IN ('credit_card', 'debit_card') FOR UPDATE",
        (call.tenant_id, card_id, call.customer_id),
        missing="card not found for this customer",
    )


async def freeze_card(services: Services, call: ActionCall, card_id: str) -> dict[str, Any]:
    """Freeze an active card.

    Returns:
        ``{"card_id", "status": "FROZEN"}``.

    Raises:
        NotFoundError: the card is not this customer's.
        InvalidRequestError: the card is not active.
    """

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        card = await _lock_card(conn, call, card_id)
        require(str(card["status"]).upper() == "ACTIVE",
                f"only an active card can be frozen (status {card['status']})")  # fmt: skip
        await conn.execute(
            "UPDATE holdings SET status = 'FROZEN' WHERE tenant_id = %s AND id = %s",
            (call.tenant_id, card_id),
        )
        return {"card_id": card_id}, {"card_id": card_id, "status": "FROZEN"}

    return await idempotent(services, call, body)


async def order_replacement_card(
    services: Services, call: ActionCall, card_id: str, reason: str, delivery: str
) -> dict[str, Any]:
    """Order a replacement for an active or frozen card.

    ``reason`` says why (the Banking77 intent, e.g. ``card_not_working``); ``delivery`` is the
    shipping time promised (``"7-10 business days"``).

    Returns:
        ``{"card_order_id", "card_id", "status": "ORDERED", "delivery"}``.

    Raises:
        NotFoundError: the card is not this customer's.
        InvalidRequestError: the card is closed, or a replacement is already on its way.
    """

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        card = await _lock_card(conn, call, card_id)
        require(str(card["status"]).upper() in ("ACTIVE", "FROZEN"),
                f"card cannot be replaced (status {card['status']})")  # fmt: skip
        open_order = await (
            await conn.execute(
                "SELECT id FROM card_orders WHERE tenant_id = %s AND holding_id = %s"
                " AND status = 'ORDERED'",
                (call.tenant_id, card_id),
            )
        ).fetchone()
        require(open_order is None, "a replacement for this card is already on its way")
        order_id = f"cord-{call.session_id}-{card_id}"
        await conn.execute(
            "INSERT INTO card_orders (tenant_id, id, customer_id, holding_id, reason, status)"
            " VALUES (%s, %s, %s, %s, %s, 'ORDERED')",
            (call.tenant_id, order_id, call.customer_id, card_id, reason),
        )
        result = {"card_order_id": order_id, "card_id": card_id, "status": "ORDERED",
                  "delivery": delivery}  # fmt: skip
        return {"card_id": card_id, "reason": reason, "delivery": delivery}, result

    return await idempotent(services, call, body)


async def dispute_transaction(
    services: Services, call: ActionCall, transaction_id: str, reason: str
) -> dict[str, Any]:
    """Open a dispute on a posted debit of this customer.

    ``reason`` is the dispute reason (the Banking77 intent, e.g. ``card_payment_fee_charged``).

    Returns:
        ``{"dispute_id", "transaction_id", "description", "amount", "status": "SUBMITTED"}``
        (amount in currency units, positive).

    Raises:
        NotFoundError: the transaction is not this customer's.
        InvalidRequestError: it is not a debit, or it already has a dispute.
    """

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        txn = await lock_one(
            conn,
            "SELECT id, amount, description FROM transactions WHERE tenant_id = %s AND id = %s"
            " AND customer_id = %s FOR UPDATE",
            (call.tenant_id, transaction_id, call.customer_id),
            missing="transaction not found for this customer",
        )
        require(float(txn["amount"]) < 0, "only money taken from the account can be disputed")
        existing = await (
            await conn.execute(
                "SELECT id FROM disputes WHERE tenant_id = %s AND transaction_id = %s",
                (call.tenant_id, transaction_id),
            )
        ).fetchone()
        if existing is not None:
            raise InvalidRequestError(f"this transaction is already disputed ({existing['id']})")
        dispute_id = f"dsp-{call.session_id}-{transaction_id}"
        await conn.execute(
            "INSERT INTO disputes (tenant_id, id, customer_id, transaction_id, reason, status,"
            " submitted_on, details) VALUES (%s, %s, %s, %s, %s, 'SUBMITTED', %s, %s)",
            (call.tenant_id, dispute_id, call.customer_id, transaction_id, reason, date.today(),
             json.dumps({"opened_by": "agent", "session_id": call.session_id})),
        )  # fmt: skip
        result = {"dispute_id": dispute_id, "transaction_id": transaction_id,
                  "description": txn["description"], "amount": round(-float(txn["amount"]), 2),
                  "status": "SUBMITTED"}  # fmt: skip
        return {"transaction_id": transaction_id, "reason": reason}, result

    return await idempotent(services, call, body)


async def apply_retention_offer(
    services: Services, call: ActionCall, offer: Offer, kind: OfferKind
) -> dict[str, Any]:
    """Apply a retention offer made (and recorded) in this session.

    ``offer`` is ``{"offer_id", "holding_id", "terms"}``; ``kind`` is what the offer means in the
    tenant's settings: ``fee_waiver`` (``terms.waiver_days``), ``downgrade``
    (``terms.downgrade_to``, a card product) or ``statement_credit`` (``terms.credit``, USD).

    Returns:
        ``{"offer_id", "holding_id", "status": "applied", "expires_at"}`` plus what changed.

    Raises:
        NotFoundError: no such offer was made to this customer in this session, or the card is
            not theirs.
    """
    row_id = offer_row_id(call.session_id, offer["offer_id"])
    terms = offer.get("terms") or {}

    async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
        await lock_one(
            conn,
            "SELECT id FROM retention_offers WHERE tenant_id = %s AND id = %s"
            " AND customer_id = %s FOR UPDATE",
            (call.tenant_id, row_id, call.customer_id),
            missing="no such offer was made in this conversation",
        )
        card_id = str(offer.get("holding_id"))
        card = await _lock_card(conn, call, card_id)
        now = datetime.now(UTC)
        expires, change = await _apply_change(conn, call, kind, terms, card, row_id, now)
        await conn.execute(
            "UPDATE retention_offers SET status = 'applied', applied_at = %s, expires_at = %s"
            " WHERE tenant_id = %s AND id = %s",
            (now, expires, call.tenant_id, row_id),
        )
        result = {"offer_id": offer["offer_id"], "holding_id": card_id, "status": "applied",
                  "expires_at": expires.isoformat() if expires else None, **change}  # fmt: skip
        return {"offer_id": offer["offer_id"], "holding_id": card_id}, result

    return await idempotent(services, call, body)


async def _apply_change(
    conn: Conn,
    call: ActionCall,
    kind: OfferKind,
    terms: dict[str, Any],
    card: dict[str, Any],
    row_id: str,
    now: datetime,
) -> tuple[datetime | None, dict[str, Any]]:
    """Write what one retention offer changes; returns its expiry and the change."""
    if kind == "fee_waiver":
        expires = now + timedelta(days=int(terms.get("waiver_days", 365)))
        details = {**(card["details"] or {}), "annual_fee_waived_until": expires.date().isoformat()}
        await conn.execute(
            "UPDATE holdings SET details = %s WHERE tenant_id = %s AND id = %s",
            (json.dumps(details), call.tenant_id, card["id"]),
        )
        return expires, {"annual_fee_waived_until": expires.date().isoformat()}
    if kind == "downgrade":
        await conn.execute(
            "UPDATE holdings SET product = %s WHERE tenant_id = %s AND id = %s",
            (terms["downgrade_to"], call.tenant_id, card["id"]),
        )
        return None, {"product": terms["downgrade_to"], "previous_product": card["product"]}
    if kind == "statement_credit":
        credit = float(terms["credit"])
        await conn.execute(
            "INSERT INTO transactions (tenant_id, id, customer_id, holding_id, occurred_on,"
            " description, amount, category, status) VALUES (%s, %s, %s, %s, %s,"
            " 'RETENTION STATEMENT CREDIT', %s, 'credit', 'posted')",
            (call.tenant_id, f"credit-{row_id}", call.customer_id, card["id"], now.date(), credit),
        )
        return None, {"credit": credit}
    raise InvalidRequestError(f"unknown retention offer kind {kind!r}")
