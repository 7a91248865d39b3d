"""Conversation sessions: run one customer turn, end a session, sweep idle sessions.

The one entry point used by the API, the CLI and the demo. A session is one LangGraph thread
(``"{tenant_id}:{session_id}"``) checkpointed in PostgreSQL, so the same session id continues its
thread after a process restart.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from support_agent.context import Context
from support_agent.crm.repository import get_interaction, idle_sessions
from support_agent.errors import InvalidRequestError, NotFoundError, SessionEndedError
from support_agent.nodes._text import thread_id
from support_agent.services import Services
from support_agent.tenants import load_tenant_config

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000
IDENTITY_KEYS = {"email", "phone", "customer_id", "name", "zip"}


@dataclass
class TurnResult:
    """What one turn produced.

    Attributes:
        session_id: the session (new when none was given).
        reply: the agent's reply.
        decision: respond | ask_identification | confirm | execute | deny | escalate | end.
        intent: classified intent; ``intent_confidence`` its probability.
        actions: actions proposed or done this turn.
        handoff: the warm handoff packet when escalated.
        nodes: graph nodes visited, in order.
        memory: what memory was loaded (source of the 360, episodes, open issue, layers, online
            features).
        policy: the policy decision with its rules.
        customer_id: the identified customer (only when authenticated).
    """

    session_id: str
    reply: str
    decision: str
    intent: str | None
    intent_confidence: float | None
    actions: list[dict[str, Any]]
    handoff: dict[str, Any] | None
    nodes: list[str]
    memory: dict[str, Any]
    policy: dict[str, Any]
    customer_id: str | None
    signals: dict[str, Any] = field(default_factory=dict)


def _config(tenant_id: str, session_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id(tenant_id, session_id)}}


def _validate_session_id(session_id: str) -> None:
    if not (1 <= len(session_id) <= 100) or not all(c.isalnum() or c in "-_" for c in session_id):
        raise InvalidRequestError("session_id must be 1-100 characters of letters, digits, - or _")


async def run_turn(
    services: Services,
    *,
    tenant_id: str,
    channel: str,
    message: str,
    session_id: str | None = None,
    identity: dict[str, str] | None = None,
) -> TurnResult:
    """Run the graph for one customer message.

    A turn is the unit of durability: the thread's checkpoint is written once, when the turn
    completes or fails (``durability="exit"``), not after each of the eight nodes; this halves a
    turn's latency (bench: bank turn p95 47 → 28 ms). A turn interrupted by a crash is lost as a
    whole and the client resends the message; account actions are idempotent per (session,
    action, target), so a resent "yes" never acts twice.

    Args:
        services: open services.
        tenant_id: tenant of the conversation.
        channel: ``chat``, ``phone``, ``email``, ``app``... (free-form, lower-case).
        message: the customer's message (1..4000 characters).
        session_id: continue this session; ``None`` starts a new one.
        identity: identifiers supplied by the channel (``email``, ``phone``, ``customer_id``,
            ``name`` + ``zip``).

    Raises:
        NotFoundError: unknown tenant.
        InvalidRequestError: empty or oversized message, bad session id or identity keys.
        SessionEndedError: the session has ended (explicitly or after inactivity).
    """
    load_tenant_config(tenant_id)
    if not message.strip() or len(message) > MAX_MESSAGE_CHARS:
        raise InvalidRequestError(f"message must be 1-{MAX_MESSAGE_CHARS} characters")
    if identity and not set(identity) <= IDENTITY_KEYS:
        raise InvalidRequestError(f"identity keys must be among {sorted(IDENTITY_KEYS)}")
    session_id = session_id or uuid.uuid4().hex
    _validate_session_id(session_id)
    interaction = await get_interaction(services, tenant_id, session_id)
    if interaction is not None:
        if interaction["status"] == "ended":
            raise SessionEndedError("this session has ended; start a new session")
        idle = timedelta(seconds=services.settings.session_idle_timeout_s)
        if interaction["last_activity_at"] < datetime.now(UTC) - idle:
            await end_session(
                services, tenant_id=tenant_id, session_id=session_id, reason="idle_timeout"
            )
            raise SessionEndedError("this session ended after inactivity; start a new session")
        channel = interaction["channel"]
    config = _config(tenant_id, session_id)
    context = Context(tenant_id=tenant_id, channel=channel, session_id=session_id)
    graph_input: dict[str, Any] = {
        "messages": [HumanMessage(message)],
        "identity": {k: v for k, v in (identity or {}).items() if v},
        "event": "message",
    }
    nodes: list[str] = []
    async for chunk in services.graph.astream(
        graph_input, config, context=context, stream_mode="updates", durability="exit"
    ):
        nodes.extend(k for k in chunk if not k.startswith("__"))
    state = (await services.graph.aget_state(config)).values
    memory = state.get("memory") or {}
    return TurnResult(
        session_id=session_id,
        reply=state.get("reply", ""),
        decision=state.get("decision", "respond"),
        intent=state.get("intent"),
        intent_confidence=state.get("intent_confidence"),
        actions=state.get("actions") or [],
        handoff=state.get("handoff"),
        nodes=nodes,
        memory={
            "source": memory.get("source"),
            "episodes": [
                e["conversationId"]
                for e in [memory.get("open_episode"), *memory.get("episodes", [])]
                if e
            ],
            "open_issue": memory.get("open_issue"),
            "l1_identity": memory.get("l1_identity"),
            "l2_history": memory.get("l2_history"),
            "l4_prefs_mood": memory.get("l4_prefs_mood"),
            "budget": memory.get("budget"),
            "features": memory.get("features"),
        },
        policy=state.get("policy") or {},
        customer_id=state.get("customer_id") if state.get("authenticated") else None,
        signals=state.get("signals") or {},
    )


async def end_session(
    services: Services, *, tenant_id: str, session_id: str, reason: str = "explicit"
) -> dict[str, Any]:
    """End a session and queue its memory job (idempotent: ending twice queues one job).

    Returns:
        ``{"session_id", "status": "ended", "memory_job": status}`` where the job status is
        ``enqueued`` (a worker will write the episode and layers), ``pending`` (Redis down; the
        relay publishes it later), ``done`` / ``dead`` for an earlier end, or ``None`` when no
        customer was authenticated (nothing to remember).

    Raises:
        NotFoundError: no such session for this tenant.
    """
    load_tenant_config(tenant_id)
    _validate_session_id(session_id)
    interaction = await get_interaction(services, tenant_id, session_id)
    if interaction is None:
        raise NotFoundError("session not found")
    config = _config(tenant_id, session_id)
    if interaction["status"] == "open":
        context = Context(
            tenant_id=tenant_id, channel=interaction["channel"], session_id=session_id
        )
        await services.graph.ainvoke(
            {"event": "end_session", "end_reason": reason}, config, context=context
        )
        logger.info(
            "session_ended",
            extra={"tenant_id": tenant_id, "thread_id": session_id, "reason": reason},
        )
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT status FROM memory_jobs WHERE tenant_id = %s AND conversation_id = %s",
                (tenant_id, session_id),
            )
        ).fetchone()
    return {
        "session_id": session_id,
        "status": "ended",
        "memory_job": None if row is None else row["status"],
    }


async def sweep_idle_sessions(services: Services, now: datetime | None = None) -> list[str]:
    """End every session idle for longer than ``SESSION_IDLE_TIMEOUT_S``; returns their ids."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=services.settings.session_idle_timeout_s)
    ended = []
    for tenant_id, session_id in await idle_sessions(services, cutoff):
        await end_session(
            services, tenant_id=tenant_id, session_id=session_id, reason="idle_timeout"
        )
        ended.append(session_id)
    return ended
