"""The compiled graph: its shape, its JSON schemas, and that it needs its dependencies."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from support_agent.context import Context
from support_agent.errors import InfrastructureError
from support_agent.graph import builder, graph, make_graph

NODES = ["identify", "load_360", "classify_intent", "retrieve_resolutions", "rank_actions",
         "policy_check", "respond_or_escalate", "write_memory"]  # fmt: skip


def test_input_and_output_json_schemas_are_built() -> None:
    # typing_extensions.TypedDict state: LangGraph Studio's input form, the dev server's MCP tools
    inputs = graph.get_input_jsonschema()
    outputs = graph.get_output_jsonschema()
    assert inputs is not None and outputs is not None
    assert {"messages", "identity", "event", "end_reason"} <= set(inputs["properties"])
    assert {"messages", "reply", "decision", "actions", "handoff"} <= set(outputs["properties"])
    assert "c360" not in outputs["properties"]  # internal state is not the graph's output


def test_context_schema_never_exposes_the_dependencies() -> None:
    schema = graph.get_context_jsonschema()
    assert schema is not None
    assert set(schema["properties"]) == {"tenant_id", "channel", "session_id"}


def test_the_eight_nodes_in_order_then_consent() -> None:
    assert list(builder.nodes) == [*NODES, "await_consent"]
    drawn = graph.get_graph()
    edges = {(e.source, e.target) for e in drawn.edges}
    assert all((a, b) in edges for a, b in zip(NODES, NODES[1:], strict=False))
    assert ("__start__", "write_memory") in edges  # a session-end event
    # a proposed write pauses for consent; the answer goes round as a turn of its own
    assert {("write_memory", "await_consent"), ("write_memory", "__end__")} <= edges
    assert ("await_consent", "identify") in edges


async def test_a_run_without_dependencies_fails_clearly() -> None:
    with pytest.raises(InfrastructureError, match="without its dependencies"):
        await make_graph().ainvoke(
            {"messages": [HumanMessage("hello")]}, context=Context(tenant_id="retail")
        )
