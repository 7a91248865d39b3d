"""Redis hot tier: each customer's Customer 360, read-through with a TTL.

Keys are ``sa:{tenant_id}:c360:{customer_id}`` holding the 360 as JSON, with a TTL of
``HOT_TTL_S`` (default 1 hour). PostgreSQL is the source of truth: a miss (or Redis being down)
reads PostgreSQL and re-warms the key; every write to a customer's records invalidates it.
"""

from __future__ import annotations

import json
import logging

from redis.exceptions import RedisError

from support_agent.crm.customer360 import Customer360, build_360, build_360s
from support_agent.services import Services

logger = logging.getLogger(__name__)


def c360_key(tenant_id: str, customer_id: str) -> str:
    """Redis key of a customer's hot 360."""
    return f"sa:{tenant_id}:c360:{customer_id}"


async def get_hot_360(
    services: Services, tenant_id: str, customer_id: str
) -> tuple[Customer360 | None, str]:
    """Read a customer's 360: Redis first, PostgreSQL on a miss (re-warming Redis).

    Returns:
        ``(c360, source)`` where ``source`` is ``"redis"``, ``"postgres"`` (miss, re-warmed) or
        ``"postgres-redis-down"`` (Redis failed; the turn still succeeds). ``c360`` is ``None`` when
        the customer does not exist.
    """
    key = c360_key(tenant_id, customer_id)
    redis_ok = True
    try:
        raw = await services.redis.get(key)
        if raw is not None:
            return json.loads(raw), "redis"
    except RedisError as exc:
        redis_ok = False
        logger.warning(
            "hot_tier_unavailable", extra={"tenant_id": tenant_id, "error": type(exc).__name__}
        )
    c360 = await build_360(services, tenant_id, customer_id)
    if c360 is not None and redis_ok:
        await put_hot_360(services, tenant_id, customer_id, c360)
    return c360, "postgres" if redis_ok else "postgres-redis-down"


async def put_hot_360(
    services: Services, tenant_id: str, customer_id: str, c360: Customer360
) -> bool:
    """Write a customer's 360 to Redis with the hot TTL; False (logged) if Redis failed."""
    try:
        await services.redis.set(
            c360_key(tenant_id, customer_id), json.dumps(c360), ex=services.settings.hot_ttl_s
        )
    except RedisError as exc:
        logger.warning("hot_tier_write_failed", extra={"error": type(exc).__name__})
        return False
    return True


async def invalidate_360(services: Services, tenant_id: str, customer_id: str) -> None:
    """Drop a customer's hot 360 after a write (the next read re-warms it from PostgreSQL)."""
    try:
        await services.redis.delete(c360_key(tenant_id, customer_id))
    except RedisError as exc:
        logger.warning("hot_tier_invalidate_failed", extra={"error": type(exc).__name__})


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
    from support_agent.features.store import refresh_features

    await refresh_features(services, tenant_id)
    logger.info("hot_tier_synced", extra={"tenant_id": tenant_id, "customers": len(c360s)})
    return len(c360s)
