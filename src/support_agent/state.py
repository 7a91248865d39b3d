"""State of the support graph: what one conversation session carries from turn to turn.

The state is checkpointed per thread (one thread per session) in PostgreSQL, so a session resumes
after a process restart. Nodes return only the keys they change.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

Event = Literal["message", "end_session"]

Decision = Literal[
    "respond",  # answered with facts from the 360 and memory
    "ask_identification",  # identity missing, unknown or not yet verified
    "confirm",  # a write action is proposed; waiting for an explicit "yes"
    "execute",  # a confirmed write action was carried out
    "deny",  # the policy forbids what was asked; the reply says why
    "escalate",  # warm handoff to a human agent
    "end",  # the session was ended and its episode written
]


class InputState(TypedDict, total=False):
    """What a caller sends for one turn.

    Attributes:
        messages: the customer's new message (appended to the thread's transcript).
        identity: identifiers supplied out of band by the channel, any of ``email``, ``phone``,
            ``customer_id``, ``name`` + ``zip`` (e.g. a logged-in widget or caller id).
        event: ``"message"`` (default) or ``"end_session"`` to close the session and write its
            episode (``reason`` says why: ``"explicit"`` or ``"idle_timeout"``).
        end_reason: why the session ends, with ``event="end_session"``.
    """

    messages: Annotated[list[AnyMessage], add_messages]
    identity: dict[str, str]
    event: Event
    end_reason: str


class State(InputState, total=False):
    """The whole checkpointed state of one session.

    Attributes:
        customer_id: the identified customer (one per conversation), or absent.
        authenticated: True once identified by a method the tenant accepts as authentication.
        auth_method: ``email`` | ``phone`` | ``name_zip`` (how authentication happened).
        identification: outcome of this turn's identification: ``status`` in
            ``authenticated | identified_unverified | unknown | missing | conflict`` and a
            ``detail``.
        c360: the Customer 360 loaded this turn (see ``crm.customer360``).
        memory: long-term memory loaded this turn: ``episodes`` (latest first), ``open_issue``
            (latest episode or CRM issue still open), ``source`` of the 360 (redis/postgres).
        intent: classified intent of the latest message; ``intent_confidence`` its probability.
        signals: sub-signals of the latest message: ``frustration`` (0..1), ``human_request``,
            ``churn_threat``, ``confirmation`` (``yes`` / ``no`` / None).
        entities: what the message names: ``order_ids``, ``items`` (product names), ``reason``.
        resolutions: retrieved past resolutions and episodes with similarities.
        candidates: next-best-action candidates, best first, each with ``score`` and
            ``explanation`` (the formula's terms).
        policy: the policy decision: chosen ``action``, ``outcome``, ``reason`` and the ``rules``
            evaluated.
        pending_action: a proposed write action waiting for the customer's explicit "yes".
        issue: the issue under discussion in this session (order, items, description, proposed
            actions), persisted to the CRM as an open issue.
        decision: what the agent did this turn.
        reply: the agent's reply text this turn.
        actions: actions taken or proposed this turn (for the API response).
        handoff: the warm handoff packet when escalated.
        turn: number of customer turns so far.
        history: one entry per turn ``{turn, intent, decision, action}`` (appended).
        session_status: ``open`` or ``ended``.
        memory_job: status of the memory job queued when the session ended.
        contact_counted: the open issue whose contact count this session already increased.
        offer: the retention offer made in this session (``offer_id``, ``holding_id``, ``terms``,
            ``disclosure``), which a confirmed "yes" applies.
    """

    customer_id: str
    authenticated: bool
    auth_method: str
    identification: dict[str, Any]
    c360: dict[str, Any]
    memory: dict[str, Any]
    intent: str
    intent_confidence: float
    signals: dict[str, Any]
    entities: dict[str, Any]
    offer: dict[str, Any] | None
    resolutions: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    policy: dict[str, Any]
    pending_action: dict[str, Any] | None
    issue: dict[str, Any] | None
    decision: Decision
    reply: str
    actions: list[dict[str, Any]]
    handoff: dict[str, Any] | None
    turn: int
    history: Annotated[list[dict[str, Any]], operator.add]
    session_status: Literal["open", "ended"]
    memory_job: str | None
    contact_counted: str | None
