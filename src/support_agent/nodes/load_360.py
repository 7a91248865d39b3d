"""load_360: assemble the Customer 360 and the customer's long-term memory for this turn.

The 360 comes from the Redis hot tier, or PostgreSQL on a miss (re-warming Redis). Memory adds the
latest episodes from the long-term store and the open issue to pick up (the newest open CRM issue,
with the episode that recorded it). Nothing is loaded before the customer is authenticated.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context
from support_agent.memory_store.episodes import latest_episodes
from support_agent.memory_store.hot import get_hot_360
from support_agent.services import get_services
from support_agent.state import State


async def load_360(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Load the 360 and memory of the authenticated customer.

    Returns:
        ``c360`` and ``memory`` = ``{"source": "redis"|"postgres"|..., "episodes": [...],
        "open_issue": issue | None}``; both empty when nobody is authenticated.
    """
    customer_id = state.get("customer_id")
    if not customer_id or not state.get("authenticated"):
        return {"c360": {}, "memory": {}}
    services = await get_services()
    tenant_id = runtime.context.tenant_id
    c360, source = await get_hot_360(services, tenant_id, customer_id)
    episodes: list[dict[str, Any]] = []
    if runtime.store is not None:
        episodes = await latest_episodes(runtime.store, tenant_id, customer_id, limit=5)
    open_issue = None
    issues = (c360 or {}).get("open_issues") or []
    if issues:
        open_issue = dict(issues[0])
        episode = next(
            (e for e in episodes if e["conversationId"] == open_issue["opened_in"]), None
        )
        if episode is not None:
            open_issue["episode_summary"] = episode["summary"]
            open_issue["episode_channel"] = episode["channel"]
            open_issue["promises"] = episode.get("promises", [])
    return {
        "c360": c360 or {},
        "memory": {"source": source, "episodes": episodes, "open_issue": open_issue},
    }
