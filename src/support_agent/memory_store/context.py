"""Memory at every turn: everything the agent knows about a customer, in one call.

:func:`load_customer_memory` returns the Customer 360 and L1/L2/L4 from the Redis hot tier (one
round trip; PostgreSQL on a miss, re-warming Redis), the L3 episodes most relevant to the message
(ranked by similarity when the customer has more than the tenant's ``episodes_top_k``; otherwise
all of them, newest first, with no vector search), and always the latest episode that still has
an open issue or a pending promise, trimmed to the tenant's per-turn context budget
(``MemoryConfig.context_budget_chars`` of episode summaries; relevant episodes are dropped
lowest-score first, the open-issue episode is kept), and the online features (CLV, churn
propensity, intent features) from the same Redis round trip.
"""

from __future__ import annotations

import asyncio

from langgraph.store.base import BaseStore

from support_agent.memory_store.episodes import latest_episodes, search_episodes
from support_agent.memory_store.hot import read_through
from support_agent.memory_store.layers import present_layers
from support_agent.services import Services
from support_agent.state import Customer360, Episode, Memory

#: Most recent episodes read per turn (the open-issue episode is the latest of them with one).
LATEST = 10


def _has_open_items(episode: Episode) -> bool:
    return bool(episode.get("openIssues") or episode.get("promises"))


async def load_customer_memory(
    services: Services,
    store: BaseStore | None,
    tenant_id: str,
    customer_id: str,
    message: str,
) -> tuple[Customer360 | None, Memory]:
    """The customer's 360 and four memory layers for this turn.

    Args:
        services: open services.
        store: the long-term store (``runtime.store``); ``None`` skips L3.
        tenant_id: tenant.
        customer_id: an authenticated customer.
        message: the customer's message (the L3 query).

    Returns:
        ``(c360, memory)``: the 360 (``None`` if the customer does not exist) and ``{"source",
        "features", "l1_identity", "l2_history", "l4_prefs_mood", "episodes", "open_episode",
        "budget": {"chars", "limit", "dropped"}}``.
    """
    config = services.tenants.config(tenant_id).memory
    hot = read_through(services, tenant_id, customer_id)
    relevant: list[Episode] = []
    latest: list[Episode] = []
    if store is None:
        read = await hot
    else:
        read, latest = await asyncio.gather(
            hot, latest_episodes(store, tenant_id, customer_id, limit=LATEST)
        )
        relevant = latest[: config.episodes_top_k]
        if message.strip() and len(latest) > config.episodes_top_k:
            # more episodes than the turn loads: rank them by relevance to the message
            relevant = await search_episodes(
                store, tenant_id, customer_id, message, limit=config.episodes_top_k
            )
    open_episode = next((e for e in latest if _has_open_items(e)), None)
    budget = config.context_budget_chars - (len(open_episode["summary"]) if open_episode else 0)
    kept, dropped = [], 0
    for episode in relevant:  # best first
        if open_episode is not None and episode["id"] == open_episode["id"]:
            continue
        if len(episode["summary"]) <= budget:
            kept.append(episode)
            budget -= len(episode["summary"])
        else:
            dropped += 1
    layers = present_layers(read.raw_layers, config) if read.raw_layers is not None else {}
    memory: Memory = {
        "source": read.source,
        "features": read.features,
        **layers,  # type: ignore[typeddict-item]
        "episodes": kept,
        "open_episode": open_episode,
        "budget": {
            "chars": config.context_budget_chars - budget,
            "limit": config.context_budget_chars,
            "dropped": dropped,
        },
    }
    return read.c360, memory
