"""The agent of one process, and its sessions: run a turn, end a session, sweep idle ones.

:class:`Agent` is the composition root used by the API, the CLI, the demo, the benchmarks and the
tests: it opens the :class:`~support_agent.services.Services`, applies the schema migrations,
loads every tenant's vertical (validating its settings), and compiles the graph with the Postgres
checkpointer and store (``graph.make_graph``). For each turn it resolves the tenant's
dependencies once (:meth:`Agent.deps`) and hands them to the graph in its ``Context``.

A session is one LangGraph thread (``threads.thread_id``: ``"{tenant_id}:{session_id}"``)
checkpointed in PostgreSQL, so the same session id continues its thread after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot, StreamMode

from support_agent.context import Context
from support_agent.crm.migrations import migrate
from support_agent.crm.repository import get_interaction, idle_sessions
from support_agent.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    SessionEndedError,
)
from support_agent.graph import make_graph
from support_agent.intents.classifier import IntentModels
from support_agent.nodes.identify import SITE_TOKEN_KEY
from support_agent.services import Services
from support_agent.settings import Settings, get_settings
from support_agent.threads import thread_id, validate_session_id
from support_agent.verticals import load_vertical
from support_agent.verticals.protocol import TurnDeps, Vertical

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
IDENTITY_KEYS = {"email", "phone", "customer_id", "name", "zip"}


@dataclass
class Agent:
    """The support agent of one process: connections, verticals, intent models, the graph.

    Attributes:
        services: the process's connections and tenant packs.
        graph: the support graph compiled with the Postgres checkpointer and store.
        verticals: each tenant's vertical, with its validated settings.
        intents: the tenants' intent models (loaded or trained on first use).
    """

    services: Services
    graph: CompiledStateGraph[Any, Any, Any, Any] = field(repr=False)
    verticals: dict[str, Vertical] = field(repr=False)
    intents: IntentModels = field(repr=False)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        chat_model: BaseChatModel | None = None,
        warm_up: bool = True,
    ) -> AsyncIterator[Agent]:
        """Open the services, migrate the schema, load the verticals, compile the graph.

        Args:
            settings: configuration; default :func:`get_settings`.
            chat_model: a chat model to use instead of the one the settings describe.
            warm_up: load the embedding model now instead of on the first turn.

        Raises:
            InfrastructureError: PostgreSQL or Redis is unreachable.
            InvalidRequestError: a tenant pack or its vertical's settings are invalid.
        """
        if settings is None:
            settings = await asyncio.to_thread(get_settings)
        async with Services.open(settings, chat_model=chat_model, warm_up=warm_up) as services:
            tenant_ids = await asyncio.to_thread(services.tenants.ids)
            verticals = await asyncio.to_thread(  # imports and validation off the event loop
                lambda: {t: load_vertical(services.tenants.config(t)) for t in tenant_ids}
            )
            async with services.pool.connection() as conn:
                await migrate(conn)
                for tenant_id in tenant_ids:  # every pack has its tenant row
                    await conn.execute(
                        "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        (tenant_id, services.tenants.config(tenant_id).name),
                    )
            yield cls(
                services=services,
                graph=make_graph(services.checkpointer, services.store),
                verticals=verticals,
                intents=IntentModels(settings.data_dir / "models", services.embeddings),
            )

    def deps(self, tenant_id: str) -> TurnDeps:
        """The dependencies of a turn for ``tenant_id``.

        Raises:
            NotFoundError: unknown tenant.
        """
        pack = self.services.tenants.get(tenant_id)
        vertical = self.verticals.get(tenant_id)
        if vertical is None:  # a pack added after start-up
            vertical = self.verticals[tenant_id] = load_vertical(pack.config)
        files = partial(pack.config.intents_paths, self.services.settings.shared_data_dir)
        return TurnDeps(
            services=self.services,
            pack=pack,
            vertical=vertical,
            intent_model=partial(self.intents.get, tenant_id, files),
            loaded_intent_model=partial(self.intents.loaded, tenant_id),
        )


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
        signals: the message's sub-signals.
        approval: the proposed write the run stopped for (``await_consent``'s interrupt payload:
            ``{"action_requests": [{"name", "args", "description"}], "review_configs": [...]}``),
            or ``None``.
        node_ms: wall-clock milliseconds per node visited (measured between the stream's
            updates; the first node's time includes the turn's setup: lock and session read).
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
    approval: dict[str, Any] | None = None
    node_ms: dict[str, float] = field(default_factory=dict)


def _config(tenant_id: str, session_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id(tenant_id, session_id)}}


async def _open_session(
    agent: Agent, deps: TurnDeps, tenant_id: str, session_id: str, channel: str
) -> str:
    """The session's channel (``channel`` for a new session).

    An idle session is ended.

    Raises:
        SessionEndedError: the session has ended (explicitly or after inactivity).
    """
    interaction = await get_interaction(agent.services, tenant_id, session_id)
    if interaction is None:
        return channel
    if interaction["status"] == "ended":
        raise SessionEndedError("this session has ended; start a new session")
    idle = timedelta(seconds=agent.services.settings.session_idle_timeout_s)
    if interaction["last_activity_at"] < datetime.now(UTC) - idle:  # the caller holds its lock
        await _end_locked(agent, deps, tenant_id, session_id, "idle_timeout")
        raise SessionEndedError("this session ended after inactivity; start a new session")
    return str(interaction["channel"])


async def run_turn(
    agent: Agent,
    *,
    tenant_id: str,
    channel: str,
    message: str,
    session_id: str | None = None,
    identity: dict[str, str] | None = None,
    message_id: str | None = None,
    client: str | None = None,
) -> TurnResult:
    """Run the graph for one customer message.

    A turn is the unit of durability: the thread's checkpoint is written once, when the turn
    completes or fails (``durability="exit"``), not after each of the eight nodes; this halves a
    turn's latency (bench: bank turn p95 47 → 28 ms). A turn interrupted by a crash is lost as a
    whole and the client resends the message; account actions are idempotent per (session,
    action, target), so a resent "yes" never acts twice. A client that cannot tell whether its
    message was answered (the connection broke) resends it with the same ``message_id`` (and its
    own ``session_id``): if the turn completed, its result is returned again and nothing runs
    twice; if not, the turn runs now.

    One turn at a time per session, across processes: the turn holds the session's lock
    (``Services.locks``) from reading the session to writing its checkpoint; a concurrent message
    of the same session waits its turn (in arrival order within a process) and then sees the
    state the first left, so none is lost and a "yes" and a "no" never both take effect.

    Args:
        agent: the open agent.
        tenant_id: tenant of the session.
        channel: ``chat``, ``phone``, ``email``, ``app``... (free-form, lower-case).
        message: the customer's message (1..4000 characters).
        session_id: continue this session; ``None`` starts a new one.
        identity: identifiers supplied by the channel (``email``, ``phone``, ``customer_id``,
            ``name`` + ``zip``).
        message_id: the client's id of this message (idempotency key, 1-100 characters of
            letters, digits, ``-``, ``_``; unique within the session); ``None``: no replay.
        client: the client's address as the API saw it (verification attempts are limited per
            address); ``None``: not known (CLI, tests).

    Raises:
        NotFoundError: unknown tenant.
        InvalidRequestError: empty or oversized message, bad session id, message id or
            identity keys.
        ConflictError: ``message_id`` names a message of the session that later messages
            followed (only the last turn is returned again).
        SessionEndedError: the session has ended (explicitly or after inactivity).
        TurnInProgressError: another message of this session was still being answered after
            ``TURN_LOCK_WAIT_S`` (nothing was done; resend it).
        InfrastructureError: PostgreSQL is unreachable.
    """
    session_id = session_id or uuid.uuid4().hex
    trace = TurnTrace()
    async for mode, chunk in stream_turn(
        agent, tenant_id=tenant_id, channel=channel, session_id=session_id, message=message,
        identity=identity, message_id=message_id, stream_mode=("updates", "values"),
        client=client,
    ):  # fmt: skip
        trace.add(mode, chunk)
    return trace.result(session_id)


@dataclass
class TurnTrace:
    """What a turn's stream showed so far: the nodes visited, the consent interrupt, the state.

    Feed it every ``(mode, chunk)`` of :func:`stream_turn` (``updates`` and ``values`` at least);
    :meth:`result` is then the turn's :class:`TurnResult`.
    """

    nodes: list[str] = field(default_factory=list)
    approval: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    node_ms: dict[str, float] = field(default_factory=dict)
    _last: float = field(default_factory=time.perf_counter)

    def add(self, mode: str, chunk: Any) -> list[str]:
        """Take one stream item; returns the graph nodes it reports finished (in order)."""
        if mode == "updates":
            finished = [k for k in chunk if not k.startswith("__")]
            self.nodes.extend(finished)
            now = time.perf_counter()
            for node in finished:  # nodes run one after another: the time since the last update
                share = (now - self._last) * 1000 / len(finished)
                self.node_ms[node] = round(self.node_ms.get(node, 0.0) + share, 3)
            self._last = now
            if chunk.get("__interrupt__"):  # the run stopped for consent to a proposed write
                self.approval = dict(chunk["__interrupt__"][0].value)
            return finished
        if mode == "values":  # the whole state after each step; the last one is the result
            self.state = chunk
        return []

    def result(self, session_id: str) -> TurnResult:
        """The turn's result (see :func:`_result`)."""
        result = _result(session_id, self.nodes, self.state, self.approval)
        result.node_ms = dict(self.node_ms)
        return result


async def stream_turn(
    agent: Agent,
    *,
    tenant_id: str,
    channel: str,
    session_id: str,
    message: str | None,
    identity: dict[str, str] | None = None,
    resume: Any = None,
    verified_customer_id: str | None = None,
    message_id: str | None = None,
    stream_mode: Sequence[StreamMode] = ("updates", "values"),
    client: str | None = None,
) -> AsyncIterator[tuple[str, Any]]:
    """Run one turn and yield what the graph streams, as ``(mode, chunk)`` pairs.

    The turn of :func:`run_turn` (same lock, durability and rollback), for callers that stream
    it: the graph endpoint sends each chunk as a server-sent event. A turn is either a customer
    ``message`` (which answers a proposed write when one is awaited, as on ``/v1/chat``) or a
    ``resume`` value for the awaited proposal (``{"decisions": [{"type": "approve"}]}`` from a
    button or a reviewer; see ``nodes.await_consent``).

    Args:
        agent: the open agent.
        tenant_id: tenant of the session.
        channel: the session's channel when this turn starts it.
        session_id: the session (a new id starts one).
        message: the customer's message (1..4000 characters), or ``None`` with ``resume``.
        identity: identifiers supplied by the channel.
        resume: the answer to the awaited proposal (only when ``message`` is ``None``).
        verified_customer_id: a customer id the caller verified (the tenant site's signed
            token): it authenticates the customer.
        message_id: the client's idempotency key of ``message`` (see :func:`run_turn`); when
            the session's last turn answered it, that turn's state is yielded again (a
            ``values`` chunk, and an ``updates`` chunk with ``__interrupt__`` when it awaits
            consent) and the graph does not run.
        stream_mode: LangGraph stream modes (``values``, ``updates``, ``messages``, ``custom``).
        client: the client's address as the API saw it (verification limits per address).

    Yields:
        ``(mode, chunk)``: LangGraph's multi-mode stream items; a ``values`` chunk is the whole
        state, an ``updates`` chunk ``{node: update}`` (``__interrupt__`` when the run stops for
        consent), a ``messages`` chunk ``(message chunk, metadata)``.

    Raises:
        the errors of :func:`run_turn`, and
        ConflictError: a ``resume`` when no proposal is awaited.
        InvalidRequestError: neither a message nor a resume value.
    """
    deps = agent.deps(tenant_id)
    if message is None and resume is None:
        raise InvalidRequestError("send a message or a resume value")
    if message is not None and (not message.strip() or len(message) > MAX_MESSAGE_CHARS):
        raise InvalidRequestError(f"message must be 1-{MAX_MESSAGE_CHARS} characters")
    if identity and not set(identity) <= IDENTITY_KEYS:
        raise InvalidRequestError(f"identity keys must be among {sorted(IDENTITY_KEYS)}")
    validate_session_id(session_id)
    if message_id is not None and not _MESSAGE_ID.match(message_id):
        raise InvalidRequestError("message_id must be 1-100 characters of letters, digits, - or _")
    identity = {k: v for k, v in (identity or {}).items() if v}
    if verified_customer_id:
        identity[SITE_TOKEN_KEY] = verified_customer_id
    config = _config(tenant_id, session_id)
    async with agent.services.locks.hold(thread_id(tenant_id, session_id)):
        # The checkpoint, not the CRM's ``awaiting_consent``, says whether a proposal awaits its
        # answer: a process killed after write_memory and before the checkpoint leaves the two
        # apart, and a "yes" read as a new message would leave the customer told nothing of a
        # change that happened.
        saved = await agent.graph.aget_state(config)
        if message_id is not None and _answered(saved, message_id, message):
            # answered already (even if that turn ended the session): the same result again
            logger.info("turn_replayed", extra={"thread_id": config["configurable"]["thread_id"]})
            yield "values", saved.values
            if saved.interrupts:
                yield "updates", {"__interrupt__": saved.interrupts}
            return
        channel = await _open_session(agent, deps, tenant_id, session_id, channel)
        context = Context(tenant_id=tenant_id, channel=channel, session_id=session_id, deps=deps,
                          client=client)  # fmt: skip
        pending = bool(saved.interrupts)
        graph_input: Any = {
            "messages": [HumanMessage(message or "", id=message_id)],
            "identity": identity,
            "event": "message",
            "consent": None,
        }
        if message is None:
            if not pending:
                raise ConflictError("nothing to resume: no proposed action awaits an answer")
            graph_input = Command(resume=resume)
        elif pending:
            graph_input = Command(resume={"message": message, "message_id": message_id})
        started = datetime.now(UTC)
        try:
            async for mode, chunk in agent.graph.astream(
                graph_input, config, context=context, stream_mode=list(stream_mode),
                durability="exit",
            ):  # fmt: skip
                yield mode, chunk
        except BaseException:  # a failure or a cancelled run: the thread stays as it was
            await asyncio.shield(_roll_back_checkpoint(agent, config, started))
            raise


def _answered(saved: StateSnapshot, message_id: str, message: str | None) -> bool:
    """Whether the session's last customer message has id ``message_id`` (so it was answered).

    Raises:
        ConflictError: an earlier message of the session has that id, or the last one does
            with other words than ``message`` (a key names one message, as with any
            idempotency key).
    """
    said = [m for m in saved.values.get("messages", []) if isinstance(m, HumanMessage)]
    if said and said[-1].id == message_id:
        if message is not None and str(said[-1].content).strip() != message.strip():
            raise ConflictError("message_id was already used for another message")
        return True
    if any(m.id == message_id for m in said):
        raise ConflictError("message_id names an earlier message of this session")
    return False


async def _roll_back_checkpoint(agent: Agent, config: RunnableConfig, started: datetime) -> None:
    """Undo the checkpoint a failed turn left, so the thread is as it was before the message.

    With ``durability="exit"`` LangGraph saves the state it reached when a run fails: the
    customer's message without an answer, which the next turn would read as said and answered.
    That checkpoint (its ``ts`` is after the turn began) and its writes are deleted, which
    restores the previous checkpoint with its pending writes (a consent still awaited). The
    tables are langgraph-checkpoint-postgres's (``checkpoints``, ``checkpoint_writes``; blobs are
    shared by version and left to the thread's erasure).
    """
    saved = await agent.services.checkpointer.aget_tuple(config)
    if saved is None or datetime.fromisoformat(saved.checkpoint["ts"]) < started:
        return  # the run failed before anything was saved
    thread = config["configurable"]["thread_id"]
    if saved.parent_config is None:  # the thread's first turn: nothing to go back to
        await agent.services.checkpointer.adelete_thread(thread)
        return
    parent = saved.parent_config["configurable"]["checkpoint_id"]
    async with agent.services.pool.connection() as conn, conn.transaction():
        for table in ("checkpoint_writes", "checkpoints"):
            await conn.execute(
                f"DELETE FROM {table} WHERE thread_id = %s AND checkpoint_ns = ''"
                " AND checkpoint_id > %s",
                (thread, parent),
            )
    logger.warning("turn_failed_checkpoint_rolled_back", extra={"thread_id": thread})


def _result(
    session_id: str, nodes: list[str], state: dict[str, Any], approval: dict[str, Any] | None
) -> TurnResult:
    """The :class:`TurnResult` of a turn from what its stream gave.

    Args:
        session_id: the session.
        nodes: the graph nodes visited, in order.
        state: the last ``values`` chunk (the thread's state after the turn).
        approval: the consent interrupt's payload, if the run stopped for one.
    """
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
                e["id"] for e in [memory.get("open_episode"), *memory.get("episodes", [])] if e
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
        approval=approval,
    )


async def end_session(
    agent: Agent, *, tenant_id: str, session_id: str, reason: str = "explicit"
) -> dict[str, Any]:
    """End a session and queue its memory job (idempotent: ending twice queues one job).

    Returns:
        ``{"session_id", "status": "ended", "memory_job": status}`` where the job status is
        ``enqueued`` (a worker will write the episode and layers), ``pending`` (Redis down; the
        relay publishes it later), ``done`` / ``dead`` for an earlier end, or ``None`` when no
        customer was authenticated (nothing to remember).

    Raises:
        NotFoundError: no such session for this tenant.
        TurnInProgressError: a turn of this session held its lock for ``TURN_LOCK_WAIT_S``.
        InvalidRequestError: a malformed session id.
    """
    deps = agent.deps(tenant_id)
    validate_session_id(session_id)
    async with agent.services.locks.hold(thread_id(tenant_id, session_id)):
        return await _end_locked(agent, deps, tenant_id, session_id, reason)


async def _end_locked(
    agent: Agent, deps: TurnDeps, tenant_id: str, session_id: str, reason: str
) -> dict[str, Any]:
    """``end_session`` once the session's lock is held."""
    interaction = await get_interaction(agent.services, tenant_id, session_id)
    if interaction is None:
        raise NotFoundError("session not found")
    config = _config(tenant_id, session_id)
    if interaction["status"] == "open":
        context = Context(tenant_id=tenant_id, channel=interaction["channel"],
                          session_id=session_id, deps=deps)  # fmt: skip
        await agent.graph.ainvoke(
            {"event": "end_session", "end_reason": reason}, config, context=context
        )
        logger.info("session_ended", extra={"tenant_id": tenant_id, "session_id": session_id,
                                            "reason": reason})  # fmt: skip
    async with agent.services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT status FROM memory_jobs WHERE tenant_id = %s AND session_id = %s",
                (tenant_id, session_id),
            )
        ).fetchone()
    return {
        "session_id": session_id,
        "status": "ended",
        "memory_job": None if row is None else row["status"],
    }


async def sweep_idle_sessions(
    agent: Agent, now: datetime | None = None, only: list[str] | None = None
) -> list[str]:
    """End every session idle for longer than ``SESSION_IDLE_TIMEOUT_S``; returns their ids.

    ``only`` limits the sweep to those sessions: a caller that simulates a later ``now`` (the
    demo) must never end anybody else's sessions in a shared database.
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=agent.services.settings.session_idle_timeout_s)
    ended = []
    for tenant_id, session_id in await idle_sessions(agent.services, cutoff, only):
        await end_session(agent, tenant_id=tenant_id, session_id=session_id, reason="idle_timeout")
        ended.append(session_id)
    return ended
