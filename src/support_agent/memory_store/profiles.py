"""Customer profiles as the memory API shows them: list, search, profile with layers, export.

Shapes follow the customer-memory reference API (``shared/reference/customer-memory-api.txt``).
Listing uses keyset pagination on the customer id: the cursor is the last id of the page
(base64url), so pages stay stable while customers are added (a new customer appears on the page
its id sorts into; nothing already listed repeats and nothing is skipped).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from support_agent.crm.customer360 import iso
from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.memory_store.episodes import episodes_namespace
from support_agent.memory_store.hot import get_layers
from support_agent.memory_store.layers import history_scores
from support_agent.services import Services
from support_agent.tenants import MemoryConfig

_SUMMARY_COLUMNS = (
    "SELECT c.id, c.first_name, c.last_name, c.phone, c.email, c.channels, c.created_at,"
    " c.updated_at, h.first_contact_at, h.total_conversations, h.positive_interactions,"
    " h.escalations, h.complaints, h.unresolved_issues, h.positive_resolutions,"
    " h.last_interaction_at,"
    " (SELECT max(i.last_activity_at) FROM interactions i WHERE i.tenant_id = c.tenant_id"
    "  AND i.customer_id = c.id) AS last_message_at"
    " FROM customers c LEFT JOIN memory_history h"
    " ON h.tenant_id = c.tenant_id AND h.customer_id = c.id"
)


def encode_cursor(customer_id: str) -> str:
    """Opaque cursor for the page after ``customer_id``."""
    return base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The customer id a cursor points after.

    Raises:
        InvalidRequestError: not a cursor this API issued.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
        raise InvalidRequestError("invalid cursor")
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("invalid cursor") from exc
    if not decoded:
        raise InvalidRequestError("invalid cursor")
    return decoded


def _summary(row: dict[str, Any], config: MemoryConfig, now: datetime) -> dict[str, Any]:
    trust, churn = history_scores(
        config,
        positive_interactions=row["positive_interactions"] or 0,
        escalations=row["escalations"] or 0,
        complaints=row["complaints"] or 0,
        unresolved_issues=row["unresolved_issues"] or 0,
        positive_resolutions=row["positive_resolutions"] or 0,
        last_interaction_at=row["last_interaction_at"],
        now=now,
    )
    return {
        "id": row["id"],
        "name": f"{row['first_name']} {row['last_name']}",
        "phone": row["phone"],
        "email": row["email"],
        "channels": list(row["channels"] or []),
        "trustScore": trust,
        "churnRisk": churn,
        "totalConversations": row["total_conversations"] or 0,
        "firstContactAt": iso(row["first_contact_at"]),
        "lastMessageAt": iso(row["last_message_at"]),
    }


async def list_customers(
    services: Services, tenant_id: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of the tenant's customers, ordered by id.

    Returns:
        ``{"data": [summary], "pagination": {"limit", "hasMore", "nextCursor"}}``.

    Raises:
        InvalidRequestError: bad cursor.
    """
    after = decode_cursor(cursor) if cursor else None
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                _SUMMARY_COLUMNS + " WHERE c.tenant_id = %s AND (%s::text IS NULL OR c.id > %s)"
                " ORDER BY c.id LIMIT %s",
                (tenant_id, after, after, limit + 1),
            )
        ).fetchall()
    now = datetime.now(UTC)
    config = services.tenants.config(tenant_id).memory
    page = [_summary(r, config, now) for r in rows[:limit]]
    has_more = len(rows) > limit
    return {
        "data": page,
        "pagination": {
            "limit": limit,
            "hasMore": has_more,
            "nextCursor": encode_cursor(page[-1]["id"]) if has_more and page else None,
        },
    }


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_customers(
    services: Services, tenant_id: str, q: str, limit: int
) -> dict[str, Any]:
    """Customers whose name, phone or email contains ``q`` (case-insensitive).

    Phone matching ignores formatting (``555-0100`` finds ``+1 555 0100``).

    Returns:
        ``{"results": [{"id", "name", "phone", "email", "lastMessageAt"}]}``.

    Raises:
        InvalidRequestError: empty query.
        NotFoundError: nothing matches.
    """
    q = q.strip()
    if not q:
        raise InvalidRequestError("q must not be empty")
    digits = "".join(ch for ch in q if ch.isdigit())
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                _SUMMARY_COLUMNS + " WHERE c.tenant_id = %(t)s AND ("
                " (c.first_name || ' ' || c.last_name) ILIKE %(p)s ESCAPE '\\'"
                " OR c.email ILIKE %(p)s ESCAPE '\\'"
                " OR (%(d)s <> '' AND regexp_replace(coalesce(c.phone, ''), '\\D', '', 'g')"
                "     LIKE %(dp)s))"
                " ORDER BY c.id LIMIT %(n)s",
                {"t": tenant_id, "p": _like(q), "d": digits, "dp": f"%{digits}%", "n": limit},
            )
        ).fetchall()
    if not rows:
        raise NotFoundError("no customer matches")
    return {
        "results": [
            {
                "id": r["id"],
                "name": f"{r['first_name']} {r['last_name']}",
                "phone": r["phone"],
                "email": r["email"],
                "lastMessageAt": iso(r["last_message_at"]),
            }
            for r in rows
        ]
    }


async def _episodes(services: Services, tenant_id: str, customer_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        items = await services.store.asearch(
            episodes_namespace(tenant_id, customer_id), limit=100, offset=offset
        )
        out += [
            {
                "id": it.key,
                "summary": it.value.get("summary"),
                "conversationId": it.value.get("conversationId"),
                "channel": it.value.get("channel"),
                "intent": it.value.get("intent"),
                "outcome": it.value.get("outcome"),
                "openIssues": it.value.get("openIssues", []),
                "promises": it.value.get("promises", []),
                "createdAt": it.value.get("createdAt"),
            }
            for it in items
        ]
        if len(items) < 100:
            return out
        offset += 100


async def get_profile(services: Services, tenant_id: str, customer_id: str) -> dict[str, Any]:
    """A customer's profile with all four memory layers.

    Raises:
        NotFoundError: no such customer in this tenant.
    """
    layers, _source = await get_layers(services, tenant_id, customer_id)
    if layers is None:
        raise NotFoundError("customer not found")
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                _SUMMARY_COLUMNS + " WHERE c.tenant_id = %s AND c.id = %s", (tenant_id, customer_id)
            )
        ).fetchone()
    if row is None:
        raise NotFoundError("customer not found")
    summary = _summary(row, services.tenants.config(tenant_id).memory, datetime.now(UTC))
    l1 = layers["l1_identity"]
    return {
        **summary,
        "language": l1["language"],
        "timezone": l1["timezone"],
        "memory": {
            "l1_identity": l1,
            "l2_history": layers["l2_history"],
            "l3_episodes": await _episodes(services, tenant_id, customer_id),
            "l4_prefs_mood": layers["l4_prefs_mood"],
        },
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


_EXPORT_TABLES = {
    "verification_attempts": "SELECT created_at, session_id, channel, factors, result"
    " FROM verification_attempts WHERE tenant_id = %s AND customer_id = %s ORDER BY created_at",
    "identities": "SELECT kind, value, channel, created_at FROM customer_identities"
    " WHERE tenant_id = %s AND customer_id = %s ORDER BY kind, value",
    "payment_methods": "SELECT id, kind, brand, last_four, balance FROM payment_methods"
    " WHERE tenant_id = %s AND customer_id = %s ORDER BY id",
    "orders": "SELECT o.id, o.status, o.address, o.updated_at,"
    " (SELECT jsonb_agg(jsonb_build_object('item_id', i.item_id, 'name', i.name,"
    " 'price', i.price, 'options', i.options)"
    " ORDER BY i.line_no) FROM order_items i WHERE i.tenant_id = o.tenant_id"
    " AND i.order_id = o.id) AS items FROM orders o WHERE o.tenant_id = %s"
    " AND o.customer_id = %s ORDER BY o.id",
    "interactions": "SELECT id, channel, status, started_at, ended_at, end_reason, intent, outcome,"
    " sentiment, summary FROM interactions WHERE tenant_id = %s AND customer_id = %s"
    " ORDER BY started_at",
    "messages": "SELECT m.interaction_id, m.seq, m.role, m.content, m.intent, m.created_at"
    " FROM messages m JOIN interactions i ON i.tenant_id = m.tenant_id"
    " AND i.id = m.interaction_id WHERE m.tenant_id = %s AND i.customer_id = %s"
    " ORDER BY m.interaction_id, m.seq",
    "issues": "SELECT id, order_id, item_ids, kind, description, proposed_actions, status,"
    " opened_in, contacts, created_at, updated_at FROM issues"
    " WHERE tenant_id = %s AND customer_id = %s ORDER BY created_at",
    "promises": "SELECT id, session_id, subject_id, text, made_by, due_at, status, created_at"
    " FROM promises WHERE tenant_id = %s AND customer_id = %s ORDER BY created_at",
    "handoffs": "SELECT id, session_id, status, reason, panel, resolution, satisfaction,"
    " created_at, resolved_at FROM handoffs WHERE tenant_id = %s AND customer_id = %s"
    " ORDER BY created_at",
    "holdings": "SELECT id, kind, product, status, balance, opened_on, details FROM holdings"
    " WHERE tenant_id = %s AND customer_id = %s ORDER BY id",
    "transactions": "SELECT id, holding_id, occurred_on, description, amount, category, status"
    " FROM transactions WHERE tenant_id = %s AND customer_id = %s ORDER BY occurred_on, id",
    "disputes": "SELECT id, transaction_id, reason, status, submitted_on, details FROM disputes"
    " WHERE tenant_id = %s AND customer_id = %s ORDER BY id",
    "billing_payments": "SELECT id, holding_id, paid_on, amount, status FROM billing_payments"
    " WHERE tenant_id = %s AND customer_id = %s ORDER BY paid_on",
    "account_actions": "SELECT idempotency_key, interaction_id, action, params, result, created_at"
    " FROM account_actions WHERE tenant_id = %s AND customer_id = %s ORDER BY created_at",
}


async def export_customer(services: Services, tenant_id: str, customer_id: str) -> dict[str, Any]:
    """Everything held about a customer (data-subject access request).

    Returns:
        The profile with its four layers plus ``identities``, ``payment_methods``, ``orders``,
        ``interactions``, ``messages``, ``issues``, ``promises`` and ``account_actions``.

    Raises:
        NotFoundError: no such customer in this tenant.
    """
    profile = await get_profile(services, tenant_id, customer_id)
    out: dict[str, Any] = {"exportedAt": datetime.now(UTC).isoformat(), "profile": profile}
    async with services.pool.connection() as conn:
        for name, sql in _EXPORT_TABLES.items():
            rows = await (await conn.execute(sql, (tenant_id, customer_id))).fetchall()
            out[name] = [dict(r) for r in rows]
    return out
