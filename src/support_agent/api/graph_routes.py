"""The graph endpoint: a subset of the LangGraph API (Agent Protocol) on our own app.

The official ``langgraph-sdk`` clients (Python, JavaScript), LangChain's agent-chat-ui and the
chat widget talk to the support graph through these routes, behind our API keys and tenancy. A
**thread is a session** (its id is the session id; its checkpoints are the session's, under
``"{tenant_id}:{thread_id}"``), so a key only ever sees its own tenant's threads: a thread id of
another tenant answers 404.

- ``GET /info``; ``POST /assistants/search``, ``GET /assistants/{id}``: one assistant, the
  ``support_agent`` graph (its id is the graph id or the UUID the LangGraph API derives from it);
- ``POST /threads``, ``GET /threads/{id}``, ``GET /threads/{id}/state``; and for server keys
  only ``POST /threads/search`` (metadata filter), ``POST /threads/{id}/history`` and ``DELETE
  /threads/{id}`` (ends the session, so its memory is written, then forgets the thread);
- ``POST /threads/{id}/runs`` (background), ``/runs/stream`` (server-sent events, with
  ``Content-Location`` naming the run), ``/runs/wait``; ``GET /threads/{id}/runs/{run}``,
  ``.../stream`` (join, from ``Last-Event-ID``), ``.../join`` (wait); ``POST
  .../cancel``.

A run's ``input`` is ``{"messages": [{"role": "user", "content": "..."}]}`` (the last user
message is the turn's message; ``type: human`` and content blocks work too), optionally with
``identity`` (server keys) and ``channel``; ``context.customer_token`` carries a logged-in
customer's signed token (HS256 JWT from the tenant's site, ``sub`` = customer id, ``aud`` =
tenant id) and ``context.channel`` the channel. ``command.resume`` answers the proposed write the
thread awaits (``{"decisions": [{"type": "approve"}]}``, or ``{"message": "yes"}``).

A publishable widget key may create threads and run them, and reads only the public part of a
thread's state (:func:`~support_agent.api.runs.public_values`). Its threads are its visitor's
(``api.deps``, "visitor ownership"): ``POST /threads`` issues the thread id and a visitor token
(``X-Visitor-Token`` response header and ``visitor_token`` in the body; a widget key may not
choose ``thread_id``: 422), and every other route on the thread wants the token back in the
``X-Visitor-Token`` header, else 404 as for a thread that does not exist. A thread whose run was
verified by a customer token runs only with a token of the same customer (401 without, 403 with
another's). Customer tokens must carry ``iat`` and live at most ``CUSTOMER_TOKEN_MAX_AGE_S``
(``exp - iat``). No route reads a key or token from the URL.

A thread id that names a ``/v1/chat`` session (or a session a widget started there) never
becomes a graph thread: ``POST /threads`` and ``if_not_exists=create`` on it answer 409.

Responses have the shapes of ``langgraph_sdk.schema`` (``Assistant``, ``Thread``,
``ThreadState``, ``Run``), checked statically by mypy; they are not FastAPI response models
because pydantic cannot read ``typing.TypedDict`` on Python 3.11.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

import jwt
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from langgraph.types import StateSnapshot
from langgraph_sdk.schema import (
    Assistant,
    Checkpoint,
    Thread,
    ThreadState,
    ThreadTask,
)
from langgraph_sdk.schema import Run as SdkRun
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException

from support_agent.api.deps import (
    BUSY,
    UNAUTHORIZED,
    VISITOR_HEADER,
    AgentDep,
    Binding,
    PrincipalDep,
    bind_customer,
    bind_visitor,
    forget_visitor,
    new_visitor_token,
    owned_session,
    request_address,
)
from support_agent.api.runs import (
    ASSISTANT_ID,
    GRAPH_ID,
    STREAM_MODES,
    Run,
    RunRegistry,
    TurnSpec,
    public_values,
    to_jsonable,
)
from support_agent.api.schemas import ErrorBody
from support_agent.api.streams import revoked_event, until_revoked
from support_agent.conversation import Agent, end_session
from support_agent.crm.repository import get_interaction
from support_agent.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    SessionEndedError,
    TurnInProgressError,
    UnauthorizedError,
)
from support_agent.tenancy import Principal
from support_agent.threads import thread_id as checkpoint_thread

router = APIRouter(tags=["graph (LangGraph API)"], responses=UNAUTHORIZED)
#: Routes without a key (``/info``).
public_router = APIRouter(tags=["graph (LangGraph API)"])

ThreadId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
_THREAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_CHANNEL = re.compile(r"^[a-z_]{1,32}$")


class ThreadCreate(BaseModel):
    """``POST /threads``."""

    model_config = ConfigDict(extra="ignore", strict=True)

    thread_id: ThreadId | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None


class ThreadSearch(BaseModel):
    """``POST /threads/search``: threads whose metadata contains ``metadata``, newest first."""

    model_config = ConfigDict(extra="ignore", strict=True)

    metadata: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class HistoryRequest(BaseModel):
    """``POST /threads/{id}/history``: the thread's checkpoints, newest first."""

    model_config = ConfigDict(extra="ignore", strict=True)

    limit: int = Field(10, ge=1, le=1000)
    before: dict[str, Any] | str | None = None


class RunCreate(BaseModel):
    """``POST /threads/{id}/runs[/stream|/wait]`` (the fields the support graph uses)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    assistant_id: str = Field(min_length=1, max_length=100)
    input: dict[str, Any] | None = None
    command: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: str | list[str] | None = None
    if_not_exists: Literal["create", "reject"] | None = None


_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _assistant() -> Assistant:
    return {
        "assistant_id": ASSISTANT_ID,
        "graph_id": GRAPH_ID,
        "name": GRAPH_ID,
        "description": "Customer support with a memory of every customer",
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "created_at": _EPOCH,
        "updated_at": _EPOCH,
    }


def _check_assistant(assistant_id: str) -> str:
    if assistant_id not in (GRAPH_ID, ASSISTANT_ID):
        raise NotFoundError("assistant not found")
    return ASSISTANT_ID


def _registry(request: Request) -> RunRegistry:
    registry: RunRegistry = request.app.state.runs
    return registry


async def _thread_row(agent: Agent, tenant_id: str, thread: str) -> dict[str, Any]:
    """The thread's row, if it is this tenant's.

    Raises:
        NotFoundError: no such thread for this tenant (also a malformed id).
    """
    if not _THREAD_ID.match(thread):
        raise NotFoundError("thread not found")
    async with agent.services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT * FROM graph_threads WHERE tenant_id = %s AND thread_id = %s",
                (tenant_id, thread),
            )
        ).fetchone()
    if row is None:
        raise NotFoundError("thread not found")
    return dict(row)


async def _create_thread(
    agent: Agent,
    tenant_id: str,
    thread: str,
    metadata: dict[str, Any],
    visitor_token: str | None = None,
) -> dict[str, Any] | None:
    """Insert a thread (bound to the visitor of ``visitor_token``, in the same transaction).

    Returns:
        The new row; ``None`` when the id is taken: by a thread, or by a session that is not a
        graph thread (the CRM holds it, or a widget started it on ``/v1/chat``).
    """
    async with agent.services.pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                "INSERT INTO graph_threads (tenant_id, thread_id, metadata)"
                " SELECT %(t)s, %(id)s, %(m)s WHERE NOT EXISTS (SELECT 1 FROM interactions"
                " WHERE tenant_id = %(t)s AND id = %(id)s) AND NOT EXISTS (SELECT 1 FROM"
                " visitor_bindings WHERE tenant_id = %(t)s AND session_id = %(id)s)"
                " ON CONFLICT DO NOTHING RETURNING *",
                {"t": tenant_id, "id": thread, "m": json.dumps(metadata)},
            )
        ).fetchone()
        if row is not None and visitor_token is not None:
            await bind_visitor(conn, tenant_id, thread, "thread", visitor_token)
    return None if row is None else dict(row)


async def _taken(agent: Agent, tenant_id: str, thread: str) -> dict[str, Any]:
    """The existing thread a failed :func:`_create_thread` ran into.

    Raises:
        ConflictError: (409) the id is a session's that is not a graph thread.
    """
    try:
        return await _thread_row(agent, tenant_id, thread)
    except NotFoundError:
        raise ConflictError(
            "a conversation outside the graph endpoint has this id; it cannot become a thread"
        ) from None


async def _owned(
    request: Request, agent: Agent, principal: Principal, thread: str
) -> Binding | None:
    """The visitor binding a widget key must prove for ``thread`` (``None``: a server key).

    Raises:
        NotFoundError: (404) a widget key without this thread's visitor token.
    """
    return await owned_session(request, agent.services, principal, thread, "thread not found")


def _checkpoint(thread: str, checkpoint_id: str | None) -> Checkpoint:
    return {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": checkpoint_id,
            "checkpoint_map": None}  # fmt: skip


def _snapshot(thread: str, snap: StateSnapshot, full: bool) -> ThreadState:
    """A checkpoint as ``langgraph_sdk.schema.ThreadState`` (ids are the client's)."""
    conf = snap.config.get("configurable", {}) if snap.config else {}
    parent = (snap.parent_config or {}).get("configurable", {})
    values = to_jsonable(snap.values) if isinstance(snap.values, dict) else {}
    interrupts = [to_jsonable(i) for i in snap.interrupts]
    if interrupts:
        values["__interrupt__"] = interrupts
    tasks: list[ThreadTask] = [
        {"id": t.id, "name": t.name, "interrupts": [to_jsonable(i) for i in t.interrupts],
         "error": None, "checkpoint": None, "state": None, "result": None}
        for t in snap.tasks
    ]  # fmt: skip
    return {
        "values": public_values(values, full),
        "next": list(snap.next),
        "tasks": tasks,
        "interrupts": interrupts,
        "metadata": to_jsonable(dict(snap.metadata or {})) if full else {},
        "created_at": snap.created_at,
        "checkpoint": _checkpoint(thread, conf.get("checkpoint_id")),
        "parent_checkpoint": _checkpoint(thread, parent["checkpoint_id"]) if parent else None,
    }


async def _state(agent: Agent, tenant_id: str, thread: str) -> StateSnapshot:
    config = {"configurable": {"thread_id": checkpoint_thread(tenant_id, thread)}}
    return await agent.graph.aget_state(config)  # type: ignore[arg-type]


async def _thread(agent: Agent, row: dict[str, Any], full: bool) -> Thread:
    """A thread as ``langgraph_sdk.schema.Thread``, with its current values."""
    snap = await _state(agent, row["tenant_id"], row["thread_id"])
    state = _snapshot(row["thread_id"], snap, full)
    return {
        "thread_id": row["thread_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "metadata": row["metadata"],
        "status": row["status"],
        "values": cast(dict[str, Any], state["values"]),
        "interrupts": {t["id"]: t["interrupts"] for t in state["tasks"] if t["interrupts"]},
        "extracted": {},
    }


@public_router.get("/info")
async def info() -> dict[str, Any]:
    """The server: version and capabilities (no key needed)."""
    return {"version": "0.1.0", "flags": {"assistants": True, "crons": False,
                                          "langsmith": False}}  # fmt: skip


@router.post("/assistants/search", response_model=None)
async def search_assistants(_: PrincipalDep) -> list[Assistant]:
    """The assistants: the one support graph."""
    return [_assistant()]


@router.api_route(
    "/assistants/search", methods=["GET", "DELETE", "PUT", "PATCH"], include_in_schema=False
)
@router.api_route(
    "/threads/search", methods=["GET", "DELETE", "PUT", "PATCH"], include_in_schema=False
)
async def search_other_methods() -> None:
    """``search`` is not an id: other methods on it are 405, not an assistant's or thread's 404."""
    raise StarletteHTTPException(405, headers={"Allow": "POST"})


@router.get("/assistants/{assistant_id}", response_model=None)
async def get_assistant(assistant_id: str, _: PrincipalDep) -> Assistant:
    """The support graph's assistant (by assistant id or graph id)."""
    _check_assistant(assistant_id)
    return _assistant()


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "`CONFLICT`: the thread already exists, or the id is a `/v1/chat` session's",
    },
    200: {
        "description": "the thread; for a widget key also its `visitor_token`, sent once",
        "headers": {
            VISITOR_HEADER: {
                "schema": {"type": "string"},
                "description": "a widget key's visitor token for this thread (send it back in"
                " this header with every call on the thread)",
            }
        },
    },
}


@router.post("/threads", responses=_CONFLICT, response_model=None)
async def create_thread(
    body: ThreadCreate, response: Response, agent: AgentDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Create a thread (a session); ``if_exists=do_nothing`` returns an existing one.

    A widget key gets a server-issued id and the thread's visitor token (``X-Visitor-Token``
    header and ``visitor_token``), shown this once.

    Raises:
        InvalidRequestError: (422) a widget key sending ``thread_id``.
        ConflictError: (409) the thread exists and ``if_exists`` is not ``do_nothing``, or the
            id is a session's that is not a graph thread.
    """
    widget = principal.kind == "widget"
    if widget and body.thread_id is not None:
        raise InvalidRequestError(
            "a widget key cannot choose thread_id: leave it out, the server issues the id and a"
            " visitor token"
        )
    thread = body.thread_id or str(uuid.uuid4())
    token = new_visitor_token() if widget else None
    row = await _create_thread(agent, principal.tenant_id, thread, body.metadata or {}, token)
    if row is None:
        existing = await _taken(agent, principal.tenant_id, thread)
        if body.if_exists != "do_nothing":
            raise ConflictError("thread already exists")
        row = existing
    out: dict[str, Any] = dict(await _thread(agent, row, not widget))
    if token is not None:
        response.headers[VISITOR_HEADER] = token
        out["visitor_token"] = token
    return out


@router.post("/threads/search", response_model=None)
async def search_threads(
    body: ThreadSearch, agent: AgentDep, principal: PrincipalDep
) -> list[Thread]:
    """The tenant's threads whose metadata contains ``metadata``, newest first (server keys)."""
    tenant_id = principal.require("secret", "agent")
    async with agent.services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT * FROM graph_threads WHERE tenant_id = %s AND metadata @> %s"
                " AND (%s::text IS NULL OR status = %s)"
                " ORDER BY updated_at DESC, thread_id LIMIT %s OFFSET %s",
                (
                    tenant_id,
                    json.dumps(body.metadata or {}),
                    body.status,
                    body.status,
                    body.limit,
                    body.offset,
                ),
            )  # fmt: skip
        ).fetchall()
    return [await _thread(agent, dict(r), True) for r in rows]


@router.get("/threads/{thread_id}", response_model=None)
async def get_thread(
    thread_id: str, request: Request, agent: AgentDep, principal: PrincipalDep
) -> Thread:
    """A thread with its current values (a widget key: its visitor's thread only)."""
    await _owned(request, agent, principal, thread_id)
    row = await _thread_row(agent, principal.tenant_id, thread_id)
    return await _thread(agent, row, principal.kind != "widget")


@router.get("/threads/{thread_id}/state", response_model=None)
async def get_state(
    thread_id: str, request: Request, agent: AgentDep, principal: PrincipalDep
) -> ThreadState:
    """The thread's current state (``values``, ``next``, ``tasks`` with interrupts)."""
    await _owned(request, agent, principal, thread_id)
    await _thread_row(agent, principal.tenant_id, thread_id)
    snap = await _state(agent, principal.tenant_id, thread_id)
    return _snapshot(thread_id, snap, principal.kind != "widget")


@router.post("/threads/{thread_id}/history", response_model=None)
async def history(
    thread_id: str, body: HistoryRequest, agent: AgentDep, principal: PrincipalDep
) -> list[ThreadState]:
    """The thread's checkpoints, newest first (server keys)."""
    tenant_id = principal.require("secret", "agent")
    await _thread_row(agent, tenant_id, thread_id)
    config = {"configurable": {"thread_id": checkpoint_thread(tenant_id, thread_id)}}
    before = body.before
    if isinstance(before, dict):
        before = (before.get("configurable") or before).get("checkpoint_id")
    before_config = (
        {"configurable": {**config["configurable"], "checkpoint_id": before}} if before else None
    )
    return [
        _snapshot(thread_id, snap, True)
        async for snap in agent.graph.aget_state_history(
            config,  # type: ignore[arg-type]
            limit=body.limit,
            before=before_config,  # type: ignore[arg-type]
        )
    ]


@router.delete("/threads/{thread_id}", status_code=204, responses=BUSY)
async def delete_thread(thread_id: str, agent: AgentDep, principal: PrincipalDep) -> Response:
    """End the thread's session (its memory is written) and forget the thread (server keys)."""
    tenant_id = principal.require("secret", "agent")
    await _thread_row(agent, tenant_id, thread_id)
    try:
        await end_session(agent, tenant_id=tenant_id, session_id=thread_id)
    except NotFoundError:
        pass  # no message was ever sent: nothing to end
    async with agent.services.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM graph_threads WHERE tenant_id = %s AND thread_id = %s",
            (tenant_id, thread_id),
        )
        await forget_visitor(conn, tenant_id, thread_id)
    await agent.services.checkpointer.adelete_thread(checkpoint_thread(tenant_id, thread_id))
    return Response(status_code=204)


def _text(content: Any) -> str:
    """A message's text: a string, or the text blocks of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in content
        ).strip()
    return ""


#: Clock skew allowed between the tenant's site and us when reading a customer token (seconds).
TOKEN_LEEWAY_S = 30


def _customer_token(agent: Agent, tenant_id: str, token: str) -> str:
    """The customer id in a logged-in customer's signed token.

    The token is an HS256 JWT signed with the tenant's identity secret and must carry ``sub``
    (the customer id), ``aud`` (the tenant id), ``iat`` and ``exp``, with ``exp - iat`` at most
    ``CUSTOMER_TOKEN_MAX_AGE_S`` (default 3600 s) and ``iat`` not in the future (both within
    :data:`TOKEN_LEEWAY_S`). The token itself is never logged.

    Raises:
        UnauthorizedError: (401) the tenant has no identity secret, or the token is invalid,
            expired, issued in the future, lacks a claim, or lives longer than allowed.
    """
    env = agent.services.tenants.get(tenant_id).config.widget.identity_secret_env
    secret = os.environ.get(env) if env else None
    if not secret:
        raise UnauthorizedError("this tenant does not accept customer tokens")
    max_age = agent.services.settings.customer_token_max_age_s
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], audience=tenant_id, leeway=TOKEN_LEEWAY_S,
            options={"require": ["sub", "exp", "iat", "aud"]},
        )  # fmt: skip
    except jwt.MissingRequiredClaimError as exc:
        raise UnauthorizedError("a customer token must carry sub, aud, iat and exp") from exc
    except jwt.InvalidTokenError as exc:
        raise UnauthorizedError("invalid or expired customer token") from exc
    try:
        lifetime = float(claims["exp"]) - float(claims["iat"])
    except (TypeError, ValueError) as exc:  # PyJWT checked both are numbers: defensive
        raise UnauthorizedError("invalid or expired customer token") from exc
    if lifetime > max_age:
        raise UnauthorizedError(
            f"customer token lives too long: exp - iat must be at most {max_age} s"
        )
    return str(claims["sub"])


def _turn_spec(
    agent: Agent, principal: Principal, body: RunCreate, client: str | None = None
) -> TurnSpec:
    """What the run does, from its input, command and context (``client``: the caller's address).

    Raises:
        InvalidRequestError: no user message and no resume value, or a malformed field.
        ForbiddenError: a widget key sending an identity (it sends a signed customer token).
        UnauthorizedError: an invalid customer token.
    """
    data = body.input or {}
    context = body.context or {}
    channel = str(context.get("channel") or data.get("channel") or "chat")
    if not _CHANNEL.match(channel):
        raise InvalidRequestError("channel must be 1-32 lower-case letters or _")
    identity = data.get("identity")
    if identity is not None:
        if principal.kind == "widget":
            raise ForbiddenError("a widget key identifies a customer with a signed customer_token")
        if not isinstance(identity, dict) or not all(isinstance(v, str) for v in identity.values()):
            raise InvalidRequestError("input.identity must be an object of strings")
    token = context.get("customer_token")
    verified = _customer_token(agent, principal.tenant_id, str(token)) if token else None
    if body.command is not None:
        if set(body.command) - {"resume"} or "resume" not in body.command:
            raise InvalidRequestError("command supports only resume")
        return TurnSpec(channel, None, identity, body.command["resume"], verified, client)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("input.messages must hold the customer's message")
    users = [
        m for m in messages
        if isinstance(m, dict) and (m.get("role") in ("user", "human") or m.get("type") == "human")
    ]  # fmt: skip
    text = _text(users[-1].get("content")) if users else ""
    if not text:
        raise InvalidRequestError("input.messages must hold a user message with text")
    return TurnSpec(channel, text, identity, verified_customer_id=verified, client=client)


def _stream_modes(body: RunCreate) -> list[str]:
    modes = body.stream_mode or ["values"]
    modes = [modes] if isinstance(modes, str) else modes
    unknown = [m for m in modes if m not in STREAM_MODES]
    if unknown:
        raise InvalidRequestError(
            f"stream_mode {unknown[0]!r} is not supported; use {sorted(STREAM_MODES)}"
        )
    return list(dict.fromkeys(modes))


async def _start(
    request: Request, agent: Agent, principal: Principal, thread_id: str, body: RunCreate
) -> Run:
    """Validate a run request and start the run.

    A widget key runs only its visitor's threads (``if_not_exists=create`` never creates one
    for it: its threads come from ``POST /threads``), and a thread verified by a customer token
    only with a token of the same customer.

    Raises:
        NotFoundError: unknown thread (unless ``if_not_exists=create``) or assistant; for a
            widget key, a thread without its visitor token.
        UnauthorizedError: an invalid customer token, or none on a verified customer's thread.
        ForbiddenError: a customer token of another customer than the thread's.
        ConflictError: ``if_not_exists=create`` on the id of a ``/v1/chat`` session.
        SessionEndedError: the thread's session has ended.
    """
    binding = await _owned(request, agent, principal, thread_id)
    assistant_id = _check_assistant(body.assistant_id)
    spec = _turn_spec(agent, principal, body, request_address(request, agent.services))
    modes = _stream_modes(body)
    tenant_id = principal.tenant_id
    try:
        await _thread_row(agent, tenant_id, thread_id)
    except NotFoundError:
        if body.if_not_exists != "create" or not _THREAD_ID.match(thread_id):
            raise
        if await _create_thread(agent, tenant_id, thread_id, body.metadata or {}) is None:
            await _taken(agent, tenant_id, thread_id)  # a thread created meanwhile is fine
    await bind_customer(request, agent.services, binding, spec.verified_customer_id)
    interaction = await get_interaction(agent.services, tenant_id, thread_id)
    if interaction is not None and interaction["status"] == "ended":  # 409 before any stream
        raise SessionEndedError("this session has ended; start a new thread")
    return await _registry(request).start(tenant_id, thread_id, assistant_id, modes, spec)


def _events(run: Run, full: bool, after: int = 0) -> AsyncIterator[ServerSentEvent]:
    """The run's events as server-sent events (values filtered for widget keys)."""

    async def gen() -> AsyncIterator[ServerSentEvent]:
        async for seq, event, data in run.subscribe(after):
            if event == "values":
                data = public_values(data, full)
            elif event in ("updates", "custom") and not full:
                continue  # node updates carry the 360 and policy: server keys only
            yield ServerSentEvent(data=json.dumps(data, default=str), event=event, id=str(seq))

    return gen()


def _sse(agent: Agent, principal: Principal, run: Run, after: int = 0) -> EventSourceResponse:
    """A run's events as a response that ends within seconds of its key's revocation."""
    path = f"/threads/{run.thread_id}/runs/{run.run_id}"
    events = _events(run, principal.kind != "widget", after)
    return EventSourceResponse(
        until_revoked(agent.services, principal.key_hash, events, last=revoked_event()),
        headers={"Content-Location": path, "Location": f"{path}/stream"},
    )


_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}
}


@router.post("/threads/{thread_id}/runs/stream", responses={**_SSE, **BUSY})
async def stream_run(
    thread_id: str, body: RunCreate, request: Request, agent: AgentDep, principal: PrincipalDep
) -> EventSourceResponse:
    """Start a run and stream its events (``metadata`` … ``end``)."""
    run = await _start(request, agent, principal, thread_id, body)
    return _sse(agent, principal, run)


@router.post("/threads/{thread_id}/runs", responses=BUSY, response_model=None)
async def create_run(
    thread_id: str, body: RunCreate, request: Request, agent: AgentDep, principal: PrincipalDep
) -> SdkRun:
    """Start a run in the background; join it with ``GET .../runs/{run}/stream``."""
    run = await _start(request, agent, principal, thread_id, body)
    return run.as_dict()


async def _finished(run: Run, full: bool) -> dict[str, Any]:
    """The run's last values once it finished; its error as an HTTP error if it failed."""
    if run.task is not None:
        await run.task
    if run.failure is not None:
        raise run.failure
    if run.error is not None:  # cancelled
        raise ConflictError(run.error["message"])
    return public_values(run.values, full)


@router.post("/threads/{thread_id}/runs/wait", responses=BUSY)
async def wait_run(
    thread_id: str, body: RunCreate, request: Request, agent: AgentDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Run and return the thread's values at the end (``__interrupt__`` when it awaits a yes)."""
    run = await _start(request, agent, principal, thread_id, body)
    return await _finished(run, principal.kind != "widget")


#: Recorded statuses of a run still going (``graph_runs``).
_GOING = ("pending", "running")
#: How long ``join`` waits for a run of another process to record its end (seconds).
FOREIGN_JOIN_WAIT_S = 120.0


async def _await_recorded_end(agent: Agent, tenant_id: str, run_id: str) -> None:
    """Wait until a run of another API process records its end in ``graph_runs``.

    Polled every 50 ms (a turn takes tens of milliseconds).

    Raises:
        TurnInProgressError: it did not end within :data:`FOREIGN_JOIN_WAIT_S` (its process may
            have died; the thread's state is readable).
    """
    deadline = asyncio.get_running_loop().time() + FOREIGN_JOIN_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        async with agent.services.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT status FROM graph_runs WHERE run_id = %s AND tenant_id = %s",
                    (run_id, tenant_id),
                )
            ).fetchone()
        if row is None or row["status"] not in _GOING:
            return
        await asyncio.sleep(0.05)
    raise TurnInProgressError("the run has not ended yet; read the thread's state or retry")


async def _run_or_404(
    request: Request, agent: Agent, principal: Principal, thread_id: str, run_id: str
) -> Run | dict[str, Any]:
    """The live run of this process, else its recorded row.

    Raises:
        NotFoundError: no such run on this tenant's thread (or, for a widget key, on a thread
            without its visitor token).
    """
    await _owned(request, agent, principal, thread_id)
    run = _registry(request).get(principal.tenant_id, thread_id, run_id)
    if run is not None:
        return run
    try:
        uuid.UUID(run_id)
    except ValueError as exc:
        raise NotFoundError("run not found") from exc
    async with agent.services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT * FROM graph_runs WHERE run_id = %s AND tenant_id = %s AND thread_id = %s",
                (run_id, principal.tenant_id, thread_id),
            )
        ).fetchone()
    if row is None:
        raise NotFoundError("run not found")
    return dict(row)


@router.api_route(
    "/threads/{thread_id}/runs/stream",
    methods=["GET", "DELETE", "PUT", "PATCH"],
    include_in_schema=False,
)
@router.api_route(
    "/threads/{thread_id}/runs/wait",
    methods=["GET", "DELETE", "PUT", "PATCH"],
    include_in_schema=False,
)
async def run_other_methods() -> None:
    """``stream`` and ``wait`` are not run ids: other methods on them are 405."""
    raise StarletteHTTPException(405, headers={"Allow": "POST"})


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=None)
async def get_run(
    thread_id: str, run_id: str, request: Request, agent: AgentDep, principal: PrincipalDep
) -> SdkRun:
    """A run and its status."""
    found = await _run_or_404(request, agent, principal, thread_id, run_id)
    if isinstance(found, Run):
        return found.as_dict()
    return {
        "run_id": str(found["run_id"]), "thread_id": found["thread_id"],
        "assistant_id": found["assistant_id"], "status": found["status"],
        "created_at": found["created_at"], "updated_at": found["updated_at"], "metadata": {},
        "multitask_strategy": "enqueue",
        "cancel_reason": "cancelled" if found["status"] == "interrupted" else None,
    }  # fmt: skip


@router.get("/threads/{thread_id}/runs/{run_id}/stream", responses=_SSE)
async def join_stream(
    thread_id: str,
    run_id: str,
    request: Request,
    agent: AgentDep,
    principal: PrincipalDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Join a run's stream: the events after ``Last-Event-ID`` (all without it), then live."""
    found = await _run_or_404(request, agent, principal, thread_id, run_id)
    if not isinstance(found, Run) and found["status"] in _GOING:
        raise ConflictError(
            "the run's events are streamed by another API process: join its stream there, or "
            "wait for the run with GET …/join on any process"
        )
    if not isinstance(found, Run):
        raise NotFoundError("the run's events are no longer kept; read the thread's state")
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return _sse(agent, principal, found, after)


@router.get("/threads/{thread_id}/runs/{run_id}/join", responses=BUSY)
async def join_run(
    thread_id: str, run_id: str, request: Request, agent: AgentDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Wait for a run to finish and return the thread's values."""
    found = await _run_or_404(request, agent, principal, thread_id, run_id)
    if isinstance(found, Run):
        return await _finished(found, principal.kind != "widget")
    if found["status"] in _GOING:  # another API process runs it: wait for its recorded end
        await _await_recorded_end(agent, principal.tenant_id, run_id)
    snap = await _state(agent, principal.tenant_id, thread_id)
    return cast(dict[str, Any], _snapshot(thread_id, snap, principal.kind != "widget")["values"])


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", status_code=202)
async def cancel_run(
    thread_id: str, run_id: str, request: Request, agent: AgentDep, principal: PrincipalDep
) -> Response:
    """Cancel a run; a turn in progress is rolled back (the thread stays as it was)."""
    found = await _run_or_404(request, agent, principal, thread_id, run_id)
    if isinstance(found, Run):
        await _registry(request).cancel(found)
    elif found["status"] in _GOING:  # never a 202 for a cancel that did not happen
        raise ConflictError(
            "the run is going on another API process and was not cancelled: send the cancel "
            "to the process that streams it, or join the run"
        )
    return Response(status_code=202)
