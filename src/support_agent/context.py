"""Per-run values of the support graph (``context_schema=Context``), read as ``runtime.context``.

One run of the graph is one turn. Its :class:`Context` says whose turn it is (tenant, session,
channel) and carries the turn's dependencies (``deps``: connections, the tenant's configuration
and policy, its vertical), resolved once per turn by the caller, so no node looks anything up in a
global. :func:`turn_of` gives a node the turn it works on.

Under ``langgraph dev`` (LangGraph Studio) the context comes from the server (``support_agent.
studio``): the session is the server's thread id and the tenant the authenticated one; a thread
run without ``context`` never falls back to a shared conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from langgraph.runtime import Runtime
from pydantic import ConfigDict
from pydantic.json_schema import SkipJsonSchema

from support_agent.errors import InfrastructureError, InvalidRequestError
from support_agent.state import State
from support_agent.threads import validate_session_id
from support_agent.verticals.protocol import Turn, TurnDeps


@dataclass(frozen=True)
class Context:
    """Values fixed for one run (one customer message) of the graph.

    Attributes:
        tenant_id: the tenant whose customers, policy and vertical apply; tenants never see each
            other's data.
        channel: the contact channel of this session (``chat``, ``phone``, ``email``, ``app``...).
        session_id: the session; the checkpointed thread is ``"{tenant_id}:{session_id}"``.
            ``None`` means the session is the run's thread id (``langgraph dev``).
        deps: the turn's dependencies (not part of the JSON schema: set by the caller, never by a
            client).
        client: the client's address as the API saw it (behind the trusted proxies), for the
            verification limits per address; set by the caller, never by a client.
    """

    __pydantic_config__ = ConfigDict(arbitrary_types_allowed=True)

    tenant_id: str | None = None
    channel: str = "chat"
    session_id: str | None = None
    deps: Annotated[TurnDeps | None, SkipJsonSchema()] = field(
        default=None, repr=False, compare=False
    )
    client: Annotated[str | None, SkipJsonSchema()] = field(default=None, repr=False)


def turn_of(state: State, runtime: Runtime[Context]) -> Turn:
    """The turn a node works on: the state with the run's tenant, session and dependencies.

    Raises:
        InfrastructureError: the run carries no dependencies (the graph was run without a
            composition root: ``conversation.Agent`` or ``studio``).
        InvalidRequestError: no tenant, or no session id and no thread id to use as one.
    """
    ctx = runtime.context
    if ctx is None or ctx.deps is None:
        raise InfrastructureError("the graph was run without its dependencies (Context.deps)")
    tenant_id = ctx.tenant_id or ctx.deps.pack.tenant_id
    if tenant_id != ctx.deps.pack.tenant_id:
        raise InvalidRequestError("the run's tenant does not match its dependencies")
    session_id = ctx.session_id
    if session_id is None and runtime.execution_info is not None:
        session_id = runtime.execution_info.thread_id
    if session_id is None:
        raise InvalidRequestError("a session id (or a thread id) is required")
    return Turn(
        state=state,
        deps=ctx.deps,
        tenant_id=tenant_id,
        session_id=validate_session_id(session_id),
        channel=ctx.channel,
        client=ctx.client,
    )
