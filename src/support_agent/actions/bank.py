"""Bank account actions on the systems of record (Rho-Bank policy, tau2-bench banking).

Each action locks the record it changes, re-checks the status rule the policy engine applied (the
360 the policy saw may be a few seconds old), writes, and records itself under an idempotency key
in ``account_actions`` (``actions.ledger``): calling it again with the same key returns the first
result and writes nothing.

- :func:`freeze_card`: an active card → ``FROZEN`` (lost, stolen or compromised card).
- :func:`order_replacement_card`: a replacement for an active or frozen card, shipped standard
  (7-10 business days) or expedited (2-3), per "What Happens When You Order a Replacement Card".
- :func:`dispute_transaction`: a dispute ``SUBMITTED`` on a posted debit that has none yet.
- :func:`apply_retention_offer`: applies a retention offer made in this session
  (``policy.retention`` approved it): a one-year annual fee waiver flag on the card, a downgrade to
  the no-annual-fee card, or a statement credit.
- :func:`record_offer_made`: the ledger row of an offer made, read by the retention policy's
  frequency and no-stacking rules.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from support_agent.actions.ledger import already_done, record_action
from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.services import Services


async def _lock_card(conn: Any, tenant_id: str, customer_id: str, card_id: str) -> dict[str, Any]:
    row = await (
        await conn.execute(
            "SELECT id, kind, product, status, details FROM holdings WHERE tenant_id = %s"
            " AND id = %s AND customer_id = %s AND kind IN ('credit_card', 'debit_card')"
            " FOR UPDATE",
            (tenant_id, card_id, customer_id),
        )
    ).fetchone()
    if row is None:
        raise NotFoundError("card not found for this customer")
    return dict(row)


async def freeze_card(
    services: Services, tenant_id: str, customer_id: str, session_id: str, card_id: str, key: str
) -> dict[str, Any]:
    """Freeze an active card.

    Returns:
        ``{"card_id", "status": "FROZEN"}``.

    Raises:
        NotFoundError: the card is not this customer's.
        InvalidRequestError: the card is not active.
    """
    async with services.pool.connection() as conn, conn.transaction():
        if (done := await already_done(conn, tenant_id, key)) is not None:
            return done
        card = await _lock_card(conn, tenant_id, customer_id, card_id)
        if str(card["status"]).upper() != "ACTIVE":
            raise InvalidRequestError(
                f"only an active card can be frozen (status {card['status']})"
            )
        await conn.execute(
            "UPDATE holdings SET status = 'FROZEN' WHERE tenant_id = %s AND id = %s",
            (tenant_id, card_id),
        )
        result = {"card_id": card_id, "status": "FROZEN"}
        await record_action(conn, tenant_id, key, customer_id, session_id, "freeze_card",
                            {"card_id": card_id}, result)  # fmt: skip
        return result


async def order_replacement_card(
    services: Services,
    tenant_id: str,
    customer_id: str,
    session_id: str,
    card_id: str,
    reason: str,
    key: str,
    *,
    expedited: bool = False,
) -> dict[str, Any]:
    """Order a replacement for an active or frozen card.

    ``reason`` says why (the Banking77 intent, e.g. ``card_not_working``); ``expedited`` ships in
    2-3 business days instead of 7-10.

    Returns:
        ``{"card_order_id", "card_id", "status": "ORDERED", "delivery": "7-10 business days"}``.

    Raises:
        NotFoundError: the card is not this customer's.
        InvalidRequestError: the card is closed, or a replacement is already on its way.
    """
    async with services.pool.connection() as conn, conn.transaction():
        if (done := await already_done(conn, tenant_id, key)) is not None:
            return done
        card = await _lock_card(conn, tenant_id, customer_id, card_id)
        if str(card["status"]).upper() not in ("ACTIVE", "FROZEN"):
            raise InvalidRequestError(f"card cannot be replaced (status {card['status']})")
        open_order = await (
            await conn.execute(
                "SELECT id FROM card_orders WHERE tenant_id = %s AND holding_id = %s"
                " AND status = 'ORDERED'",
                (tenant_id, card_id),
            )
        ).fetchone()
        if open_order is not None:
            raise InvalidRequestError("a replacement for this card is already on its way")
        order_id = f"cord-{session_id}-{card_id}"
        await conn.execute(
            "INSERT INTO card_orders (tenant_id, id, customer_id, holding_id, reason, status)"
            " VALUES (%s, %s, %s, %s, %s, 'ORDERED')",
            (tenant_id, order_id, customer_id, card_id, reason),
        )
        result = {
            "card_order_id": order_id,
            "card_id": card_id,
            "status": "ORDERED",
            "delivery": "2-3 business days" if expedited else "7-10 business days",
        }
        await record_action(conn, tenant_id, key, customer_id, session_id, "order_replacement_card",
                            {"card_id": card_id, "reason": reason, "expedited": expedited},
                            result)  # fmt: skip
        return result


async def dispute_transaction(
    services: Services,
    tenant_id: str,
    customer_id: str,
    session_id: str,
    transaction_id: str,
    reason: str,
    key: str,
) -> dict[str, Any]:
    """Open a dispute on a posted debit of this customer.

    ``reason`` is the dispute reason (the Banking77 intent, e.g. ``card_payment_fee_charged``).

    Returns:
        ``{"dispute_id", "transaction_id", "amount", "status": "SUBMITTED"}`` (amount in
        currency units, positive).

    Raises:
        NotFoundError: the transaction is not this customer's.
        InvalidRequestError: it is not a debit, or it already has a dispute.
    """
    async with services.pool.connection() as conn, conn.transaction():
        if (done := await already_done(conn, tenant_id, key)) is not None:
            return done
        txn = await (
            await conn.execute(
                "SELECT id, amount, description FROM transactions WHERE tenant_id = %s AND id = %s"
                " AND customer_id = %s FOR UPDATE",
                (tenant_id, transaction_id, customer_id),
            )
        ).fetchone()
        if txn is None:
            raise NotFoundError("transaction not found for this customer")
        if float(txn["amount"]) >= 0:
            raise InvalidRequestError("only money taken from the account can be disputed")
        existing = await (
            await conn.execute(
                "SELECT id FROM disputes WHERE tenant_id = %s AND transaction_id = %s",
                (tenant_id, transaction_id),
            )
        ).fetchone()
        if existing is not None:
            raise InvalidRequestError(f"this transaction is already disputed ({existing['id']})")
        dispute_id = f"dsp-{session_id}-{transaction_id}"
        await conn.execute(
            "INSERT INTO disputes (tenant_id, id, customer_id, transaction_id, reason, status,"
            " submitted_on, details) VALUES (%s, %s, %s, %s, %s, 'SUBMITTED', %s, %s)",
            (tenant_id, dispute_id, customer_id, transaction_id, reason, date.today(),
             json.dumps({"opened_by": "agent", "session_id": session_id})),
        )  # fmt: skip
        result = {
            "dispute_id": dispute_id,
            "transaction_id": transaction_id,
            "description": txn["description"],
            "amount": round(-float(txn["amount"]), 2),
            "status": "SUBMITTED",
        }
        params = {"transaction_id": transaction_id, "reason": reason}
        await record_action(
            conn, tenant_id, key, customer_id, session_id, "dispute_transaction", params, result
        )
        return result


async def record_offer_made(
    services: Services,
    tenant_id: str,
    customer_id: str,
    session_id: str,
    offer: dict[str, Any],
) -> str:
    """Record that a retention offer was made in this session (once per session and offer).

    ``offer`` is ``{"offer_id", "holding_id", "terms"}`` as decided by ``policy_check``.

    Returns:
        The ledger row id.
    """
    row_id = f"ro-{session_id}-{offer['offer_id']}"
    async with services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO retention_offers (tenant_id, id, customer_id, offer_id, holding_id,"
            " status, terms) VALUES (%s, %s, %s, %s, %s, 'offered', %s)"
            " ON CONFLICT DO NOTHING",
            (tenant_id, row_id, customer_id, offer["offer_id"], offer.get("holding_id"),
             json.dumps(offer.get("terms") or {})),
        )  # fmt: skip
    return row_id


async def apply_retention_offer(
    services: Services,
    tenant_id: str,
    customer_id: str,
    session_id: str,
    offer: dict[str, Any],
    key: str,
) -> dict[str, Any]:
    """Apply a retention offer made (and recorded) in this session.

    ``offer`` is ``{"offer_id", "holding_id", "terms"}``; ``terms`` carries what the offer gives:
    ``downgrade_to`` (card product), ``credit`` (USD) or ``waiver_days``.

    Returns:
        ``{"offer_id", "holding_id", "status": "applied", "expires_at"}`` plus what changed.

    Raises:
        NotFoundError: no such offer was made to this customer in this session, or the card is
            not theirs.
        InvalidRequestError: the offer kind is unknown.
    """
    row_id = f"ro-{session_id}-{offer['offer_id']}"
    terms = offer.get("terms") or {}
    async with services.pool.connection() as conn, conn.transaction():
        if (done := await already_done(conn, tenant_id, key)) is not None:
            return done
        made = await (
            await conn.execute(
                "SELECT id FROM retention_offers WHERE tenant_id = %s AND id = %s"
                " AND customer_id = %s FOR UPDATE",
                (tenant_id, row_id, customer_id),
            )
        ).fetchone()
        if made is None:
            raise NotFoundError("no such offer was made in this conversation")
        card_id = str(offer["holding_id"])
        card = await _lock_card(conn, tenant_id, customer_id, card_id)
        now = datetime.now(UTC)
        expires: datetime | None = None
        change: dict[str, Any] = {}
        if offer["offer_id"] == "annual_fee_waiver":
            expires = now + timedelta(days=int(terms.get("waiver_days", 365)))
            details = {
                **(card["details"] or {}),
                "annual_fee_waived_until": expires.date().isoformat(),
            }
            await conn.execute(
                "UPDATE holdings SET details = %s WHERE tenant_id = %s AND id = %s",
                (json.dumps(details), tenant_id, card_id),
            )
            change = {"annual_fee_waived_until": expires.date().isoformat()}
        elif offer["offer_id"] == "downgrade_no_annual_fee":
            await conn.execute(
                "UPDATE holdings SET product = %s WHERE tenant_id = %s AND id = %s",
                (terms["downgrade_to"], tenant_id, card_id),
            )
            change = {"product": terms["downgrade_to"], "previous_product": card["product"]}
        elif offer["offer_id"] == "retention_statement_credit":
            credit = float(terms["credit"])
            await conn.execute(
                "INSERT INTO transactions (tenant_id, id, customer_id, holding_id, occurred_on,"
                " description, amount, category, status) VALUES (%s, %s, %s, %s, %s,"
                " 'RETENTION STATEMENT CREDIT', %s, 'credit', 'posted')",
                (tenant_id, f"credit-{row_id}", customer_id, card_id, now.date(), credit),
            )
            change = {"credit": credit}
        else:
            raise InvalidRequestError(f"unknown retention offer {offer['offer_id']!r}")
        await conn.execute(
            "UPDATE retention_offers SET status = 'applied', applied_at = %s, expires_at = %s"
            " WHERE tenant_id = %s AND id = %s",
            (now, expires, tenant_id, row_id),
        )
        result = {
            "offer_id": offer["offer_id"],
            "holding_id": card_id,
            "status": "applied",
            "expires_at": expires.isoformat() if expires else None,
            **change,
        }
        await record_action(conn, tenant_id, key, customer_id, session_id,
                            "apply_retention_offer", {"offer_id": offer["offer_id"],
                                                      "holding_id": card_id}, result)  # fmt: skip
        return result
