"""write_memory: record the turn in the CRM and, when the session ends, queue its memory job.

Every turn: the transcript stays in the checkpointed thread (``messages``); the interaction row
and both messages are written to the CRM; an issue opened or changed this turn is upserted as an
open issue; a warm handoff goes on the human agents' queue; a customer whose records changed has
their hot 360 invalidated.

When the session ends (``event="end_session"``: explicit end or idle timeout) the interaction is
closed with its outcome and a memory job is recorded and queued (``memory_store.pipeline``): the
worker writes the episode (summary, intent, outcome, open issues, promises) with its embedding and
updates the four layers asynchronously, exactly once per session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context, turn_of
from support_agent.crm.repository import (
    count_issue_contact,
    end_interaction,
    executed_actions,
    get_interaction,
    record_turn,
    upsert_issue,
)
from support_agent.handoff import record_handoff
from support_agent.memory_store.hot import invalidate_360
from support_agent.memory_store.pipeline import publish_job, record_job
from support_agent.state import Issue, State, TurnRecord
from support_agent.transcript import agent_lines, customer_lines
from support_agent.verticals.protocol import Turn


def session_outcome(history: list[TurnRecord], issue: Issue | None) -> str:
    """``escalated`` | ``resolved`` | ``unresolved`` | ``answered`` from the session's turns."""
    decisions = {h.get("decision") for h in history}
    if "escalate" in decisions:
        return "escalated"
    if issue and issue.get("status") == "open":
        return "unresolved"
    if "execute" in decisions:
        return "resolved"
    return "answered"


def _issue_changed(issue: Issue, state: State) -> bool:
    """True unless the issue is already stored, open, with the same proposals and items."""
    for stored in (state.get("c360") or {}).get("open_issues", []):
        if stored.get("id") == issue.get("id"):
            return not (
                issue.get("status") == "open"
                and stored.get("proposed_actions") == issue.get("proposed_actions")
                and stored.get("item_ids") == issue.get("item_ids")
            )
    return True


def job_payload(
    this: Turn, interaction: dict[str, Any], outcome: str, executed: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the memory pipeline needs to update the four layers for one session.

    Returns:
        ``{"channel", "started_at", "ended_at", "end_reason", "intent", "outcome",
        "customer_lines", "agent_lines", "turns", "issue", "pending_action", "executed",
        "action_words"}`` (timestamps ISO-8601; ``action_words`` the vertical's words for the
        actions the episode mentions).
    """
    state = this.state
    history = state.get("history") or []
    intents = [h["intent"] for h in history if h.get("intent") not in (None, "other")]
    issue, pending = state.get("issue"), state.get("pending_action")
    mentioned = {*((issue or {}).get("proposed_actions") or []), *[e["action"] for e in executed]}
    if pending:
        mentioned.add(pending["action"])
    return {
        "channel": interaction["channel"],
        "started_at": interaction["started_at"].isoformat(),
        "ended_at": datetime.now(UTC).isoformat(),
        "end_reason": state.get("end_reason") or "explicit",
        "intent": intents[0] if intents else None,
        "outcome": outcome,
        "customer_lines": customer_lines(state.get("messages")),
        "agent_lines": agent_lines(state.get("messages")),
        "turns": history,
        "issue": issue,
        "pending_action": pending,
        "executed": executed,
        "action_words": {a: this.deps.vertical.action_words([a]) for a in sorted(mentioned)},
    }


async def _end_session(this: Turn) -> dict[str, Any]:
    services, state = this.deps.services, this.state
    interaction = await get_interaction(services, this.tenant_id, this.session_id)
    if interaction is None or interaction["status"] == "ended":
        return {"session_status": "ended", "decision": "end", "reply": "", "actions": [],
                "awaiting_consent": False}  # fmt: skip
    customer_id = state.get("customer_id") if state.get("authenticated") else None
    history = state.get("history") or []
    issue = state.get("issue")
    outcome = session_outcome(history, issue)
    if customer_id and issue:
        await upsert_issue(services, this.tenant_id, issue)
    payload = None
    if customer_id:
        executed = await executed_actions(services, this.tenant_id, this.session_id)
        payload = job_payload(this, interaction, outcome, executed)
    # The end and its memory job commit together: an end that fails leaves the session open
    # (and retryable), never ended without its job.
    async with services.pool.connection() as conn, conn.transaction():
        await end_interaction(
            conn, this.tenant_id, this.session_id,
            reason=state.get("end_reason") or "explicit", outcome=outcome,
            sentiment=-max((float(h.get("frustration", 0.0)) for h in history), default=0.0),
        )  # fmt: skip
        recorded = (
            await record_job(conn, this.tenant_id, this.session_id, customer_id, payload)
            if customer_id and payload is not None
            else None
        )
    job = None
    if customer_id:
        job = (
            await publish_job(services, this.tenant_id, this.session_id, customer_id)
            if recorded
            else "exists"
        )
        await invalidate_360(services, this.tenant_id, customer_id)
    return {"session_status": "ended", "decision": "end", "reply": "", "actions": [],
            "awaiting_consent": False,
            "memory_job": job}  # fmt: skip


async def write_memory(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Persist the turn (or close the session).

    Returns:
        ``session_status`` and, on session end, ``memory_job`` (enqueued | pending | exists) and
        ``decision="end"``; ``contact_counted`` when this session counted a contact about an
        open issue from another session.
    """
    this = turn_of(state, runtime)
    if state.get("event") == "end_session":
        return await _end_session(this)
    services, tenant_id, session_id = this.deps.services, this.tenant_id, this.session_id
    customer_id = state.get("customer_id") if state.get("authenticated") else None
    intent = state.get("intent")
    lines = [("customer", this.text, intent), ("agent", state.get("reply", ""), None)]
    awaiting = bool(state.get("awaiting_consent"))
    await record_turn(services, tenant_id, session_id, this.channel, customer_id, intent, lines,
                      awaiting_consent=awaiting)  # fmt: skip
    issue = state.get("issue")
    update: dict[str, Any] = {"session_status": "open", "consent": None, "superseded": None}
    if state.get("decision") == "escalate" and state.get("handoff"):
        await record_handoff(services, state["handoff"])  # type: ignore[arg-type]
    if (customer_id and issue and issue.get("opened_in") != session_id
            and state.get("contact_counted") != issue.get("id")):  # fmt: skip
        await count_issue_contact(services, tenant_id, str(issue["id"]))
        update["contact_counted"] = issue["id"]
    changed = any(a.get("status") == "done" for a in state.get("actions") or [])
    if customer_id and issue and issue.get("subject_id") and _issue_changed(issue, state):
        await upsert_issue(services, tenant_id, issue)
        changed = True
    if customer_id and (changed or "contact_counted" in update):
        await invalidate_360(services, tenant_id, customer_id)
    return update
