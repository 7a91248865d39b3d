"""Redis Cluster: turns, the hot tier, the memory pipeline, rate limits and erasure on a real
3-master cluster of Debian's ``redis-server`` (installed by ``make test``), with the test
session's PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from support_agent.conversation import Agent, end_session, run_turn
from support_agent.memory_store.erasure import erase_customer
from support_agent.memory_store.hot import customer_keys, sync_hot_tier
from support_agent.memory_store.pipeline import MemoryWorker
from support_agent.services import Services
from support_agent.settings import Settings
from tests.conftest import customer_with, job_status, new_session, proof, redis_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Three masters on loopback ports (see ``conftest.redis_cluster``)."""
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as ports:
        yield ports


@pytest.fixture(scope="module")
async def cluster_agent(
    cluster: list[int], settings: Settings, services: Services
) -> AsyncIterator[Agent]:
    """An agent on the session's PostgreSQL and the Redis Cluster (as a second deployment)."""
    on_cluster = settings.model_copy(
        update={
            "database_url": services.locks._conninfo,  # noqa: SLF001 - the test database
            "redis_url": f"redis://127.0.0.1:{cluster[0]}",
            "redis_cluster": True,
        }
    )
    async with Agent.open(on_cluster) as agent:
        yield agent


async def test_turns_hot_tier_pipeline_and_erasure_on_a_redis_cluster(
    cluster: list[int], cluster_agent: Agent
) -> None:
    svc = cluster_agent.services
    assert "RedisCluster" in type(svc.redis).__name__
    written = await sync_hot_tier(svc, "retail")
    assert written >= 500
    nodes = [redis.Redis(port=p) for p in cluster]
    assert all(n.dbsize() > 0 for n in nodes)  # customers spread over the three masters

    cust = await customer_with(svc, "delivered")
    cid = str(cust["id"])
    keys = customer_keys("retail", cid)
    slots = {nodes[0].execute_command("CLUSTER KEYSLOT", k) for k in keys}
    assert len(slots) == 1  # one customer, one slot: the hot read is one MGET

    session = new_session()
    hello = await run_turn(cluster_agent, tenant_id="retail", channel="chat",
                           message=proof(cust), session_id=session)  # fmt: skip
    assert hello.customer_id == cid
    asked = await run_turn(cluster_agent, tenant_id="retail", channel="chat",
                           message="where is my order?", session_id=session)  # fmt: skip
    assert asked.memory["source"] == "redis", asked.memory  # the 360 came from the cluster

    await end_session(cluster_agent, tenant_id="retail", session_id=session)
    applied = await MemoryWorker(svc, backoff_base_s=0.0).drain(timeout_s=60)
    assert applied >= 1
    assert await job_status(svc, session) == "done"

    from support_agent.api.ratelimit import RateLimiter

    limiter = RateLimiter(svc)
    await limiter.hit("retail", "f" * 64)  # counted in the cluster, no error
    assert sum(len(n.keys("*ratelimit*")) for n in nodes) >= 1

    assert any(_holds(n, k) for n in nodes for k in keys)  # the customer's hot keys exist
    await erase_customer(svc, "retail", cid)
    left = [k for k in keys for n in nodes if _holds(n, k)]
    assert left == []


def _holds(node: redis.Redis, key: str) -> bool:
    """Whether ``node`` serves ``key``'s slot and has the key."""
    try:
        return bool(node.exists(key))
    except redis.exceptions.ResponseError:  # MOVED: another node's slot
        return False
