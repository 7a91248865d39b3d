"""The four memory layers of a customer, their formulas, and the Redis hot copy of L1/L2/L4.

Layers (field names are the public API's):

- **L1 identity** ``l1_identity``: ``name, phone, email, channels, language, timezone`` (the
  customer row).
- **L2 history** ``l2_history``: ``firstContact, totalConversations, trustScore, churnRisk`` and
  the counters the formulas use (table ``memory_history``).
- **L3 episodes** ``l3_episodes``: one summary per conversation with its embedding, in the
  LangGraph store (``memory_store.episodes``).
- **L4 preferences and mood** ``l4_prefs_mood``: ``tonePref, openIssues, personalDetails,
  customerClaims, lastMood, lastMoodAt, promises`` (tables ``memory_prefs``, ``issues``,
  ``promises``).

**Customer claims** (``customerClaims``, column ``memory_prefs.customer_claims``) are what the
customer said about themselves ("I prefer email", "call me after 5"), stored marked as theirs:
``[{"text", "source": "customer", "at": ISO-8601, "sessionId"}]``, oldest first, at most
``extract.MAX_CLAIMS`` (the oldest dropped), a repeated claim moved to the end with its new date.
They are never facts: a claim naming an email or phone that is not the customer's own on file
(the customer row and the identities of the systems of record) is not stored
(``extract.claims_on_file``). ``personalDetails`` is the reference API's text of the same
claims, each marked ``customer says (date): "…"``.

PostgreSQL is the source of truth, and this module owns every write to L1, L2 and L4 there: a
finished session (:func:`record_session`), a human agent's resolution
(:func:`record_human_contact`), promises kept (:func:`keep_promises`), an identity linked
(:func:`record_identity`) and two customers merged (:func:`merge_layers`). The Redis hot copy
of L1/L2/L4 is ``memory_store.hot``'s; L3 episodes are ``memory_store.episodes``'.

Formulas (source: the customer-memory reference API, ``shared/reference/customer-memory-api.txt``),
each clamped to [0, 1], base values per tenant (``tenants.MemoryConfig``)::

    trust_score = min(1.0, base_score + 0.1·positive_interactions − 0.15·escalations
                                      − 0.1·complaints)
    churn_risk  = min(1.0, base_risk + (days_since_last_interaction / 90)·0.2
                                     + 0.25·unresolved_issues − 0.1·positive_resolutions)

``days_since_last_interaction`` is measured when the layer is read (churn risk grows with silence).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from support_agent.crm.customer360 import iso
from support_agent.crm.loader import normalize_phone
from support_agent.memory_store.extract import MAX_CLAIMS, claims_on_file
from support_agent.services import Services
from support_agent.tenants import MemoryConfig

Conn = AsyncConnection[DictRow]


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


async def read_layers_pg(
    services: Services, tenant_id: str, customer_id: str
) -> dict[str, Any] | None:
    """L1, raw L2 counters and L4 from PostgreSQL (``None`` if the customer does not exist).

    Returns:
        ``{"l1_identity": {...}, "l2_counters": {...}, "l4_prefs_mood": {...}}`` with ISO-8601
        timestamps; trust and churn are computed on read by :func:`present_layers`.
    """
    return (await read_layers_pg_many(services, tenant_id, [customer_id]))[customer_id]


async def read_layers_pg_many(
    services: Services, tenant_id: str, customer_ids: list[str]
) -> dict[str, dict[str, Any] | None]:
    """:func:`read_layers_pg` of several customers of a tenant.

    Three queries in all, not three per customer. Returns ``{customer_id: layers or None}`` for
    every id asked.
    """
    ids = list(dict.fromkeys(customer_ids))
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT c.id, c.first_name, c.last_name, c.email, c.phone, c.channels,"
                " c.language, c.timezone, h.first_contact_at, h.total_conversations,"
                " h.positive_interactions, h.escalations, h.complaints, h.unresolved_issues,"
                " h.positive_resolutions, h.last_interaction_at, p.tone_pref,"
                " p.customer_claims, p.last_mood, p.last_mood_at"
                " FROM customers c"
                " LEFT JOIN memory_history h ON h.tenant_id = c.tenant_id AND h.customer_id = c.id"
                " LEFT JOIN memory_prefs p ON p.tenant_id = c.tenant_id AND p.customer_id = c.id"
                " WHERE c.tenant_id = %s AND c.id = ANY(%s)",
                (tenant_id, ids),
            )
        ).fetchall()
        issues = await (
            await conn.execute(
                "SELECT customer_id, description FROM issues WHERE tenant_id = %s"
                " AND customer_id = ANY(%s) AND status = 'open' ORDER BY updated_at DESC",
                (tenant_id, ids),
            )
        ).fetchall()
        promises = await (
            await conn.execute(
                "SELECT customer_id, id, text, made_by, due_at, status, session_id FROM promises"
                " WHERE tenant_id = %s AND customer_id = ANY(%s) ORDER BY created_at DESC",
                (tenant_id, ids),
            )
        ).fetchall()
    open_issues: dict[str, list[str]] = {}
    for i in issues:
        open_issues.setdefault(i["customer_id"], []).append(i["description"])
    made: dict[str, list[dict[str, Any]]] = {}
    for p in promises:
        made.setdefault(p["customer_id"], []).append({
            "id": p["id"], "text": p["text"], "by": p["made_by"], "dueAt": iso(p["due_at"]),
            "status": p["status"], "conversationId": p["session_id"],
        })  # fmt: skip
    out: dict[str, dict[str, Any] | None] = dict.fromkeys(ids)
    for row in rows:
        cid = row["id"]
        out[cid] = {
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
                "openIssues": open_issues.get(cid, []),
                "personalDetails": claims_text(row["customer_claims"] or []),
                "customerClaims": list(row["customer_claims"] or []),
                "lastMood": row["last_mood"],
                "lastMoodAt": iso(row["last_mood_at"]),
                "promises": made.get(cid, []),
            },
        }
    return out


def claims_text(claims: list[dict[str, Any]]) -> str:
    """The reference API's ``personalDetails`` text of customer claims, each marked as theirs.

    Returns:
        ``customer says (2026-11-30): "I prefer email"; …`` (empty with no claims).
    """
    return "; ".join(
        f'customer says ({str(c.get("at") or "")[:10] or "undated"}): "{c.get("text", "")}"'
        for c in claims
    )


def merge_claims(
    claims: list[dict[str, Any]], new: list[str], *, at: datetime, session_id: str
) -> list[dict[str, Any]]:
    """Add a session's claims to a customer's: marked, deduplicated, capped.

    Args:
        claims: the stored claims, oldest first.
        new: the session's claims (already checked with ``extract.claims_on_file``).
        at: when they were said (the session's end).
        session_id: the session.

    Returns:
        The claims, oldest first: a claim said again (case-insensitively) moves to the end with
        the new date; at most ``extract.MAX_CLAIMS``, the oldest dropped.
    """
    out = list(claims)
    for text in new:
        text = text.strip()
        if not text:
            continue
        out = [c for c in out if str(c.get("text", "")).lower() != text.lower()]
        out.append(
            {"text": text, "source": "customer", "at": at.isoformat(), "sessionId": session_id}
        )
    return out[-MAX_CLAIMS:]


def history_scores(
    config: MemoryConfig,
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
    now = now or datetime.now(UTC)
    days = (now - last_interaction_at).total_seconds() / 86400 if last_interaction_at else 0.0
    trust = trust_score(config.base_trust, positive_interactions, escalations, complaints)
    churn = churn_risk(config.base_churn, max(0.0, days), unresolved_issues, positive_resolutions)
    return round(trust, 4), round(churn, 4)


def present_layers(
    raw: dict[str, Any], config: MemoryConfig, now: datetime | None = None
) -> dict[str, Any]:
    """Turn stored layers into the public shape, computing trust and churn at ``now``.

    Returns:
        ``{"l1_identity", "l2_history", "l4_prefs_mood"}``; ``l2_history`` has
        ``firstContact, totalConversations, trustScore, churnRisk`` plus the counters.
    """
    counters = raw["l2_counters"]
    last = counters.get("lastInteractionAt")
    trust, churn = history_scores(
        config,
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


@dataclass(frozen=True)
class SessionMemory:
    """What one finished session adds to a customer's L1, L2 and L4.

    Attributes:
        session_id: the session.
        channel: its channel (added to L1 channels).
        language: detected language (ISO 639-1) or ``None``.
        timezone: detected IANA timezone or ``None``.
        started_at / ended_at: the session's span.
        outcome: ``resolved`` | ``answered`` | ``unresolved`` | ``escalated``.
        mood: the session's mood (``frustrated``, ``satisfied``, ``neutral``).
        tone: the tone preference detected, or ``None``.
        details: personal details the customer mentioned (their claims: stored marked as
            theirs, without any naming a contact detail not on file).
        complaint: the session carried a complaint.
        promises: promises the agent made (texts).
        promise_subject: what those promises are about (a vertical's record id), or ``None``.
        kept_subjects: records an executed action was about: their pending promises are kept.
    """

    session_id: str
    channel: str
    language: str | None
    timezone: str | None
    started_at: datetime
    ended_at: datetime
    outcome: str
    mood: str
    tone: str | None
    details: list[str]
    complaint: bool
    promises: list[str]
    promise_subject: str | None
    kept_subjects: list[str]


async def record_session(conn: Conn, tenant_id: str, customer_id: str, s: SessionMemory) -> None:
    """Write one finished session into L1, L2 and L4, inside the caller's transaction.

    L1: language, timezone, channel; L4: promises kept and made, mood, tone, the customer's
    claims (:func:`merge_claims`, after ``extract.claims_on_file`` against the contact details
    on file); L2: the counters. A pending promise repeated in a later session is one promise; L2
    counts the session once (the caller guarantees once per session). The customer row's update
    comes first and locks it, so two sessions of one customer write their claims one after the
    other.
    """
    p = {"t": tenant_id, "c": customer_id}
    on_file = await (
        await conn.execute(
            "UPDATE customers SET language = COALESCE(%(lang)s, language),"
            " timezone = COALESCE(%(tz)s, timezone),"
            " channels = CASE WHEN %(ch)s = ANY(channels) THEN channels"
            " ELSE array_append(channels, %(ch)s) END, updated_at = now()"
            " WHERE tenant_id = %(t)s AND id = %(c)s"
            " RETURNING email, phone, (SELECT customer_claims FROM memory_prefs m"
            "  WHERE m.tenant_id = %(t)s AND m.customer_id = %(c)s) AS claims,"
            " ARRAY(SELECT kind || ':' || value FROM customer_identities i"
            "  WHERE i.tenant_id = %(t)s AND i.customer_id = %(c)s"
            "  AND i.kind IN ('email', 'phone') AND i.source = 'record') AS identities",
            {**p, "lang": s.language, "tz": s.timezone, "ch": s.channel},
        )
    ).fetchone()
    claims = list((on_file or {}).get("claims") or [])
    if s.details:
        emails: set[str] = set()
        phones: set[str] = set()
        if on_file is not None:
            emails = {str(on_file["email"] or "").lower()}
            phones = {normalize_phone(str(on_file["phone"] or ""))}
            for ident in on_file["identities"] or []:
                kind, _, value = str(ident).partition(":")
                (emails if kind == "email" else phones).add(
                    value.lower() if kind == "email" else normalize_phone(value)
                )
        kept = claims_on_file(s.details, emails - {""}, phones - {""})
        claims = merge_claims(claims, kept, at=s.ended_at, session_id=s.session_id)
    await keep_promises(conn, tenant_id, customer_id, s.kept_subjects)
    for n, text in enumerate(s.promises):
        await conn.execute(
            "INSERT INTO promises (tenant_id, id, customer_id, session_id, subject_id, text,"
            " made_by) SELECT %(t)s, %(id)s, %(c)s, %(s)s, %(subject)s, %(text)s,"
            " 'agent' WHERE NOT EXISTS (SELECT 1 FROM promises WHERE tenant_id = %(t)s"
            " AND customer_id = %(c)s AND status = 'pending' AND text = %(text)s)"
            " ON CONFLICT DO NOTHING",
            {**p, "id": f"{s.session_id}:{n}", "s": s.session_id, "subject": s.promise_subject,
             "text": text},
        )  # fmt: skip
    await conn.execute(
        "INSERT INTO memory_history (tenant_id, customer_id, first_contact_at,"
        " total_conversations, positive_interactions, escalations, complaints,"
        " unresolved_issues, positive_resolutions, last_interaction_at)"
        " VALUES (%(t)s, %(c)s, %(start)s, 1, %(pos)s, %(esc)s, %(comp)s, (SELECT count(*)"
        " FROM issues WHERE tenant_id = %(t)s AND customer_id = %(c)s AND status = 'open'),"
        " %(res)s, %(end)s)"
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE SET"
        " first_contact_at = LEAST(memory_history.first_contact_at, EXCLUDED.first_contact_at),"
        " total_conversations = memory_history.total_conversations + 1,"
        " positive_interactions = memory_history.positive_interactions"
        "   + EXCLUDED.positive_interactions,"
        " escalations = memory_history.escalations + EXCLUDED.escalations,"
        " complaints = memory_history.complaints + EXCLUDED.complaints,"
        " unresolved_issues = EXCLUDED.unresolved_issues,"
        " positive_resolutions = memory_history.positive_resolutions"
        "   + EXCLUDED.positive_resolutions,"
        " last_interaction_at = GREATEST(memory_history.last_interaction_at,"
        "   EXCLUDED.last_interaction_at),"
        " updated_at = now()",
        {**p, "start": s.started_at, "end": s.ended_at,
         "pos": int(s.outcome in ("resolved", "answered") and s.mood != "frustrated"),
         "esc": int(s.outcome == "escalated"), "comp": int(s.complaint),
         "res": int(s.outcome == "resolved")},
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO memory_prefs (tenant_id, customer_id, tone_pref, customer_claims,"
        " last_mood, last_mood_at) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE SET"
        " tone_pref = COALESCE(EXCLUDED.tone_pref, memory_prefs.tone_pref),"
        " customer_claims = EXCLUDED.customer_claims,"
        " last_mood = EXCLUDED.last_mood, last_mood_at = EXCLUDED.last_mood_at,"
        " updated_at = now()",
        (tenant_id, customer_id, s.tone, Jsonb(claims), s.mood, s.ended_at),
    )


async def record_identity(
    conn: Conn, tenant_id: str, customer_id: str, *, phone: str | None, channel: str | None
) -> None:
    """Add a newly linked identity to L1: a phone when none is known, a channel to the list."""
    if phone:
        await conn.execute(
            "UPDATE customers SET phone = COALESCE(phone, %s) WHERE tenant_id = %s AND id = %s",
            (phone, tenant_id, customer_id),
        )
    if channel:
        await conn.execute(
            "UPDATE customers SET channels = CASE WHEN %(ch)s = ANY(channels)"
            " THEN channels ELSE array_append(channels, %(ch)s) END"
            " WHERE tenant_id = %(t)s AND id = %(c)s",
            {"ch": channel, "t": tenant_id, "c": customer_id},
        )


async def keep_promises(conn: Conn, tenant_id: str, customer_id: str, subjects: list[str]) -> None:
    """Mark the customer's pending promises about ``subjects`` (record ids) kept."""
    if not subjects:
        return
    await conn.execute(
        "UPDATE promises SET status = 'kept', updated_at = now()"
        " WHERE tenant_id = %s AND customer_id = %s AND status = 'pending'"
        " AND COALESCE(subject_id, order_id) = ANY(%s)",
        (tenant_id, customer_id, subjects),
    )


async def record_human_contact(
    conn: Conn, tenant_id: str, customer_id: str, *, positive: bool, resolved: bool
) -> None:
    """Record in L2 that a human agent resolved a handoff.

    A positive interaction when ``positive`` (satisfaction ≥ 4), a positive resolution when
    ``resolved``; the open issues are recounted.
    """
    await conn.execute(
        "INSERT INTO memory_history AS h (tenant_id, customer_id, first_contact_at,"
        " last_interaction_at, positive_interactions, positive_resolutions,"
        " unresolved_issues) VALUES (%(t)s, %(c)s, now(), now(), %(p)s, %(r)s,"
        " (SELECT count(*) FROM issues WHERE tenant_id = %(t)s AND customer_id = %(c)s"
        "  AND status = 'open'))"
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE SET"
        " positive_interactions = h.positive_interactions + EXCLUDED.positive_interactions,"
        " positive_resolutions = h.positive_resolutions + EXCLUDED.positive_resolutions,"
        " unresolved_issues = EXCLUDED.unresolved_issues,"
        " last_interaction_at = now(), updated_at = now()",
        {"t": tenant_id, "c": customer_id, "p": int(positive), "r": int(resolved)},
    )


async def merge_layers(conn: Conn, tenant_id: str, keep_id: str, merge_id: str) -> None:
    """Fold ``merge_id``'s L1, L2 and L4 into ``keep_id``'s, inside the caller's transaction.

    L2 counters are added (first contact the earliest, last interaction the latest, open issues
    recounted); L4 claims are united (deduplicated, the newest :data:`MAX_CLAIMS` kept) and the
    latest mood kept; L1 contact data and channels are
    united. The merged customer's own rows go when its customer row is deleted (cascade).
    """
    p = {"t": tenant_id, "k": keep_id, "m": merge_id}
    await conn.execute(
        "INSERT INTO memory_history AS h (tenant_id, customer_id, first_contact_at,"
        " total_conversations, positive_interactions, escalations, complaints,"
        " unresolved_issues, positive_resolutions, last_interaction_at)"
        " SELECT tenant_id, %(k)s, first_contact_at, total_conversations,"
        " positive_interactions, escalations, complaints, unresolved_issues,"
        " positive_resolutions, last_interaction_at FROM memory_history"
        " WHERE tenant_id = %(t)s AND customer_id = %(m)s"
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE SET"
        " first_contact_at = LEAST(h.first_contact_at, EXCLUDED.first_contact_at),"
        " total_conversations = h.total_conversations + EXCLUDED.total_conversations,"
        " positive_interactions = h.positive_interactions + EXCLUDED.positive_interactions,"
        " escalations = h.escalations + EXCLUDED.escalations,"
        " complaints = h.complaints + EXCLUDED.complaints,"
        " unresolved_issues = (SELECT count(*) FROM issues WHERE tenant_id = %(t)s"
        "   AND customer_id = %(k)s AND status = 'open'),"
        " positive_resolutions = h.positive_resolutions + EXCLUDED.positive_resolutions,"
        " last_interaction_at = GREATEST(h.last_interaction_at, EXCLUDED.last_interaction_at),"
        " updated_at = now()",
        p,
    )
    await conn.execute(
        "INSERT INTO memory_prefs AS m (tenant_id, customer_id, tone_pref, customer_claims,"
        " last_mood, last_mood_at) SELECT tenant_id, %(k)s, tone_pref, customer_claims,"
        " last_mood, last_mood_at FROM memory_prefs WHERE tenant_id = %(t)s"
        " AND customer_id = %(m)s"
        " ON CONFLICT (tenant_id, customer_id) DO UPDATE SET"
        " tone_pref = COALESCE(m.tone_pref, EXCLUDED.tone_pref),"
        " customer_claims = (SELECT COALESCE(jsonb_agg(c ORDER BY c->>'at'), '[]'::jsonb)"
        "   FROM (SELECT c FROM (SELECT DISTINCT ON (lower(c->>'text')) c"
        "     FROM jsonb_array_elements(m.customer_claims || EXCLUDED.customer_claims) AS c"
        "     ORDER BY lower(c->>'text'), c->>'at' DESC) AS d"
        "   ORDER BY c->>'at' DESC LIMIT %(cap)s) AS newest),"
        " last_mood = CASE WHEN EXCLUDED.last_mood_at > m.last_mood_at"
        "   OR m.last_mood_at IS NULL THEN EXCLUDED.last_mood ELSE m.last_mood END,"
        " last_mood_at = GREATEST(m.last_mood_at, EXCLUDED.last_mood_at)",
        {**p, "cap": MAX_CLAIMS},
    )
    await conn.execute(
        "UPDATE customers k SET"
        " channels = ARRAY(SELECT DISTINCT unnest(k.channels || m.channels)),"
        " email = COALESCE(k.email, m.email), phone = COALESCE(k.phone, m.phone),"
        " language = COALESCE(k.language, m.language),"
        " timezone = COALESCE(k.timezone, m.timezone), updated_at = now()"
        " FROM customers m WHERE k.tenant_id = %(t)s AND k.id = %(k)s"
        " AND m.tenant_id = %(t)s AND m.id = %(m)s",
        p,
    )
