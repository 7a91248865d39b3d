"""Long-term episodic memory: one summary per conversation session, with its embedding.

Episodes live in the LangGraph store (``AsyncPostgresStore``, pgvector index over ``summary``)
under the namespace ``("tenant", tenant_id, "customer", customer_id, "episodes")``, keyed by the
session id, so writing the same session's episode twice leaves one episode. Namespaces match by
whole-label prefix, so one tenant's or customer's search never reaches another's.

Episode value::

    {"summary": str, "conversationId": str, "channel": str, "intent": str | None,
     "outcome": str, "openIssues": [issue], "promises": [str], "createdAt": ISO-8601 str}

Summaries are extractive and deterministic: built from the issue recorded in the session, the
actions proposed or taken, and the customer's first substantive message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langgraph.store.base import BaseStore


def episodes_namespace(tenant_id: str, customer_id: str) -> tuple[str, ...]:
    """The store namespace of a customer's episodes."""
    return ("tenant", tenant_id, "customer", customer_id, "episodes")


def _action_words(actions: list[str]) -> str:
    words = {
        "return_items": "a return",
        "exchange_items": "an exchange",
        "cancel_order": "a cancellation",
        "modify_order": "a modification",
    }
    return " or ".join(words.get(a, a.replace("_", " ")) for a in actions)


def build_episode(
    *,
    session_id: str,
    channel: str,
    intent: str | None,
    outcome: str,
    issue: dict[str, Any] | None,
    executed: list[dict[str, Any]],
    customer_lines: list[str],
    pending_action: dict[str, Any] | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build a session's episode from what the session recorded (deterministic, no LLM).

    Args:
        session_id: the conversation id.
        channel: the session's channel.
        intent: the session's main intent.
        outcome: ``resolved``, ``unresolved``, ``escalated`` or ``abandoned``.
        issue: the issue discussed (``order_id``, ``item_names``, ``description``,
            ``proposed_actions``) or ``None``.
        executed: account actions carried out (their results).
        customer_lines: the customer's messages, in order.
        pending_action: a write proposed but never confirmed.
        now: timestamp (default: now, UTC).

    Returns:
        The episode value (see module docstring).
    """
    parts: list[str] = []
    open_issues: list[dict[str, Any]] = []
    promises: list[str] = []
    if issue and issue.get("subject_label"):
        parts.append(
            f"Customer reported a problem with {issue['subject_label']}: {issue['description']}."
        )
    elif issue:
        items = ", ".join(issue.get("item_names") or []) or "an item"
        where = f" from order {issue['order_id']}" if issue.get("order_id") else ""
        parts.append(f"Customer reported a problem with {items}{where}: {issue['description']}.")
        if issue.get("proposed_actions"):
            parts.append(f"Agent proposed {_action_words(issue['proposed_actions'])}.")
    for result in executed:
        what = result.get("order_id") or result.get("label") or result.get("transaction_id")
        what = what or result.get("card_id") or result.get("offer_id")
        parts.append(
            f"Agent completed {result['action'].replace('_', ' ')}"
            + (f" for order {what}" if result.get("order_id") else f" ({what})" if what else "")
            + f" (status {result.get('status')})."
        )
    if pending_action and not executed:
        parts.append(
            f"Customer left before confirming {_action_words([pending_action['action']])}"
            + (
                f" for order {pending_action['order_id']}."
                if pending_action.get("order_id")
                else "."
            )
        )
        about = (
            f"for order {pending_action['order_id']}"
            if pending_action.get("order_id")
            else f"({pending_action.get('label') or 'as proposed'})"
        )
        promises.append(
            f"Complete {_action_words([pending_action['action']])} {about} once the customer"
            " confirms"
        )
    elif issue and issue.get("status", "open") == "open" and not executed:
        parts.append("Customer left before choosing; the issue is still open.")
    if issue and issue.get("status", "open") == "open":
        open_issues.append(issue)
    if not parts:
        first = next((line for line in customer_lines if len(line.split()) > 3), None)
        parts.append(f"Customer contacted us on {channel}" + (f': "{first}".' if first else "."))
    return {
        "summary": " ".join(parts),
        "conversationId": session_id,
        "channel": channel,
        "intent": intent,
        "outcome": outcome,
        "openIssues": open_issues,
        "promises": promises,
        "createdAt": (now or datetime.now(UTC)).isoformat(),
    }


async def latest_episodes(
    store: BaseStore, tenant_id: str, customer_id: str, limit: int = 5
) -> list[dict[str, Any]]:
    """A customer's most recent episodes, newest first (values with ``id`` = session id)."""
    items = await store.asearch(episodes_namespace(tenant_id, customer_id), limit=limit)
    return [{"id": it.key, **it.value} for it in items]


async def search_episodes(
    store: BaseStore, tenant_id: str, customer_id: str, query: str, limit: int = 3
) -> list[dict[str, Any]]:
    """A customer's episodes most similar to ``query`` (``score`` = cosine similarity)."""
    items = await store.asearch(
        episodes_namespace(tenant_id, customer_id), query=query, limit=limit
    )
    return [{"id": it.key, "score": getattr(it, "score", None), **it.value} for it in items]
