"""load_360: assemble the Customer 360 and the customer's four memory layers for this turn.

One call (``memory_store.context.load_customer_memory``): the 360 and L1/L2/L4 from the Redis hot
tier (PostgreSQL on a miss, re-warming Redis; PostgreSQL alone when Redis is down), the L3 episodes
relevant to the message and the latest episode with an open issue or pending promise, within the
tenant's context budget. The open issue to pick up is the newest open CRM issue, joined with the
episode that recorded it. Nothing is loaded before the customer is authenticated, and no episode
of earlier conversations unless the tenant's verification policy verified them for ``memory``.
"""

from __future__ import annotations

from typing import Any, cast

from langgraph.runtime import Runtime

from support_agent.context import Context, turn_of
from support_agent.memory_store.context import load_customer_memory
from support_agent.state import Issue, Memory, State


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
    this = turn_of(state, runtime)
    c360, memory = await load_customer_memory(
        this.deps.services, runtime.store, this.tenant_id, customer_id, this.text
    )
    if "memory" not in (state.get("verified_for") or ["memory"]):  # not verified for memory
        memory = cast(Memory, {k: v for k, v in memory.items()
                               if k not in ("episodes", "open_episode")})  # fmt: skip
    known = {e["id"]: e for e in memory.get("episodes", [])}
    open_episode = memory.get("open_episode")
    if open_episode is not None:
        known[open_episode["id"]] = open_episode
    open_issue: Issue | None = None
    issues = (c360 or {}).get("open_issues") or []
    if issues:
        open_issue = Issue(**issues[0])
        episode = known.get(open_issue.get("opened_in", ""))
        if episode is not None:
            open_issue["episode_summary"] = episode["summary"]
            open_issue["episode_channel"] = episode["channel"]
            open_issue["promises"] = episode.get("promises", [])
    return {"c360": c360 or {}, "memory": {**memory, "open_issue": open_issue}}
