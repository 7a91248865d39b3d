"""FastAPI application: lifespan-managed services, routes, and one error shape.

Every error answers ``{"error": {"code": "...", "message": "..."}}`` with a stable code:
``INVALID_REQUEST`` (400 unreadable body, 422 invalid input), ``UNAUTHORIZED`` (401, missing or
invalid bearer key), ``FORBIDDEN`` (403, a kind of key the route does not accept, or a widget
key from an origin its tenant does not allow), ``NOT_FOUND`` (404, also an unknown route),
``METHOD_NOT_ALLOWED`` (405, with ``Allow``), ``SESSION_ENDED``, ``CONFLICT`` and
``TURN_IN_PROGRESS`` (409, the latter with ``Retry-After``), ``PAYLOAD_TOO_LARGE`` (413),
``UNSUPPORTED_MEDIA_TYPE`` (415), ``RATE_LIMITED`` (429, with ``Retry-After``),
``SERVICE_UNAVAILABLE`` (503, a database or cache is down) and ``INTERNAL_ERROR`` (500).
Messages are fixed per code or come from our own domain errors, never from an internal
exception's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from mcp.server.fastmcp import FastMCP
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from support_agent.api.chat_stream import chat_events, chat_response
from support_agent.api.console_routes import pages as console_pages
from support_agent.api.console_routes import router as console_router
from support_agent.api.cors import TenantCORSMiddleware
from support_agent.api.deps import (
    BODY_ERRORS,
    BUSY,
    UNAUTHORIZED,
    VISITOR_HEADER,
    AgentDep,
    PrincipalDep,
    ServicesDep,
    bind_visitor,
    check_request_edges,
    new_visitor_token,
    owned_session,
    request_address,
)
from support_agent.api.graph_routes import public_router as graph_public_router
from support_agent.api.graph_routes import router as graph_router
from support_agent.api.handoff_routes import router as handoff_router
from support_agent.api.memory_routes import router as memory_router
from support_agent.api.ratelimit import AuthFailureGuard, RateLimiter
from support_agent.api.runs import RunRegistry
from support_agent.api.schemas import ChatRequest, ChatResponse, EndSessionResponse, ErrorBody
from support_agent.conversation import Agent, end_session, run_turn, sweep_idle_sessions
from support_agent.errors import ForbiddenError, InvalidRequestError, SupportAgentError
from support_agent.mcp_server import CustomerTools, build_mcp
from support_agent.memory_store.pipeline import MemoryWorker
from support_agent.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0


_HTTP_CODES = {400: "INVALID_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
               413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}  # fmt: skip
_HTTP_MESSAGES = {404: "no such route", 405: "method not allowed on this route",
                  400: "the request body could not be parsed"}  # fmt: skip


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


async def _sweeper(agent: Agent) -> None:
    """End idle sessions once a minute (writes their episodes), in one process of the cluster.

    Only the holder of the background lease (``Services.leader``) sweeps, however many API
    processes run.
    """
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        if not await agent.services.leader.is_leader():
            continue
        try:
            await sweep_idle_sessions(agent)
        except (psycopg.Error, RedisError, SupportAgentError) as exc:
            logger.warning("idle_sweep_failed", extra={"error": type(exc).__name__})


async def _run_mcp(mcp: FastMCP[Any], started: asyncio.Event, stop: asyncio.Event) -> None:
    """Run the MCP server's session manager until ``stop`` is set."""
    async with mcp.session_manager.run():
        started.set()
        await stop.wait()


def create_app(
    settings: Settings | None = None,
    agent: Agent | None = None,
    *,
    graph_api: bool = True,
    open_agent: Callable[[], Awaitable[Agent]] | None = None,
) -> FastAPI:
    """Build the API.

    Args:
        settings: configuration (default :func:`get_settings`).
        agent: an already-open agent to use (tests); otherwise the lifespan opens one.
        graph_api: serve the graph endpoint (the LangGraph API routes); ``False`` under
            ``langgraph dev``, whose own server answers them (``studio.http_app``).
        open_agent: where to get the agent (an agent owned by someone else, e.g. the
            ``langgraph dev`` server's); otherwise the lifespan opens one.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if agent is not None:
                opened = agent
            elif open_agent is not None:
                opened = await open_agent()
            else:
                opened = await stack.enter_async_context(Agent.open(settings or get_settings()))
            app.state.agent = opened
            app.state.limiter = RateLimiter(opened.services)
            app.state.runs = runs = RunRegistry(opened)
            tools.bind(opened.services)
            mcp_started = asyncio.Event()
            stop = asyncio.Event()
            # the MCP session manager's task group is entered and left by one task of its own
            # (a lifespan may be entered and left by different tasks, as in tests)
            mcp_task = asyncio.create_task(_run_mcp(mcp, mcp_started, stop))
            await mcp_started.wait()
            tasks = [asyncio.create_task(_sweeper(opened))]
            if opened.services.settings.memory_worker:
                tasks.append(asyncio.create_task(MemoryWorker(opened.services).run(stop)))
            try:
                yield
            finally:
                await runs.close()
                stop.set()
                await mcp_task
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app = FastAPI(
        title="support-agent",
        version="0.1.0",
        lifespan=lifespan,
        responses={
            404: {"model": ErrorBody},
            422: {"model": ErrorBody},
            500: {"model": ErrorBody},
            503: {"model": ErrorBody, "description": "PostgreSQL or Redis is unavailable"},
        },
        dependencies=[Depends(check_request_edges)],
    )

    app.add_middleware(TenantCORSMiddleware, state=app.state)
    tools = CustomerTools()
    mcp = build_mcp(tools, http=True)
    #: MCP over streamable HTTP (bearer API keys checked by the SDK's own middleware; its 401s
    #: count against the address's failed authentications, as on every other route)
    app.mount("/mcp", AuthFailureGuard(mcp.streamable_http_app(), app.state))

    @app.exception_handler(SupportAgentError)
    async def _domain_error(_: Request, exc: SupportAgentError) -> JSONResponse:
        response = _error(exc.status, exc.code, exc.message)
        if exc.retry_after_s is not None:
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(
            422,
            "INVALID_REQUEST",
            f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Framework errors (unknown route, wrong method, unparsable body) in the same shape."""
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
        response = _error(exc.status_code, code, message)
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(_: Request, exc: psycopg.OperationalError) -> JSONResponse:
        logger.error("database_unavailable", extra={"error": type(exc).__name__})
        return _error(503, "SERVICE_UNAVAILABLE", "the database is unavailable; retry shortly")

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled_error", extra={"error": type(exc).__name__})
        return _error(500, "INTERNAL_ERROR", "internal error")

    @app.get("/healthz")
    async def healthz(svc: ServicesDep) -> JSONResponse:
        """Liveness and readiness: PostgreSQL and Redis reachable."""
        checks: dict[str, bool] = {}
        try:
            async with svc.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            checks["postgres"] = True
        except (psycopg.Error, TimeoutError):
            checks["postgres"] = False
        try:
            checks["redis"] = bool(await svc.redis.ping())
        except RedisError:
            checks["redis"] = False
        ok = checks["postgres"]  # Redis down degrades to PostgreSQL reads; still serving.
        return JSONResponse(
            status_code=200 if ok else 503,
            content={"status": "ok" if ok else "unavailable", **checks},
        )

    @app.post(
        "/v1/chat",
        response_model=ChatResponse,
        response_model_exclude_unset=True,  # visitor_token only when a widget session starts
        responses={
            **UNAUTHORIZED,
            **BUSY,
            200: {
                "content": {"text/event-stream": {}},
                "description": "the turn as JSON, or as server-sent events when the request"
                " says `Accept: text/event-stream`: `metadata` (`session_id`), `node` (each"
                " graph node as it finishes), `token` (reply text as an LLM writes it), `reply`"
                " (the JSON body), `error`, `end`",
                "headers": {
                    VISITOR_HEADER: {
                        "schema": {"type": "string"},
                        "description": "a widget key's new session only: its visitor token"
                        " (send it back in this header to continue or end the session)",
                    }
                },
            },
        },
    )
    async def chat(
        body: ChatRequest,
        request: Request,
        response: Response,
        agent: AgentDep,
        principal: PrincipalDep,
    ) -> Any:
        """Handle one customer message; starts a session when ``session_id`` is absent.

        A widget key may not pass ``customer`` (403): a browser cannot vouch for an identity;
        the visitor identifies in the conversation, or the graph endpoint takes the site's
        signed customer token. Its sessions are its visitor's: a new one gets a server-issued
        id and a visitor token (``X-Visitor-Token`` header and ``visitor_token``, once); a
        ``session_id`` it sends must come with that token (without it: 422; with another
        session's or for an unknown session: 404).
        """
        tenant_id = principal.tenant_id
        session_id = body.session_id
        token: str | None = None
        if principal.kind == "widget":
            if body.customer is not None:
                raise ForbiddenError("a widget key cannot claim a customer identity")
            if session_id is not None and VISITOR_HEADER.lower() not in request.headers:
                raise InvalidRequestError(
                    "a widget key cannot choose session_id: leave it out to start a session (the"
                    f" server issues its id and a visitor token), and send {VISITOR_HEADER} with"
                    " it to continue"
                )
            if session_id is not None:
                await owned_session(request, agent.services, principal, session_id)
            else:
                session_id, token = uuid.uuid4().hex, new_visitor_token()
                async with agent.services.pool.connection() as conn:
                    await bind_visitor(conn, tenant_id, session_id, "chat", token)
        identity = body.customer.model_dump(exclude_none=True) if body.customer else None
        headers = {VISITOR_HEADER: token} if token is not None else None
        client = request_address(request, agent.services)
        if "text/event-stream" in request.headers.get("accept", ""):
            events = chat_events(agent, tenant_id, body, identity, session_id, token, client)
            return EventSourceResponse(events, headers=headers)
        result = await run_turn(
            agent,
            tenant_id=tenant_id,
            channel=body.channel,
            message=body.message,
            session_id=session_id,
            identity=identity,
            message_id=body.message_id,
            client=client,
        )
        response.headers.update(headers or {})
        return chat_response(result, token)

    @app.post(
        "/v1/sessions/{session_id}/end",
        response_model=EndSessionResponse,
        responses={**UNAUTHORIZED, **BUSY},
    )
    async def end(
        session_id: str, request: Request, agent: AgentDep, principal: PrincipalDep
    ) -> dict[str, Any]:
        """End a session now and queue its memory job (idempotent).

        A widget key ends only its visitor's session (``X-Visitor-Token``; else 404).
        """
        await owned_session(request, agent.services, principal, session_id)
        return await end_session(agent, tenant_id=principal.tenant_id, session_id=session_id)

    app.include_router(console_pages)
    app.include_router(console_router)  # before the handoff routes: /handoffs/stream is no id
    if graph_api:
        app.include_router(graph_public_router)
        app.include_router(graph_router)
    app.include_router(memory_router)
    app.include_router(handoff_router)
    for route in app.routes:  # every route with a body documents the body's errors
        if isinstance(route, APIRoute) and route.body_field is not None:
            route.responses = {**BODY_ERRORS, **route.responses}
    return app
