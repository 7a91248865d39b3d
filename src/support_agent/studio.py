"""The support graph under ``langgraph dev`` (LangGraph Studio): that server's composition root.

``langgraph.json`` points the server at :func:`make_studio_graph`, a graph factory the server
calls for every run (and for schemas and state reads). For a run it resolves the turn's
dependencies, as ``conversation.Agent`` does for the API:

- the **tenant** is the authenticated one: :data:`auth` (``langgraph.json`` ``auth``) accepts a
  ``Authorization: Bearer <API key>`` header and resolves the key's tenant; a request without one
  (LangGraph Studio itself) gets the server's configured tenant (``DEFAULT_TENANT``). A run whose
  ``context`` names another tenant fails;
- the **session** is the server's thread id (``Context.session_id`` left empty), so two threads
  are always two conversations;
- the **dependencies** (connections, the tenant's pack and vertical) travel in the run's
  ``Context``: the factory compiles the graph with a context schema whose defaults carry them.

The server's :class:`~support_agent.conversation.Agent` is opened on first use and lives as long
as the server process; the graph's nodes never reach it except through their ``Context``.

:data:`http_app` (``langgraph.json`` ``http.app``) mounts our own API next to the server's
routes, on the same agent: the chat widget, the agents' console and its feeds, the memory and
handoff APIs, ``/v1/chat`` and MCP at ``/mcp/``. The LangGraph API routes stay the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from langgraph.graph.state import CompiledStateGraph
from langgraph_sdk import Auth
from langgraph_sdk.runtime import ServerRuntime
from pydantic.json_schema import SkipJsonSchema

from support_agent.api.app import create_app
from support_agent.context import Context
from support_agent.conversation import Agent
from support_agent.errors import UnauthorizedError
from support_agent.graph import graph, make_graph
from support_agent.tenancy import tenant_for_key
from support_agent.verticals.protocol import TurnDeps

auth = Auth()


class _Server:
    """The server process's agent, opened once on first use (never closed before exit)."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._agent: Agent | None = None
        self._lock = asyncio.Lock()

    async def agent(self) -> Agent:
        async with self._lock:
            if self._agent is None:
                self._agent = await self._stack.enter_async_context(Agent.open())
            return self._agent


_server = _Server()


#: Our HTTP app under ``langgraph dev`` (see the module docstring).
http_app = create_app(graph_api=False, open_agent=_server.agent)


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    """The caller's tenant: a bearer API key's, or the server's configured tenant without one.

    Raises:
        Auth.exceptions.HTTPException: a key was given and it is invalid (401).
    """
    agent = await _server.agent()
    if not authorization:
        tenant_id = agent.services.settings.default_tenant
    else:
        try:
            tenant_id = await tenant_for_key(agent.services, authorization)
        except UnauthorizedError as exc:
            raise Auth.exceptions.HTTPException(status_code=401, detail=exc.message) from exc
    user: dict[str, Any] = {"identity": f"tenant:{tenant_id}", "tenant_id": tenant_id}
    return user  # type: ignore[return-value]  # extra keys ride on the server's user


def tenant_of(user: Any, default: str) -> str:
    """The tenant an authenticated server user belongs to (``default`` for Studio's own user)."""
    tenant = getattr(user, "tenant_id", None)
    if tenant is None and hasattr(user, "get"):
        tenant = user.get("tenant_id")
    return str(tenant) if tenant else default


def bound_context(resolved: TurnDeps) -> type[Context]:
    """A context schema whose defaults are the tenant and the turn's dependencies."""
    tenant = resolved.pack.tenant_id

    @dataclass(frozen=True)
    class ServerContext(Context):
        """A run's values under ``langgraph dev`` (see the module docstring)."""

        tenant_id: str | None = tenant
        deps: Annotated[TurnDeps | None, SkipJsonSchema()] = field(
            default_factory=lambda: resolved, repr=False, compare=False
        )

    return ServerContext


@contextlib.asynccontextmanager
async def make_studio_graph(
    runtime: ServerRuntime[Context],
) -> AsyncIterator[CompiledStateGraph[Any, Any, Any, Any]]:
    """The graph for one server call: bound to the caller's tenant for a run, plain otherwise."""
    if runtime.execution_runtime is None:  # schemas, drawing, state reads: same topology
        yield graph
        return
    agent = await _server.agent()
    tenant_id = tenant_of(runtime.user, agent.services.settings.default_tenant)
    yield make_graph(context_schema=bound_context(agent.deps(tenant_id)))
