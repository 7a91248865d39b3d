"""The four memory layers of a customer, their formulas, and the Redis hot copy of L1/L2/L4.

Layers (field names are the public API's):

- **L1 identity** ``l1_identity``: ``name, phone, email, channels, language, timezone`` (the
  customer row).
- **L2 history** ``l2_history``: ``firstContact, totalConversations, trustScore, churnRisk`` and
  the counters the formulas use (table ``memory_history``).
- **L3 episodes** ``l3_episodes``: one summary per conversation with its embedding, in the
  LangGraph store (``memory_store.episodes``).
- **L4 preferences and mood** ``l4_prefs_mood``: ``tonePref, openIssues, personalDetails,
  lastMood, lastMoodAt, promises`` (tables ``memory_prefs``, ``issues``, ``promises``).

PostgreSQL is the source of truth. L1, L2 and L4 are kept hot in Redis under
``sa:{tenant}:mem:{customer}`` (one JSON value, TTL 1 hour after the last update): read-through on
a miss, written through by the memory pipeline, deleted on erasure. With Redis down, reads fall
back to PostgreSQL.

Formulas (source: the customer-memory reference API, ``shared/reference/customer-memory-api.txt``),
each clamped to [0, 1], base values per tenant (``tenants.MemoryConfig``)::

    trust_score = min(1.0, base_score + 0.1·positive_interactions − 0.15·escalations
                                      − 0.1·complaints)
    churn_risk  = min(1.0, base_risk + (days_since_last_interaction / 90)·0.2
                                     + 0.25·unresolved_issues − 0.1·positive_resolutions)

``days_since_last_interaction`` is measured when the layer is read (churn risk grows with silence).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from support_agent.crm.customer360 import iso
from support_agent.memory_store.hot import invalidate_360
from support_agent.services import Services
from support_agent.tenants import load_tenant_config

logger = logging.getLogger(__name__)


def clamp01(x: float) -> float:
    """Clamp to [0, 1]."""
    return max(0.0, min(1.0, x))


def trust_score(
    base_score: float, positive_interactions: int, escalations: int, complaints: int
) -> float:
    """Trust in [0, 1]; higher means the customer's claims are trusted more (see module doc)."""
    return clamp01(
        min(1.0, base_score + 0.1 * positive_interactions - 0.15 * escalations - 0.1 * complaints)
    )


def churn_risk(
    base_risk: float,
    days_since_last_interaction: float,
    unresolved_issues: int,
    positive_resolutions: int,
) -> float:
    """Churn risk in [0, 1]; higher means more likely to stop buying (see module doc)."""
    return clamp01(
        min(
            1.0,
            base_risk
            + (days_since_last_interaction / 90.0) * 0.2
            + 0.25 * unresolved_issues
            - 0.1 * positive_resolutions,
        )
    )


def memory_key(tenant_id: str, customer_id: str) -> str:
    """Redis key of a customer's hot L1/L2/L4."""
    return f"sa:{tenant_id}:mem:{customer_id}"


async def read_layers_pg(
    services: Services, tenant_id: str, customer_id: str
) -> dict[str, Any] | None:
    """L1, raw L2 counters and L4 from PostgreSQL (``None`` if the customer does not exist).

    Returns:
        ``{"l1_identity": {...}, "l2_counters": {...}, "l4_prefs_mood": {...}}`` with ISO-8601
        timestamps; trust and churn are computed on read by :func:`present_layers`.
    """
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT c.first_name, c.last_name, c.email, c.phone, c.channels, c.language,"
                " c.timezone, h.first_contact_at, h.total_conversations, h.positive_interactions,"
                " h.escalations, h.complaints, h.unresolved_issues, h.positive_resolutions,"
                " h.last_interaction_at, p.tone_pref, p.personal_details, p.last_mood,"
                " p.last_mood_at"
                " FROM customers c"
                " LEFT JOIN memory_history h ON h.tenant_id = c.tenant_id AND h.customer_id = c.id"
                " LEFT JOIN memory_prefs p ON p.tenant_id = c.tenant_id AND p.customer_id = c.id"
                " WHERE c.tenant_id = %s AND c.id = %s",
                (tenant_id, customer_id),
            )
        ).fetchone()
        if row is None:
            return None
        issues = await (
            await conn.execute(
                "SELECT description FROM issues WHERE tenant_id = %s AND customer_id = %s"
                " AND status = 'open' ORDER BY updated_at DESC",
                (tenant_id, customer_id),
            )
        ).fetchall()
        promises = await (
            await conn.execute(
                "SELECT id, text, made_by, due_at, status, conversation_id FROM promises"
                " WHERE tenant_id = %s AND customer_id = %s ORDER BY created_at DESC",
                (tenant_id, customer_id),
            )
        ).fetchall()
    return {
        "l1_identity": {
            "name": f"{row['first_name']} {row['last_name']}",
            "phone": row["phone"],
            "email": row["email"],
            "channels": list(row["channels"] or []),
            "language": row["language"],
            "timezone": row["timezone"],
        },
        "l2_counters": {
            "firstContact": iso(row["first_contact_at"]),
            "totalConversations": row["total_conversations"] or 0,
            "positiveInteractions": row["positive_interactions"] or 0,
            "escalations": row["escalations"] or 0,
            "complaints": row["complaints"] or 0,
            "unresolvedIssues": row["unresolved_issues"] or 0,
            "positiveResolutions": row["positive_resolutions"] or 0,
            "lastInteractionAt": iso(row["last_interaction_at"]),
        },
        "l4_prefs_mood": {
            "tonePref": row["tone_pref"],
            "openIssues": [i["description"] for i in issues],
            "personalDetails": "; ".join(row["personal_details"] or []),
            "lastMood": row["last_mood"],
            "lastMoodAt": iso(row["last_mood_at"]),
            "promises": [
                {
                    "id": p["id"],
                    "text": p["text"],
                    "by": p["made_by"],
                    "dueAt": iso(p["due_at"]),
                    "status": p["status"],
                    "conversationId": p["conversation_id"],
                }
                for p in promises
            ],
        },
    }


def history_scores(
    tenant_id: str,
    *,
    positive_interactions: int,
    escalations: int,
    complaints: int,
    unresolved_issues: int,
    positive_resolutions: int,
    last_interaction_at: datetime | None,
    now: datetime | None = None,
) -> tuple[float, float]:
    """``(trust_score, churn_risk)`` of L2 counters at ``now`` with the tenant's base values.

    ``days_since_last_interaction`` is measured at ``now`` (0 with no interaction yet); both
    scores are rounded to 4 decimals.
    """
    config = load_tenant_config(tenant_id).memory
    now = now or datetime.now(UTC)
    days = (now - last_interaction_at).total_seconds() / 86400 if last_interaction_at else 0.0
    trust = trust_score(config.base_trust, positive_interactions, escalations, complaints)
    churn = churn_risk(config.base_churn, max(0.0, days), unresolved_issues, positive_resolutions)
    return round(trust, 4), round(churn, 4)


def present_layers(
    raw: dict[str, Any], tenant_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """Turn stored layers into the public shape, computing trust and churn at ``now``.

    Returns:
        ``{"l1_identity", "l2_history", "l4_prefs_mood"}``; ``l2_history`` has
        ``firstContact, totalConversations, trustScore, churnRisk`` plus the counters.
    """
    counters = raw["l2_counters"]
    last = counters.get("lastInteractionAt")
    trust, churn = history_scores(
        tenant_id,
        positive_interactions=counters["positiveInteractions"],
        escalations=counters["escalations"],
        complaints=counters["complaints"],
        unresolved_issues=counters["unresolvedIssues"],
        positive_resolutions=counters["positiveResolutions"],
        last_interaction_at=datetime.fromisoformat(last) if last else None,
        now=now,
    )
    l2 = {
        "firstContact": counters.get("firstContact"),
        "totalConversations": counters["totalConversations"],
        "trustScore": trust,
        "churnRisk": churn,
        **{k: v for k, v in counters.items() if k not in ("firstContact", "totalConversations")},
    }
    return {
        "l1_identity": raw["l1_identity"],
        "l2_history": l2,
        "l4_prefs_mood": raw["l4_prefs_mood"],
    }


async def write_hot_layers(
    services: Services, tenant_id: str, customer_id: str, raw: dict[str, Any]
) -> bool:
    """Write-through of the stored layers to Redis with a fresh TTL; False if Redis failed."""
    try:
        await services.redis.set(
            memory_key(tenant_id, customer_id), json.dumps(raw), ex=services.settings.hot_ttl_s
        )
    except RedisError as exc:
        logger.warning("hot_memory_write_failed", extra={"error": type(exc).__name__})
        return False
    return True


async def get_layers(
    services: Services, tenant_id: str, customer_id: str, now: datetime | None = None
) -> tuple[dict[str, Any] | None, str]:
    """L1, L2, L4 of a customer: Redis first, PostgreSQL on a miss (re-warming Redis).

    Returns:
        ``(layers in the public shape or None if no such customer, source)`` with source
        ``redis`` | ``postgres`` | ``postgres-redis-down``.
    """
    raw: dict[str, Any] | None = None
    source = "redis"
    try:
        cached = await services.redis.get(memory_key(tenant_id, customer_id))
        if cached is not None:
            raw = json.loads(cached)
    except RedisError as exc:
        source = "postgres-redis-down"
        logger.warning("hot_memory_unavailable", extra={"error": type(exc).__name__})
    if raw is None:
        raw = await read_layers_pg(services, tenant_id, customer_id)
        if raw is None:
            return None, "postgres"
        if source == "redis":
            source = "postgres"
            await write_hot_layers(services, tenant_id, customer_id, raw)
    return present_layers(raw, tenant_id, now), source


async def refresh_hot_memory(
    services: Services, tenant_id: str, customer_id: str
) -> dict[str, Any] | None:
    """After a write to a customer's records: write L1/L2/L4 through and drop the hot 360.

    Returns:
        The raw layers read (:func:`read_layers_pg`), so callers need not read them again.
    """
    raw = await read_layers_pg(services, tenant_id, customer_id)
    if raw is not None:
        await write_hot_layers(services, tenant_id, customer_id, raw)
    await invalidate_360(services, tenant_id, customer_id)
    return raw
