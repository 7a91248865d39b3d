"""load_360: assemble the Customer 360 and the customer's four memory layers for this turn.

One call (``memory_store.context.load_customer_memory``): the 360 and L1/L2/L4 from the Redis hot
tier (PostgreSQL on a miss, re-warming Redis; PostgreSQL alone when Redis is down), the L3 episodes
relevant to the message and the latest episode with an open issue or pending promise, within the
tenant's context budget. The open issue to pick up is the newest open CRM issue, joined with the
episode that recorded it. Nothing is loaded before the customer is authenticated.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context
from support_agent.memory_store.context import load_customer_memory
from support_agent.nodes._text import last_customer_text
from support_agent.services import get_services
from support_agent.state import State


async def load_360(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Load the 360 and memory of the authenticated customer.

    Returns:
        ``c360`` and ``memory`` = ``{"source", "l1_identity", "l2_history", "l4_prefs_mood",
        "episodes", "open_episode", "open_issue", "budget"}``; both empty when nobody is
        authenticated.
    """
    customer_id = state.get("customer_id")
    if not customer_id or not state.get("authenticated"):
        return {"c360": {}, "memory": {}}
    services = await get_services()
    tenant_id = runtime.context.tenant_id
    loaded = await load_customer_memory(
        services,
        runtime.store,
        tenant_id,
        customer_id,
        last_customer_text(state.get("messages")),
    )
    c360 = loaded.pop("c360") or {}
    known = {e["id"]: e for e in loaded["episodes"]}
    if loaded["open_episode"] is not None:
        known[loaded["open_episode"]["id"]] = loaded["open_episode"]
    open_issue = None
    issues = c360.get("open_issues") or []
    if issues:
        open_issue = dict(issues[0])
        episode = known.get(open_issue["opened_in"])
        if episode is not None:
            open_issue["episode_summary"] = episode["summary"]
            open_issue["episode_channel"] = episode["channel"]
            open_issue["promises"] = episode.get("promises", [])
    return {"c360": c360, "memory": {**loaded, "open_issue": open_issue}}
