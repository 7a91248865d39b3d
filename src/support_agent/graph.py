"""The support graph: wiring only.

``identify → load_360 → classify_intent → retrieve_resolutions → rank_actions → policy_check →
respond_or_escalate → write_memory``; an ``end_session`` event goes straight to ``write_memory``,
which closes the session and queues its memory job. A turn that proposes a write then waits in
``await_consent`` (a LangGraph interrupt); the answer goes round from ``identify`` as a turn of
its own.

:func:`make_graph` compiles it; the composition roots call it with the Postgres checkpointer and
store (``conversation.Agent``) or with a context schema that carries the dependencies
(``studio``). ``builder`` and ``graph`` (compiled without checkpointer or store) are exported for
LangGraph tooling, drawing and schemas.
"""

from __future__ import annotations

from typing import Any, Literal

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import RetryPolicy

from support_agent.context import Context
from support_agent.nodes.await_consent import await_consent
from support_agent.nodes.classify_intent import classify_intent
from support_agent.nodes.identify import identify
from support_agent.nodes.load_360 import load_360
from support_agent.nodes.policy_check import policy_check
from support_agent.nodes.rank_actions import rank_actions
from support_agent.nodes.respond_or_escalate import respond_or_escalate
from support_agent.nodes.retrieve_resolutions import retrieve_resolutions
from support_agent.nodes.write_memory import write_memory
from support_agent.state import InputState, OutputState, State

#: Retry reads on transient database errors (writes are not retried: they are not all idempotent).
READ_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.2, retry_on=psycopg.OperationalError)
NAME = "support-agent"


def route_event(state: State) -> Literal["identify", "write_memory"]:
    """A session-end event skips the turn and goes to ``write_memory``."""
    return "write_memory" if state.get("event") == "end_session" else "identify"


def route_after_turn(state: State) -> Literal["await_consent", "__end__"]:
    """A turn that proposed a write waits for consent; every other turn ends here."""
    if state.get("awaiting_consent") and state.get("session_status") == "open":
        return "await_consent"
    return "__end__"


def make_builder(context_schema: type[Context] = Context) -> StateGraph[Any, Any, Any, Any]:
    """The support graph's builder (nodes, edges, retry policies).

    Args:
        context_schema: ``Context`` or a subclass (``studio`` binds the dependencies this way).
    """
    builder = StateGraph(
        State, context_schema=context_schema, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node(identify, retry_policy=READ_RETRY)
    builder.add_node(load_360, retry_policy=READ_RETRY)
    builder.add_node(classify_intent)
    builder.add_node(retrieve_resolutions, retry_policy=READ_RETRY)
    builder.add_node(rank_actions)
    builder.add_node(policy_check)
    builder.add_node(respond_or_escalate)
    builder.add_node(write_memory)
    builder.add_node(await_consent)
    builder.add_conditional_edges(START, route_event)
    builder.add_edge("identify", "load_360")
    builder.add_edge("load_360", "classify_intent")
    builder.add_edge("classify_intent", "retrieve_resolutions")
    builder.add_edge("retrieve_resolutions", "rank_actions")
    builder.add_edge("rank_actions", "policy_check")
    builder.add_edge("policy_check", "respond_or_escalate")
    builder.add_edge("respond_or_escalate", "write_memory")
    builder.add_conditional_edges("write_memory", route_after_turn)
    return builder


def make_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    store: BaseStore | None = None,
    *,
    context_schema: type[Context] = Context,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the support graph.

    Args:
        checkpointer: where threads are checkpointed (``None``: the caller's server injects one).
        store: the long-term store (``None``: likewise).
        context_schema: ``Context`` or a subclass.
    """
    return make_builder(context_schema).compile(checkpointer=checkpointer, store=store, name=NAME)


builder = make_builder()
graph = builder.compile(name=NAME)
