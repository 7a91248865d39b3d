"""The Redis hot tier and the online feature store: the one module touching Redis for customers.

Keys per tenant and customer (JSON values):

- ``sa:{t}:c360:{c}``: the Customer 360, TTL ``HOT_TTL_S`` (1 h);
- ``sa:{t}:mem:{c}``: the stored L1/L2/L4 layers (``layers.read_layers_pg``), TTL ``HOT_TTL_S``;
- ``sa:{t}:features:{c}``: the online features (``features.store``), TTL 24 h.

PostgreSQL is the source of truth. :func:`read_through` is the one read path: one ``MGET`` of the
keys wanted; whatever missed is read from PostgreSQL and written back; with Redis down everything
comes from PostgreSQL and the turn still succeeds. Writes to a customer's records invalidate the
360 (:func:`invalidate_360`); the memory pipeline writes the layers through
(:func:`refresh_hot_memory`) and refreshes the features (:func:`refresh_features`); the sync job
fills everything (:func:`sync_hot_tier`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from redis.exceptions import RedisError

from support_agent.crm.customer360 import build_360, build_360s
from support_agent.features.store import TTL_S as FEATURES_TTL_S
from support_agent.features.store import compute_features
from support_agent.memory_store.layers import present_layers, read_layers_pg, read_layers_pg_many
from support_agent.services import Services
from support_agent.state import Customer360, Features

logger = logging.getLogger(__name__)

Part = Literal["c360", "layers", "features"]
Source = Literal["redis", "postgres", "postgres-redis-down"]


def customer_tag(tenant_id: str, customer_id: str) -> str:
    """The Redis Cluster hash tag of a customer's keys: ``{tenant:customer}``.

    Redis Cluster places a key by the part between its first ``{`` and ``}``, so every key of
    one customer lands in one slot and the hot read (one ``MGET`` of 360, layers and features)
    stays a single-slot command; customers spread over the slots.
    """
    return f"{{{tenant_id}:{customer_id}}}"


def c360_key(tenant_id: str, customer_id: str) -> str:
    """Redis key of a customer's hot 360: ``sa:{tenant:customer}:c360``."""
    return f"sa:{customer_tag(tenant_id, customer_id)}:c360"


def memory_key(tenant_id: str, customer_id: str) -> str:
    """Redis key of a customer's hot L1/L2/L4: ``sa:{tenant:customer}:mem``."""
    return f"sa:{customer_tag(tenant_id, customer_id)}:mem"


def features_key(tenant_id: str, customer_id: str) -> str:
    """Redis key of a customer's online features: ``sa:{tenant:customer}:features``."""
    return f"sa:{customer_tag(tenant_id, customer_id)}:features"


def customer_keys(tenant_id: str, customer_id: str) -> list[str]:
    """Every Redis key holding data of one customer (one slot)."""
    return [f(tenant_id, customer_id) for f in (c360_key, memory_key, features_key)]


_KEYS = {"c360": c360_key, "layers": memory_key, "features": features_key}


@dataclass(frozen=True)
class HotRead:
    """One customer's hot data as read.

    Attributes:
        c360: the Customer 360 (``None``: no such customer, or not asked for).
        raw_layers: the stored L1/L2/L4 (present them with ``layers.present_layers``).
        features: the online features.
        source: ``redis`` (every part asked for was hot), ``postgres`` (a 360 or layers miss,
            re-warmed) or ``postgres-redis-down`` (Redis failed; nothing re-warmed).
    """

    c360: Customer360 | None
    raw_layers: dict[str, Any] | None
    features: Features | None
    source: Source


async def read_through(
    services: Services,
    tenant_id: str,
    customer_id: str,
    parts: tuple[Part, ...] = ("c360", "layers", "features"),
) -> HotRead:
    """Read a customer's hot data: Redis first (one ``MGET``), PostgreSQL for what missed.

    Features missing from Redis are computed from the 360 and layers (both are then read too).
    """
    cached: dict[str, Any] = {}
    redis_ok = True
    try:
        values = await services.redis.mget([_KEYS[p](tenant_id, customer_id) for p in parts])
        cached = {p: json.loads(v) for p, v in zip(parts, values, strict=True) if v is not None}
    except RedisError as exc:
        redis_ok = False
        logger.warning("hot_tier_unavailable", extra={"tenant_id": tenant_id,
                                                       "error": type(exc).__name__})  # fmt: skip
    need_features = "features" in parts and "features" not in cached
    c360, raw = cached.get("c360"), cached.get("layers")
    missed = False
    if c360 is None and ("c360" in parts or need_features):
        missed = "c360" in parts
        c360 = await build_360(services, tenant_id, customer_id)
        if c360 is not None and redis_ok:
            await _put(
                services, c360_key(tenant_id, customer_id), c360, services.settings.hot_ttl_s
            )
    if raw is None and ("layers" in parts or need_features):
        missed = missed or "layers" in parts
        raw = await read_layers_pg(services, tenant_id, customer_id)
        if raw is not None and redis_ok:
            await write_hot_layers(services, tenant_id, customer_id, raw)
    features = cached.get("features")
    if need_features and c360 is not None and raw is not None:
        config = services.tenants.config(tenant_id)
        features = compute_features(config, c360, present_layers(raw, config.memory))
        if redis_ok:
            await _put(services, features_key(tenant_id, customer_id), features, FEATURES_TTL_S)
    source: Source = "postgres-redis-down" if not redis_ok else ("postgres" if missed else "redis")
    return HotRead(c360, raw, features, source)


async def _put(services: Services, key: str, value: Any, ttl_s: int) -> bool:
    """Write one JSON value with a TTL; False (logged) if Redis failed."""
    try:
        await services.redis.set(key, json.dumps(value), ex=ttl_s)
    except RedisError as exc:
        logger.warning("hot_tier_write_failed", extra={"error": type(exc).__name__})
        return False
    return True


async def get_hot_360(
    services: Services, tenant_id: str, customer_id: str
) -> tuple[Customer360 | None, Source]:
    """A customer's 360 (``None`` if no such customer) and where it came from."""
    read = await read_through(services, tenant_id, customer_id, ("c360",))
    return read.c360, read.source


async def get_layers(
    services: Services, tenant_id: str, customer_id: str, now: datetime | None = None
) -> tuple[dict[str, Any] | None, Source]:
    """L1, L2, L4 of a customer in the public shape, and where they came from.

    Returns:
        ``(layers or None if no such customer, source)``; trust and churn computed at ``now``.
    """
    read = await read_through(services, tenant_id, customer_id, ("layers",))
    if read.raw_layers is None:
        return None, read.source
    config = services.tenants.config(tenant_id).memory
    return present_layers(read.raw_layers, config, now), read.source


async def put_hot_360(
    services: Services, tenant_id: str, customer_id: str, c360: Customer360
) -> bool:
    """Write a customer's 360 to Redis with the hot TTL; False (logged) if Redis failed."""
    return await _put(services, c360_key(tenant_id, customer_id), c360, services.settings.hot_ttl_s)


async def write_hot_layers(
    services: Services, tenant_id: str, customer_id: str, raw: dict[str, Any]
) -> bool:
    """Write-through of the stored layers to Redis with a fresh TTL; False if Redis failed."""
    return await _put(
        services, memory_key(tenant_id, customer_id), raw, services.settings.hot_ttl_s
    )


async def invalidate_360(services: Services, tenant_id: str, customer_id: str) -> None:
    """Drop a customer's hot 360 after a write (the next read re-warms it from PostgreSQL)."""
    try:
        await services.redis.delete(c360_key(tenant_id, customer_id))
    except RedisError as exc:
        logger.warning("hot_tier_invalidate_failed", extra={"error": type(exc).__name__})


async def drop_customer(services: Services, tenant_id: str, customer_id: str) -> None:
    """Drop every hot key of a customer (merged away; the keys expire within their TTL anyway)."""
    try:
        await services.redis.delete(*(key(tenant_id, customer_id) for key in _KEYS.values()))
    except RedisError as exc:
        logger.warning("hot_tier_invalidate_failed", extra={"error": type(exc).__name__})


async def refresh_hot_memory(
    services: Services, tenant_id: str, customer_id: str
) -> dict[str, Any] | None:
    """After a write to a customer's records: write L1/L2/L4 through and drop the hot 360.

    Returns:
        The raw layers read (``layers.read_layers_pg``), so callers need not read them again.
    """
    return (await refresh_hot_memory_many(services, tenant_id, [customer_id]))[customer_id]


async def refresh_hot_memory_many(
    services: Services, tenant_id: str, customer_ids: list[str]
) -> dict[str, dict[str, Any] | None]:
    """:func:`refresh_hot_memory` for several customers of a tenant.

    One PostgreSQL read of their layers (``layers.read_layers_pg_many``) and one Redis pipeline
    (each customer's keys stay in one slot, so it works on Redis Cluster too). Redis errors are
    logged, not raised.

    Returns:
        ``{customer_id: raw layers or None}``.
    """
    raws = await read_layers_pg_many(services, tenant_id, customer_ids)
    ttl = services.settings.hot_ttl_s
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            for cid, raw in raws.items():
                if raw is not None:
                    pipe.set(memory_key(tenant_id, cid), json.dumps(raw), ex=ttl)
                pipe.delete(c360_key(tenant_id, cid))
            await pipe.execute()
    except RedisError as exc:
        logger.warning("hot_tier_write_failed", extra={"error": type(exc).__name__})
    return raws


async def refresh_features(
    services: Services,
    tenant_id: str,
    customer_ids: list[str] | None = None,
    raw_layers: dict[str, dict[str, Any] | None] | None = None,
) -> int:
    """Recompute and store features (all the tenant's customers, or the given ones).

    ``raw_layers`` are layers the caller has just read (``layers.read_layers_pg``), used instead
    of reading them again.

    Returns:
        How many customers were written. Redis errors are logged, not raised (the features are
        recomputed from PostgreSQL on the next read).
    """
    config = services.tenants.config(tenant_id)
    c360s = await build_360s(services, tenant_id, customer_ids)
    features = {}
    for cid, c360 in c360s.items():
        if raw_layers is not None and cid in raw_layers:
            raw = raw_layers[cid]
        else:
            raw = await read_layers_pg(services, tenant_id, cid)
        layers = present_layers(raw, config.memory) if raw else {}
        features[cid] = compute_features(config, c360, layers)
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            for cid, vector in features.items():
                pipe.set(features_key(tenant_id, cid), json.dumps(vector), ex=FEATURES_TTL_S)
            await pipe.execute()
    except RedisError as exc:
        logger.warning("feature_store_write_failed", extra={"error": type(exc).__name__})
        return 0
    return len(features)


async def sync_hot_tier(services: Services, tenant_id: str) -> int:
    """Write every customer's 360 and online features into Redis (the sync job); returns how many.

    Raises:
        redis.exceptions.RedisError: Redis is unavailable (the sync is an explicit operation).
    """
    c360s = await build_360s(services, tenant_id)
    ttl = services.settings.hot_ttl_s
    async with services.redis.pipeline(transaction=False) as pipe:
        for cid, c360 in c360s.items():
            pipe.set(c360_key(tenant_id, cid), json.dumps(c360), ex=ttl)
        await pipe.execute()
    await refresh_features(services, tenant_id)
    logger.info("hot_tier_synced", extra={"tenant_id": tenant_id, "customers": len(c360s)})
    return len(c360s)
