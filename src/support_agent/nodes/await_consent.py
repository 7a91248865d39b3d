"""await_consent: a proposed write waits, as a LangGraph interrupt, for an explicit decision.

When a turn proposes a write (``decision == "confirm"``), the run pauses here after
``write_memory`` has recorded it. The interrupt's payload has the shape of LangChain's
human-in-the-loop requests, so LangGraph Studio and any ``langgraph-sdk`` client see the pending
approval::

    {"action_requests": [{"name": "cancel_order", "args": {...the exact target...},
                          "description": "To confirm: cancel order #W... Reply yes..."}],
     "review_configs": [{"action_name": "cancel_order",
                         "allowed_decisions": ["approve", "reject"]}]}

A run resumes with ``Command(resume=...)``:

- ``{"decisions": [{"type": "approve"}]}`` or ``{"decisions": [{"type": "reject", "message":
  ...}]}`` from a reviewer or a client;
- ``{"message": "<the customer's reply>"}`` from the chat (``/v1/chat`` sends the customer's next
  message this way): the consent reader (``consent.read_consent``) decides approve, reject,
  unclear or new request; only an unambiguous yes to exactly this action approves.

The answer then goes round the graph as a turn of its own (``identify`` onwards) with
``consent`` set, so the policy engine, the action ledger, the reply and memory treat it like any
other turn: approved, the write runs once; rejected, nothing runs; unclear, the agent asks once
more, plainly; a new request replaces the proposal (and the agent says so).
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import HumanMessage
from langgraph.types import Command, interrupt

from support_agent.consent import read_consent
from support_agent.state import ConsentVerdict, PendingAction, State

ALLOWED = ["approve", "reject"]


def consent_request(pending: PendingAction, description: str) -> dict[str, Any]:
    """The interrupt payload for a proposed write (LangChain's human-in-the-loop shape)."""
    target = pending.get("target") or {}
    args = {"target_kind": target.get("kind"), "target_id": target.get("id"),
            "target_label": target.get("label"), **(target.get("args") or {})}  # fmt: skip
    return {
        "action_requests": [{"name": pending["action"], "args": args, "description": description}],
        "review_configs": [{"action_name": pending["action"], "allowed_decisions": ALLOWED}],
    }


def read_answer(answer: Any, pending: PendingAction) -> tuple[ConsentVerdict, str]:
    """The verdict and the transcript line of a resume value.

    ``{"decisions": [{"type": "approve" | "reject", "message"?}]}`` is a reviewer's decision;
    ``{"message": text}`` (or a bare string) is the customer's reply, read by the consent
    reader (a ``message_id`` beside it becomes the transcript line's id: see
    ``conversation.stream_turn``). Anything else is unclear.
    """
    if isinstance(answer, str):
        answer = {"message": answer}
    if not isinstance(answer, dict):
        return "unclear", "(no answer)"
    decisions = answer.get("decisions")
    if isinstance(decisions, list) and decisions and isinstance(decisions[0], dict):
        kind = decisions[0].get("type")
        note = str(decisions[0].get("message") or "")
        if kind == "approve":
            return "approve", "(approved)"
        if kind == "reject":
            return "reject", f"(rejected) {note}".strip()
        return "unclear", f"({kind})"
    text = str(answer.get("message") or "").strip()
    target = (pending.get("target") or {}).get("id")
    verdict = read_consent(text, pending["action"], str(target) if target else None).verdict
    return verdict, text or "(no answer)"


async def await_consent(state: State) -> Command[Literal["identify"]]:
    """Pause for the decision on the proposed write, then send the answer round as a turn.

    Returns:
        ``Command(goto="identify")`` with the answer appended to ``messages``, ``consent`` set to
        the verdict and ``event="message"``.
    """
    pending = state.get("pending_action")
    if not pending:  # nothing to decide (the route only comes here with a proposal)
        return Command(goto="identify", update={"consent": None})
    answer = interrupt(consent_request(pending, state.get("reply", "")))
    verdict, line = read_answer(answer, pending)
    message_id = answer.get("message_id") if isinstance(answer, dict) else None
    return Command(
        goto="identify",
        update={"messages": [HumanMessage(line, id=message_id)], "consent": verdict,
                "event": "message", "identity": {}},
    )  # fmt: skip
