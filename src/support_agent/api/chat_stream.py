"""``/v1/chat`` as server-sent events: the same turn, its progress and reply as they happen.

Events: ``metadata`` (``{"session_id"}``, with ``visitor_token`` when a widget key starts the
session), ``node`` (``{"node"}`` as each graph node finishes),
``token`` (``{"text"}``: reply text as an LLM writes it; none without an LLM), ``reply`` (the
JSON body of the plain endpoint), ``error`` (``{"error": code, "message"}``) and ``end``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.messages import AIMessageChunk
from sse_starlette import ServerSentEvent

from support_agent.api.schemas import ChatRequest
from support_agent.conversation import Agent, TurnResult, TurnTrace, stream_turn
from support_agent.errors import SupportAgentError

logger = logging.getLogger(__name__)


def chat_response(result: TurnResult, visitor_token: str | None = None) -> dict[str, Any]:
    """The ``ChatResponse`` body of a turn (``visitor_token``: a widget's new session's)."""
    body: dict[str, Any] = {
        "session_id": result.session_id,
        "reply": result.reply,
        "decision": result.decision,
        "intent": result.intent,
        "actions": result.actions,
        "handoff": result.handoff,
        "approval": result.approval,
    }
    if visitor_token is not None:
        body["visitor_token"] = visitor_token
    return body


def _event(event: str, data: Any) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data, default=str), event=event)


async def chat_events(
    agent: Agent,
    tenant_id: str,
    body: ChatRequest,
    identity: dict[str, str] | None,
    session_id: str | None = None,
    visitor_token: str | None = None,
    client: str | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """One turn of ``/v1/chat`` as server-sent events (see the module docstring).

    Args:
        agent: the open agent.
        tenant_id: the key's tenant.
        body: the request.
        identity: identifiers the channel supplies (server keys).
        session_id: the session (default: ``body.session_id``, else a new one).
        visitor_token: a widget's new session's visitor token, sent in ``metadata`` (once).
        client: the client's address as the API saw it (verification limits per address).
    """
    session_id = session_id or body.session_id or uuid.uuid4().hex
    meta: dict[str, Any] = {"session_id": session_id}
    if visitor_token is not None:
        meta["visitor_token"] = visitor_token
    yield _event("metadata", meta)
    trace = TurnTrace()
    try:
        async for mode, chunk in stream_turn(
            agent, tenant_id=tenant_id, channel=body.channel, session_id=session_id,
            message=body.message, identity=identity, message_id=body.message_id,
            stream_mode=("updates", "values", "messages"), client=client,
        ):  # fmt: skip
            for node in trace.add(mode, chunk):
                yield _event("node", {"node": node})
            if mode == "messages" and isinstance(chunk[0], AIMessageChunk) and chunk[0].text:
                yield _event("token", {"text": chunk[0].text})
        yield _event("reply", chat_response(trace.result(session_id), visitor_token))
    except SupportAgentError as exc:
        yield _event("error", {"error": exc.code, "message": exc.message})
    except Exception as exc:  # the stream has started: report it as an event, and log it
        logger.exception("chat_stream_failed", extra={"error": type(exc).__name__})
        yield _event("error", {"error": "INTERNAL_ERROR", "message": "internal error"})
    yield _event("end", {"session_id": session_id})
