"""Warm handoff: when to escalate, the human agent's panel, and the handoff queue.

Escalation triggers, checked in this order (the first that holds is the reason):

1. an explicit request for a human, once the agent has offered its own help the tenant's
   ``offer_help_before_human`` times in this session (bank policy: offer help first), or at
   once when the session can no longer verify (too many failed attempts: the agent cannot help);
2. anger: frustration at or above the tenant's ``frustration_escalation``;
3. out-of-scope or low-confidence messages twice in one session;
4. a policy outcome that needs a human (``escalate``), or an action only a human can complete;
5. the third contact about the same open issue (the issue's ``contacts`` counts sessions);
6. a high-value customer (tier in ``high_value_tiers``) with a billing dispute
   (intent in ``billing_dispute_intents``).

The panel is what the human agent sees, pre-loaded so the customer never repeats anything:
``header`` (name, tier, tenure, CLV, churn risk, sentiment, VIP flag), ``summary``,
``current_issue``, ``tried``, ``reason``, ``timeline`` of past interactions,
``suggested_resolutions`` with success rates, ``quick_actions``, and ``customer_says``: what the
customer claimed about themselves in earlier conversations (``[{"text", "source": "customer",
"at"}]``, from L4), shown as their word, never as facts on file.

Resolving a handoff records the outcome in the CRM (handoff, interaction, issue, promises), in
memory (an episode for the human contact; L2 counters; hot layers refreshed) and in the
effectiveness of the resolution record used: ``success_rate ← (success_rate·(m + uses) + s) /
(m + uses + 1)`` with ``s`` 1 for a success (issue resolved and satisfaction ≥ 4) and prior strength
``m = 10`` (the seed rate counts as ten observations).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.memory_store import hot, layers
from support_agent.memory_store.episodes import episodes_namespace
from support_agent.services import Services
from support_agent.state import Issue, PolicyOutcome, State
from support_agent.transcript import customer_lines
from support_agent.verification.attempts import attempts_of
from support_agent.verticals.protocol import Turn

PRIOR_STRENGTH = 10


def contact_number(state: State, session_id: str) -> int | None:
    """Which contact about the open issue this session is (1 = the session that opened it).

    ``None`` when the session is not continuing an open issue from another session.
    """
    open_issue = (state.get("memory") or {}).get("open_issue")
    if not open_issue or open_issue.get("opened_in") == session_id:
        return None
    continuing = (state.get("policy") or {}).get("action") == "follow_up_open_issue" or (
        (state.get("issue") or {}).get("id") == open_issue.get("id")
    )
    if not continuing:
        return None
    counted = state.get("contact_counted") == open_issue.get("id")
    return int(open_issue.get("contacts", 1)) + (0 if counted else 1)


def escalation_reason(this: Turn) -> str | None:
    """Why this turn must go to a human (see module docstring), or ``None``."""
    state, config, session_id = this.state, this.deps.config, this.session_id
    signals = state.get("signals") or {}
    policy = state.get("policy") or {}
    history = state.get("history") or []
    c360 = state.get("c360") or {}
    if signals.get("human_request"):
        if (state.get("verification") or {}).get("locked"):  # nothing the agent can do for them
            return "customer asked for a human agent after verification was locked"
        offered = sum(1 for h in history if h.get("human_request"))
        if offered >= config.handoff.offer_help_before_human:
            return "customer asked for a human agent"
    if float(signals.get("frustration", 0.0)) >= config.frustration_escalation:
        return "customer frustration above threshold"
    unclear = sum(1 for h in history if h.get("unclear")) + int(bool(signals.get("unclear")))
    if unclear >= 2:
        return "out-of-scope or low-confidence twice in this session"
    if policy.get("outcome") == "escalate" and not signals.get("human_request"):
        return "next-best-action is a human agent"
    contact = contact_number(state, session_id)
    if contact is not None and contact >= 3:
        return "third contact about the same open issue"
    if (
        c360.get("tier") in config.handoff.high_value_tiers
        and state.get("intent") in config.handoff.billing_dispute_intents
    ):
        return "high-value customer with a billing dispute"
    return None


def _tenure_days(first_contact: str | None) -> int | None:
    if not first_contact:
        return None
    return max(0, (datetime.now(UTC) - datetime.fromisoformat(first_contact)).days)


def build_panel(this: Turn, reason: str, issue: Issue | None) -> dict[str, Any]:
    """The warm handoff packet: the human agent's panel, with every field pre-loaded.

    Args:
        this: the turn being handed over.
        reason: why (one of the triggers in the module docstring, or the vertical's reason).
        issue: the issue handed over (else the customer's open issue from memory).

    Returns:
        ``{"handoff_id", "reason", "queue", "tenant_id", "session_id", "channel", "header",
        "summary", "current_issue", "pending_action", "tried", "timeline",
        "suggested_resolutions", "quick_actions", "transcript", "memory"}``; the header has
        ``customer_id`` (verified customers only), ``verified``, ``name``, ``tier``,
        ``tenure_days``, ``clv`` (currency units), ``churn_risk``, ``sentiment`` (−1..1) and
        ``vip`` (tier in the tenant's ``handoff.vip_tiers``).
    """
    state = this.state
    c360, memory = this.c360, this.memory
    profile = c360.get("profile") or {}
    l2 = memory.get("l2_history") or {}
    features = memory.get("features") or {}
    issue = issue or memory.get("open_issue")
    history = state.get("history") or []
    policy = state.get("policy") or {}
    name = profile.get("name") or "unidentified customer"
    summary = f"{name} ({c360.get('tier', 'unknown tier')}) contacted us on {this.channel}"
    if issue:
        about = issue.get("subject_label") or "an issue"
        summary += (f" about {about}: {issue.get('description')}"
                    f" (open issue, contact #{issue.get('contacts', 1)})")  # fmt: skip
    summary += f". Escalated because {reason}."
    return {
        "handoff_id": f"ho-{uuid.uuid4().hex[:12]}",
        "reason": reason,
        "queue": "human_agents",
        "tenant_id": this.tenant_id,
        "session_id": this.session_id,
        "channel": this.channel,
        "header": {
            "customer_id": state.get("customer_id") if state.get("authenticated") else None,
            "verified": bool(state.get("authenticated")),
            "name": profile.get("name"),
            "tier": c360.get("tier"),
            "tenure_days": _tenure_days(l2.get("firstContact")) or features.get("tenure_days"),
            "clv": features.get("clv"),
            "churn_risk": features.get("churn_propensity", l2.get("churnRisk")),
            "sentiment": this.signals.get("sentiment", 0.0),
            "vip": c360.get("tier") in this.deps.config.handoff.vip_tiers,
        },
        "summary": summary,
        "current_issue": issue,
        "pending_action": state.get("pending_action") or state.get("superseded"),
        "tried": _tried(history, policy),
        "timeline": _timeline(this, len(history)),
        "suggested_resolutions": [
            {
                "id": r["id"],
                "title": r["title"],
                "success_rate": r["success_rate"],
                "actions": r.get("actions", []),
            }
            for r in state.get("resolutions") or []
            if r.get("kind") == "resolution"
        ],  # fmt: skip
        "quick_actions": [
            {"action": a["action"], "target": a.get("target")}
            for a in policy.get("alternatives", [])
        ]
        + ([{"action": policy["action"], "target": policy.get("target")}] if policy else []),
        "transcript": customer_lines(state.get("messages"))[-10:],
        "memory": {"l2_history": l2, "l4_prefs_mood": memory.get("l4_prefs_mood")},
        "customer_says": _customer_says(memory.get("l4_prefs_mood") or {}),
    }


def _customer_says(l4: dict[str, Any]) -> list[dict[str, Any]]:
    """The customer's own claims from L4, newest first, marked with their source and date."""
    return [
        {"text": c.get("text"), "source": c.get("source", "customer"), "at": c.get("at")}
        for c in reversed(l4.get("customerClaims") or [])
    ]


def _tried(history: list[Any], policy: PolicyOutcome) -> list[str]:
    """What was tried in this session, turn by turn, and the policy's last word."""
    tried = [
        f"turn {h.get('turn')}: {h.get('intent')} → {h.get('action')} ({h.get('decision')})"
        for h in history
    ]
    if policy:
        tried.append(f"policy: {policy.get('action')} → {policy.get('outcome')} "
                     f"({policy.get('reason')})")  # fmt: skip
    return tried


def _timeline(this: Turn, turns: int) -> list[dict[str, Any]]:
    """Past interactions, episodes and disputes, and this conversation, newest first."""
    c360, memory = this.c360, this.memory
    timeline = [
        {"at": i.get("started_at"), "channel": i.get("channel"), "kind": "interaction",
         "summary": i.get("summary"), "outcome": i.get("outcome")}
        for i in c360.get("interactions", [])
    ] + [
        {"at": e.get("createdAt"), "channel": e.get("channel"), "kind": "episode",
         "summary": e.get("summary"), "outcome": e.get("outcome")}
        for e in [memory.get("open_episode"), *memory.get("episodes", [])] if e
    ] + [
        {"at": d.get("submitted_on"), "channel": None, "kind": "dispute",
         "summary": f"dispute {d['id']} on transaction {d['transaction_id']}: {d['reason']}",
         "outcome": d.get("status")}
        for d in c360.get("disputes", [])
    ]  # fmt: skip
    timeline.append({"at": datetime.now(UTC).isoformat(), "channel": this.channel,
                     "kind": "conversation", "outcome": "escalated",
                     "summary": f"this conversation: {turns + 1} turn(s)"})  # fmt: skip
    timeline.sort(key=lambda t: t["at"] or "", reverse=True)
    return timeline


async def record_handoff(services: Services, panel: dict[str, Any]) -> None:
    """Put a handoff on the queue (idempotent on its id)."""
    async with services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO handoffs (tenant_id, id, session_id, customer_id, reason, panel)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (panel["tenant_id"], panel["handoff_id"], panel["session_id"],
             panel["header"]["customer_id"], panel["reason"], json.dumps(panel, default=str)),
        )  # fmt: skip


def _row(row: dict[str, Any], full: bool) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "status": row["status"],
        "reason": row["reason"],
        "sessionId": row["session_id"],
        "customerId": row["customer_id"],
        "createdAt": row["created_at"].isoformat(),
        "resolvedAt": row["resolved_at"].isoformat() if row["resolved_at"] else None,
        "resolution": row["resolution"],
        "satisfaction": row["satisfaction"],
    }
    if full:
        out["panel"] = row["panel"]
    else:
        out["header"] = row["panel"].get("header")
        out["summary"] = row["panel"].get("summary")
    return out


async def list_handoffs(
    services: Services, tenant_id: str, status: str | None, limit: int = 50
) -> dict[str, Any]:
    """The tenant's handoffs, oldest first (a queue), optionally by status."""
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT * FROM handoffs WHERE tenant_id = %s AND (%s::text IS NULL OR status = %s)"
                " ORDER BY created_at, id LIMIT %s",
                (tenant_id, status, status, limit),
            )
        ).fetchall()
    return {"data": [_row(r, full=False) for r in rows]}


async def get_handoff(services: Services, tenant_id: str, handoff_id: str) -> dict[str, Any]:
    """One handoff with its full panel, and the verification attempts of its customer and session.

    Returns:
        The handoff (``panel`` whole) with ``verification_attempts``: ``[{"at", "session_id",
        "channel", "factors", "result"}]``, newest first (fact kinds only, never their values).

    Raises:
        NotFoundError: no such handoff for this tenant.
    """
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT * FROM handoffs WHERE tenant_id = %s AND id = %s", (tenant_id, handoff_id)
            )
        ).fetchone()
    if row is None:
        raise NotFoundError("handoff not found")
    out = _row(row, full=True)
    out["verification_attempts"] = await attempts_of(
        services, tenant_id, row["customer_id"], row["session_id"]
    )
    return out


async def resolve_handoff(
    services: Services,
    tenant_id: str,
    handoff_id: str,
    *,
    resolution: str,
    satisfaction: int,
    resolution_record_id: str | None = None,
    issue_resolved: bool = True,
) -> dict[str, Any]:
    """Close a handoff and record its outcome in the CRM, memory and resolution effectiveness.

    Args:
        services: open services.
        tenant_id: the tenant.
        handoff_id: the handoff.
        resolution: what the human agent did (free text, stored as given).
        satisfaction: the customer's satisfaction, 1..5.
        resolution_record_id: the resolution record applied, if any (its effectiveness updates).
        issue_resolved: whether the customer's issue is now resolved.

    Raises:
        NotFoundError: no such handoff (or resolution record) for this tenant.
        InvalidRequestError: the handoff is already resolved.
    """
    success = issue_resolved and satisfaction >= 4
    async with services.pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                "SELECT * FROM handoffs WHERE tenant_id = %s AND id = %s FOR UPDATE",
                (tenant_id, handoff_id),
            )
        ).fetchone()
        if row is None:
            raise NotFoundError("handoff not found")
        if row["status"] == "resolved":
            raise InvalidRequestError("handoff already resolved")
        panel = row["panel"]
        customer_id = row["customer_id"]
        issue = panel.get("current_issue") or {}
        if resolution_record_id is not None:
            cur = await conn.execute(
                "UPDATE resolution_records SET"
                " success_rate = (success_rate * (%(m)s + uses) + %(s)s) / (%(m)s + uses + 1),"
                " uses = uses + 1, successes = successes + %(s)s,"
                " helpful_votes = helpful_votes + %(h)s"
                " WHERE tenant_id = %(t)s AND id = %(r)s",
                {"m": PRIOR_STRENGTH, "s": int(success), "h": int(satisfaction >= 4),
                 "t": tenant_id, "r": resolution_record_id},
            )  # fmt: skip
            if cur.rowcount == 0:
                raise NotFoundError("resolution record not found")
        await conn.execute(
            "UPDATE handoffs SET status = 'resolved', resolution = %s, satisfaction = %s,"
            " resolution_record_id = %s, resolved_at = now() WHERE tenant_id = %s AND id = %s",
            (resolution, satisfaction, resolution_record_id, tenant_id, handoff_id),
        )
        await conn.execute(
            "UPDATE interactions SET outcome = %s WHERE tenant_id = %s AND id = %s",
            ("resolved_by_human" if issue_resolved else "handled_by_human", tenant_id,
             row["session_id"]),
        )  # fmt: skip
        if customer_id and issue_resolved and issue.get("id"):
            await conn.execute(
                "UPDATE issues SET status = 'resolved', updated_at = now()"
                " WHERE tenant_id = %s AND id = %s AND customer_id = %s",
                (tenant_id, issue["id"], customer_id),
            )
            subject = issue.get("subject_id") or issue.get("order_id")
            await layers.keep_promises(conn, tenant_id, customer_id, [subject] if subject else [])
        if customer_id:
            await layers.record_human_contact(
                conn, tenant_id, customer_id, positive=satisfaction >= 4, resolved=issue_resolved
            )
    if customer_id:
        await services.store.aput(
            episodes_namespace(tenant_id, customer_id),
            handoff_id,
            {
                "summary": f"A human agent took over ({row['reason']}) and resolved it: "
                f"{resolution}" if issue_resolved else
                f"A human agent took over ({row['reason']}): {resolution}",
                "conversationId": row["session_id"],
                "channel": panel.get("channel"),
                "intent": None,
                "outcome": "resolved_by_human" if issue_resolved else "handled_by_human",
                "openIssues": [] if issue_resolved or not issue else [issue],
                "promises": [],
                "createdAt": datetime.now(UTC).isoformat(),
            },
        )  # fmt: skip
        await hot.refresh_hot_memory(services, tenant_id, customer_id)
    return await get_handoff(services, tenant_id, handoff_id)
