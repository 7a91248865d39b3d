"""The retention offers ledger: offers made in a session, read by the retention rules.

A row ``retention_offers(id = "ro-{session}-{offer}")`` is written when the agent makes an offer
(:func:`record_offer_made`) and marked ``applied`` by the vertical's apply action; the frequency
and no-stacking rules (``policy.retention``) read it from the Customer 360.
"""

from __future__ import annotations

import json

from support_agent.services import Services
from support_agent.state import Offer


def offer_row_id(session_id: str, offer_id: str) -> str:
    """The ledger id of an offer made in a session."""
    return f"ro-{session_id}-{offer_id}"


async def record_offer_made(
    services: Services, tenant_id: str, customer_id: str, session_id: str, offer: Offer
) -> str:
    """Record that a retention offer was made in this session (once per session and offer).

    Returns:
        The ledger row id.
    """
    row_id = offer_row_id(session_id, offer["offer_id"])
    async with services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO retention_offers (tenant_id, id, customer_id, offer_id, holding_id,"
            " status, terms) VALUES (%s, %s, %s, %s, %s, 'offered', %s)"
            " ON CONFLICT DO NOTHING",
            (tenant_id, row_id, customer_id, offer["offer_id"], offer.get("holding_id"),
             json.dumps(offer.get("terms") or {})),
        )  # fmt: skip
    return row_id
