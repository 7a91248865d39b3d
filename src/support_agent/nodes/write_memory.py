"""write_memory: record the turn in the CRM and, when the session ends, write its episode.

Every turn: the transcript stays in the checkpointed thread (``messages``); the interaction row
and both messages are written to the CRM; an issue opened or changed this turn is upserted as an
open issue; a customer whose records changed has their hot 360 invalidated.

When the session ends (``event="end_session"``: explicit end or idle timeout) the interaction is
closed with its outcome and a memory job is recorded and queued (``memory_store.pipeline``): the
worker writes the episode (summary, intent, outcome, open issues, promises) with its embedding and
updates the four layers asynchronously, exactly once per conversation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context
from support_agent.crm.repository import (
    append_messages,
    count_issue_contact,
    end_interaction,
    get_interaction,
    touch_interaction,
    upsert_issue,
)
from support_agent.handoff import record_handoff
from support_agent.memory_store.hot import invalidate_360
from support_agent.memory_store.pipeline import enqueue_conversation
from support_agent.nodes._text import agent_lines, customer_lines, last_customer_text
from support_agent.services import Services, get_services
from support_agent.state import State


def session_outcome(history: list[dict[str, Any]], issue: dict[str, Any] | None) -> str:
    """``escalated`` | ``resolved`` | ``unresolved`` | ``answered`` from the session's turns."""
    decisions = {h.get("decision") for h in history}
    if "escalate" in decisions:
        return "escalated"
    if issue and issue.get("status") == "open":
        return "unresolved"
    if "execute" in decisions:
        return "resolved"
    return "answered"


async def _executed_actions(
    services: Services, tenant_id: str, session_id: str
) -> list[dict[str, Any]]:
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT action, result FROM account_actions"
                " WHERE tenant_id = %s AND interaction_id = %s ORDER BY created_at",
                (tenant_id, session_id),
            )
        ).fetchall()
    return [{"action": r["action"], **r["result"]} for r in rows]


def _issue_row(issue: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "customer_id",
        "order_id",
        "item_ids",
        "kind",
        "description",
        "proposed_actions",
        "opened_in",
        "status",
        "subject_id",
        "subject_label",
    )
    row = {k: issue.get(k) for k in keys}
    return {
        **row,
        "item_ids": row["item_ids"] or [],
        "proposed_actions": row["proposed_actions"] or [],
    }


def _issue_changed(issue: dict[str, Any], state: State) -> bool:
    """True unless the issue is already stored, open, with the same proposals and items."""
    for stored in (state.get("c360") or {}).get("open_issues", []):
        if stored["id"] == issue["id"]:
            return not (
                issue.get("status") == "open"
                and stored["proposed_actions"] == issue.get("proposed_actions")
                and stored["item_ids"] == issue.get("item_ids")
            )
    return True


async def _end_session(
    state: State, runtime: Runtime[Context], services: Services
) -> dict[str, Any]:
    ctx = runtime.context
    interaction = await get_interaction(services, ctx.tenant_id, ctx.session_id)
    if interaction is None or interaction["status"] == "ended":
        return {"session_status": "ended", "decision": "end", "reply": "", "actions": []}
    customer_id = state.get("customer_id") if state.get("authenticated") else None
    history = state.get("history") or []
    issue = state.get("issue")
    outcome = session_outcome(history, issue)
    if customer_id and issue:
        await upsert_issue(services, ctx.tenant_id, _issue_row(issue))
    await end_interaction(
        services,
        ctx.tenant_id,
        ctx.session_id,
        reason=state.get("end_reason") or "explicit",
        outcome=outcome,
        sentiment=-max((float(h.get("frustration", 0.0)) for h in history), default=0.0),
    )
    job = None
    if customer_id:
        payload = job_payload(
            state,
            interaction,
            outcome,
            await _executed_actions(services, ctx.tenant_id, ctx.session_id),
        )
        job = await enqueue_conversation(
            services, ctx.tenant_id, ctx.session_id, customer_id, payload
        )
        await invalidate_360(services, ctx.tenant_id, customer_id)
    return {
        "session_status": "ended",
        "decision": "end",
        "reply": "",
        "actions": [],
        "memory_job": job,
    }


def job_payload(
    state: State, interaction: dict[str, Any], outcome: str, executed: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the memory pipeline needs to update the four layers for one conversation."""
    history = state.get("history") or []
    intents = [h["intent"] for h in history if h.get("intent") not in (None, "other")]
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
        "issue": state.get("issue"),
        "pending_action": state.get("pending_action"),
        "executed": executed,
    }


async def write_memory(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Persist the turn (or close the session).

    Returns:
        ``session_status`` and, on session end, ``memory_job`` (enqueued | pending | exists) and
        ``decision="end"``.
    """
    services = await get_services()
    if state.get("event") == "end_session":
        return await _end_session(state, runtime, services)
    ctx = runtime.context
    customer_id = state.get("customer_id") if state.get("authenticated") else None
    intent = state.get("intent")
    await touch_interaction(
        services, ctx.tenant_id, ctx.session_id, ctx.channel, customer_id, intent
    )
    await append_messages(
        services,
        ctx.tenant_id,
        ctx.session_id,
        [
            ("customer", last_customer_text(state.get("messages")), intent),
            ("agent", state.get("reply", ""), None),
        ],
    )
    issue = state.get("issue")
    update: dict[str, Any] = {"session_status": "open"}
    if state.get("decision") == "escalate" and state.get("handoff"):
        await record_handoff(services, state["handoff"])  # type: ignore[arg-type]
    if (
        customer_id
        and issue
        and issue.get("opened_in") != ctx.session_id
        and state.get("contact_counted") != issue.get("id")
    ):
        await count_issue_contact(services, ctx.tenant_id, str(issue["id"]))
        update["contact_counted"] = issue["id"]
    changed = any(a.get("status") == "done" for a in state.get("actions") or [])
    about = issue and (issue.get("order_id") or issue.get("subject_id"))
    if customer_id and issue and about and _issue_changed(issue, state):
        await upsert_issue(services, ctx.tenant_id, _issue_row(issue))
        changed = True
    if customer_id and (changed or "contact_counted" in update):
        await invalidate_360(services, ctx.tenant_id, customer_id)
    return update
