"""load_360: hot tier read-through, re-warm on a miss, PostgreSQL fallback when Redis fails."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from support_agent.conversation import Agent
from support_agent.errors import NotFoundError
from support_agent.memory_store.hot import c360_key, get_hot_360
from support_agent.services import Services
from tests.conftest import customer_with, new_session, proof, say


async def test_hot_hit_comes_from_redis(services: Services) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    c360, source = await get_hot_360(services, "retail", str(cust["id"]))
    assert c360 is not None
    assert source == "redis"
    assert c360["customer_id"] == cust["id"]
    assert any(o["order_id"] == cust["order_id"] for o in c360["orders"])


async def test_miss_reads_postgres_and_rewarms_with_ttl(services: Services) -> None:
    cust = await customer_with(services, "pending")
    key = c360_key("retail", str(cust["id"]))
    await services.redis.delete(key)
    c360, source = await get_hot_360(services, "retail", str(cust["id"]))
    assert source == "postgres"
    assert c360 is not None and c360["profile"]["zip"] == cust["zip"]
    cached = await services.redis.get(key)
    assert cached is not None and json.loads(cached)["customer_id"] == cust["id"]
    ttl = await services.redis.ttl(key)
    assert 0 < ttl <= services.settings.hot_ttl_s
    _, again = await get_hot_360(services, "retail", str(cust["id"]))
    assert again == "redis"


async def test_turn_succeeds_from_postgres_when_redis_is_down(
    services: Services, agent: Agent
) -> None:
    cust = await customer_with(services, "delivered")
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    original = services.redis
    services.redis = dead
    try:
        c360, source = await get_hot_360(services, "retail", str(cust["id"]))
        assert source == "postgres-redis-down"
        assert c360 is not None and c360["customer_id"] == cust["id"]
        result = await say(agent, new_session(), proof(cust))
        assert result.customer_id == cust["id"]
        assert result.memory["source"] == "postgres-redis-down"
    finally:
        services.redis = original
        await dead.aclose()


async def test_another_tenant_never_gets_this_customers_360(services: Services) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    with pytest.raises(NotFoundError):
        await get_hot_360(services, "other", str(cust["id"]))
    assert await services.redis.get(c360_key("other", str(cust["id"]))) is None
