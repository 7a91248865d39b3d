"""The Customer 360 MCP tools: over streamable HTTP at ``/mcp`` (bearer API keys, tenant
scoped), over stdio (``support-agent mcp``), and loaded by ``langchain-mcp-adapters`` into a
LangGraph agent driven by a scripted chat model."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_mcp_adapters.client import MultiServerMCPClient
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from support_agent.services import Services
from support_agent.settings import Settings
from support_agent.tenancy import create_api_key
from tests.conftest import customer_with

TOOLS = {
    "get_customer_360", "search_customers", "get_orders", "get_holdings", "get_transactions",
    "get_interactions", "get_memory", "search_resolutions", "get_offers", "get_open_handoffs",
}  # fmt: skip


@contextlib.asynccontextmanager
async def _session(base: str, key: str) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session over streamable HTTP with the key as bearer token."""
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, follow_redirects=True,
                          timeout=httpx.Timeout(30, read=300)) as http,
        streamable_http_client(f"{base}/mcp/", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):  # fmt: skip
        await session.initialize()
        yield session


def _json(result: Any) -> Any:
    assert not result.isError, result.content
    return json.loads(result.content[0].text)


async def test_mcp_over_http_is_tenant_scoped(served: tuple[str, Any], services: Services) -> None:
    base, _ = served
    key = await create_api_key(services, "retail")
    cust = await customer_with(services, "delivered", fresh=False)
    async with _session(base, key) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert names == TOOLS
        schema = next(t for t in (await session.list_tools()).tools if t.name == "get_orders")
        assert schema.inputSchema["properties"]["limit"]["maximum"] == 50

        c360 = _json(await session.call_tool("get_customer_360", {"customer_id": cust["id"]}))
        assert c360["customer_id"] == cust["id"]
        assert c360["profile"]["email"] == cust["email"]
        assert c360["counts"]["orders"] >= 1

        page = _json(await session.call_tool(
            "get_orders", {"customer_id": cust["id"], "offset": 0, "limit": 1}
        ))  # fmt: skip
        assert len(page["items"]) == 1 and page["total"] == c360["counts"]["orders"]
        assert page["next_offset"] == (1 if page["total"] > 1 else None)

        found = _json(await session.call_tool("search_customers", {"query": cust["email"]}))
        assert [c["id"] for c in found["items"]] == [cust["id"]]
        memory = _json(await session.call_tool("get_memory", {"customer_id": cust["id"]}))
        assert {"l1_identity", "l2_history", "l3_episodes", "l4_prefs_mood"} <= set(memory)
        hits = _json(await session.call_tool("search_resolutions", {"query": "damaged item"}))
        assert hits["items"] and all(h["kind"] in ("resolution", "document") for h in hits["items"])
        queue = _json(await session.call_tool("get_open_handoffs", {}))
        assert set(queue) == {"items", "total", "next_offset"}

        unknown = await session.call_tool("get_customer_360", {"customer_id": "no_such_person"})
        assert unknown.isError and "not found" in unknown.content[0].text
        bad = await session.call_tool("get_orders", {"customer_id": cust["id"], "limit": 500})
        assert bad.isError

    async with httpx.AsyncClient(base_url=base) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        accept = {"Accept": "application/json, text/event-stream"}
        none = await http.post("/mcp/", json=body, headers=accept)
        assert none.status_code == 401
        widget = await create_api_key(services, "retail", "widget")
        r = await http.post("/mcp/", json=body,
                            headers={**accept, "Authorization": f"Bearer {widget}"})  # fmt: skip
        assert r.status_code == 403, r.text


async def test_acme_key_sees_only_acme(served: tuple[str, Any], services: Services) -> None:
    base, _ = served
    cust = await customer_with(services, "delivered", fresh=False)
    acme = await create_api_key(services, "acme")  # acme has no customers of its own here
    async with _session(base, acme) as session:
        c360 = await session.call_tool("get_customer_360", {"customer_id": cust["id"]})
        # not found, or (if another test gave acme a twin under this id) never retail's record
        assert c360.isError or _json(c360)["profile"]["email"] != cust["email"]
        found = _json(await session.call_tool("search_customers", {"query": cust["email"]}))
        assert found["items"] == []


async def test_mcp_over_stdio(settings: Settings, services: Services) -> None:
    """``support-agent mcp`` as a subprocess, on the test session's database."""
    cust = await customer_with(services, "delivered", fresh=False)
    env = {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "TENANT_PACKS_DIR": str(settings.tenant_packs_dir),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),  # the library test vertical
    }
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "support-agent"),
        args=["mcp", "--tenant", "retail"],
        env=env,
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert {t.name for t in (await session.list_tools()).tools} == TOOLS
        c360 = _json(await session.call_tool("get_customer_360", {"customer_id": cust["id"]}))
        assert c360["customer_id"] == cust["id"]
        interactions = _json(
            await session.call_tool("get_interactions", {"customer_id": cust["id"]})
        )
        assert set(interactions) == {"items", "total", "next_offset"}


class ToolCallingModel(BaseChatModel):
    """Scripted: first calls ``get_customer_360`` for ``customer_id``, then reports the tier."""

    customer_id: str

    @property
    def _llm_type(self) -> str:
        return "scripted-tools"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        results = [m for m in messages if isinstance(m, ToolMessage)]
        if not results:
            call = {"name": "get_customer_360", "args": {"customer_id": self.customer_id},
                    "id": "call-1", "type": "tool_call"}  # fmt: skip
            message = AIMessage("", tool_calls=[call])
        else:
            text = results[-1].content
            text = text if isinstance(text, str) else json.dumps(text)
            data = (
                json.loads(text)
                if text.startswith("{")
                else json.loads(json.loads(text)[0]["text"])
            )
            message = AIMessage(f"This customer is {data['tier']} tier.")
        return ChatResult(generations=[ChatGeneration(message=message)])


async def test_langchain_mcp_adapters_load_tools_into_a_langgraph_agent(
    served: tuple[str, Any], services: Services
) -> None:
    base, _ = served
    key = await create_api_key(services, "retail", "agent")
    cust = await customer_with(services, "delivered", fresh=False)
    client = MultiServerMCPClient({
        "customer360": {"transport": "streamable_http", "url": f"{base}/mcp/",
                        "headers": {"Authorization": f"Bearer {key}"}},
    })  # fmt: skip
    tools = await client.get_tools()
    assert {t.name for t in tools} == TOOLS
    model = ToolCallingModel(customer_id=str(cust["id"]))

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.bind_tools(tools).ainvoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    out = await builder.compile().ainvoke({"messages": [("user", "what tier is this customer?")]})
    tool_result = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert cust["id"] in str(tool_result.content)
    c360, _ = await _tier(services, str(cust["id"]))
    assert out["messages"][-1].content == f"This customer is {c360} tier."


async def _tier(services: Services, customer_id: str) -> tuple[str, None]:
    from support_agent.memory_store.hot import get_hot_360

    c360, _ = await get_hot_360(services, "retail", customer_id)
    assert c360 is not None
    return str(c360["tier"]), None


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mcp.*")
