"""The floor of the concurrent HTTP benchmark: the API with a graph of eight no-op nodes.

Everything a turn costs apart from the support graph's own work stays: the FastAPI app and its
middleware (auth, rate limit, request edges), the per-session lock, the session row, the graph
runtime with the Postgres checkpointer (``durability="exit"``), the stream and the JSON reply.
The nodes have the support graph's names and do nothing; the last one sets a fixed reply. The
ratio of a real figure to this one is how much the support graph itself costs.

Run: ``python bench/floor_server.py --port P [--workers N]`` with ``DATA_DIR`` of running
embedded servers (or ``DATABASE_URL``/``REDIS_URL``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from support_agent.api.app import create_app
from support_agent.context import Context
from support_agent.conversation import Agent
from support_agent.state import InputState, OutputState, State

NODES = (
    "identify", "load_360", "classify_intent", "retrieve_resolutions", "rank_actions",
    "policy_check", "respond_or_escalate", "write_memory",
)  # fmt: skip


async def _noop(_: State) -> dict[str, Any]:
    return {}


async def _reply(_: State) -> dict[str, Any]:
    return {"reply": "ok", "decision": "respond"}


def floor_graph(agent: Agent) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Eight no-op nodes in the support graph's order, compiled with the agent's checkpointer."""
    builder = StateGraph(
        State, context_schema=Context, input_schema=InputState, output_schema=OutputState
    )
    for name in NODES:
        builder.add_node(name, _reply if name == "respond_or_escalate" else _noop)
    builder.add_edge(START, NODES[0])
    for a, b in zip(NODES, NODES[1:], strict=False):
        builder.add_edge(a, b)
    builder.add_edge(NODES[-1], END)
    return builder.compile(
        checkpointer=agent.services.checkpointer, store=agent.services.store, name="floor"
    )


_owned = contextlib.AsyncExitStack()


async def _open_floor_agent() -> Agent:
    """The process's agent with the floor graph (open until the process exits)."""
    agent = await _owned.enter_async_context(Agent.open(warm_up=False))
    return dataclasses.replace(agent, graph=floor_graph(agent))


def app_factory() -> FastAPI:
    """The API with the floor graph (uvicorn factory: each worker process builds its own)."""
    return create_app(open_agent=_open_floor_agent)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "floor_server:app_factory",
        factory=True,
        app_dir=str(Path(__file__).parent),
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
