"""Memory at every turn: everything the agent knows about a customer, in one call.

:func:`load_customer_memory` returns the Customer 360 and L1/L2/L4 from the Redis hot tier (one
round trip; PostgreSQL on a miss, re-warming Redis), the L3 episodes most relevant to the message,
and always the latest episode that still has an open issue or a pending promise, trimmed to the
tenant's per-turn context budget (``MemoryConfig.context_budget_chars`` of episode summaries;
relevant episodes are dropped lowest-score first, the open-issue episode is kept), and the online
features (CLV, churn propensity, intent features) from the same Redis round trip.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from langgraph.store.base import BaseStore
from redis.exceptions import RedisError

from support_agent.crm.customer360 import build_360
from support_agent.features.store import TTL_S, compute_features, features_key
from support_agent.memory_store.episodes import latest_episodes, search_episodes
from support_agent.memory_store.hot import c360_key, put_hot_360
from support_agent.memory_store.layers import (
    memory_key,
    present_layers,
    read_layers_pg,
    write_hot_layers,
)
from support_agent.services import Services
from support_agent.tenants import load_tenant_config

logger = logging.getLogger(__name__)


async def _hot(services: Services, tenant_id: str, customer_id: str) -> tuple[Any, Any, Any, str]:
    """(c360, raw layers, features, source) with one MGET; PostgreSQL for whatever missed."""
    source = "redis"
    c360 = raw = features = None
    try:
        cached = await services.redis.mget(
            [
                c360_key(tenant_id, customer_id),
                memory_key(tenant_id, customer_id),
                features_key(tenant_id, customer_id),
            ]
        )
        c360 = json.loads(cached[0]) if cached[0] is not None else None
        raw = json.loads(cached[1]) if cached[1] is not None else None
        features = json.loads(cached[2]) if cached[2] is not None else None
    except RedisError as exc:
        source = "postgres-redis-down"
        logger.warning("hot_tier_unavailable", extra={"error": type(exc).__name__})
    if c360 is None or raw is None:
        redis_ok = source == "redis"
        source = "postgres" if redis_ok else source
        if c360 is None:
            c360 = await build_360(services, tenant_id, customer_id)
            if c360 is not None and redis_ok:
                await put_hot_360(services, tenant_id, customer_id, c360)
        if raw is None:
            raw = await read_layers_pg(services, tenant_id, customer_id)
            if raw is not None and redis_ok:
                await write_hot_layers(services, tenant_id, customer_id, raw)
    if features is None and c360 is not None and raw is not None:
        features = compute_features(tenant_id, c360, present_layers(raw, tenant_id))
        if source == "redis" or source == "postgres":
            try:
                await services.redis.set(
                    features_key(tenant_id, customer_id), json.dumps(features), ex=TTL_S
                )
            except RedisError as exc:
                logger.warning("feature_store_write_failed", extra={"error": type(exc).__name__})
    return c360, raw, features, source


def _has_open_items(episode: dict[str, Any]) -> bool:
    return bool(episode.get("openIssues") or episode.get("promises"))


async def load_customer_memory(
    services: Services,
    store: BaseStore | None,
    tenant_id: str,
    customer_id: str,
    message: str,
) -> dict[str, Any]:
    """The customer's 360 and four memory layers for this turn.

    Args:
        services: open services.
        store: the long-term store (``runtime.store``); ``None`` skips L3.
        tenant_id: tenant.
        customer_id: an authenticated customer.
        message: the customer's message (the L3 query).

    Returns:
        ``{"c360", "source", "features", "l1_identity", "l2_history", "l4_prefs_mood", "episodes",
        "open_episode", "budget": {"chars", "limit", "dropped"}}``; ``c360`` is ``None`` if the
        customer does not exist.
    """
    config = load_tenant_config(tenant_id).memory
    hot = _hot(services, tenant_id, customer_id)
    if store is not None and message.strip():
        (c360, raw, features, source), relevant, latest = await asyncio.gather(
            hot,
            search_episodes(store, tenant_id, customer_id, message, limit=config.episodes_top_k),
            latest_episodes(store, tenant_id, customer_id, limit=10),
        )
    elif store is not None:
        (c360, raw, features, source), latest = await asyncio.gather(
            hot, latest_episodes(store, tenant_id, customer_id, limit=10)
        )
        relevant = latest[: config.episodes_top_k]
    else:
        c360, raw, features, source = await hot
        relevant, latest = [], []
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
    layers = present_layers(raw, tenant_id) if raw is not None else {}
    return {
        "c360": c360,
        "source": source,
        "features": features,
        **layers,
        "episodes": kept,
        "open_episode": open_episode,
        "budget": {
            "chars": config.context_budget_chars - budget,
            "limit": config.context_budget_chars,
            "dropped": dropped,
        },
    }
