"""Online feature store: CLV and churn propensity formulas, refresh, serving, use in ranking."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from support_agent.conversation import Agent
from support_agent.features.store import compute_features
from support_agent.memory_store.context import load_customer_memory
from support_agent.memory_store.hot import features_key
from support_agent.ranking import reference_clv
from support_agent.services import Services
from tests.conftest import PACKS, customer_with, new_session, proof, say

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def test_clv_and_churn_by_hand() -> None:
    c360 = {
        "value": {"net_spend": 2000.0, "balances": 0.0},
        "holdings": [],
        "disputes": [{"status": "UNDER_REVIEW"}, {"status": "RESOLVED"}],
        "interactions": [{"intent": "return"}, {"intent": None}, {"intent": "refund_status"}],
        "tier": "silver",
    }
    layers = {"l2_history": {"firstContact": "2024-11-21T00:00:00+00:00", "churnRisk": 0.2,
                             "complaints": 1}}  # fmt: skip
    f = compute_features(PACKS.config("retail"), c360, layers, now=NOW)
    # retail: margin 0.25, discount 0.10; tenure 730 days = 2 years
    annual = 0.25 * 2000.0 / 2.0
    churn = 0.2 + 0.1 * 1  # one open dispute
    r = 1 - churn
    assert f["tenure_days"] == 730
    assert f["annual_value"] == pytest.approx(annual)
    assert f["churn_propensity"] == pytest.approx(churn)
    assert f["clv"] == pytest.approx(annual * r / (1 + 0.10 - r), abs=0.01)
    assert f["open_disputes"] == 1 and f["complaints"] == 1
    assert f["recent_intents"] == ["return", "refund_status"]


def test_churn_propensity_is_capped() -> None:
    c360 = {"value": {"net_spend": 10.0}, "holdings": [], "interactions": [],
            "disputes": [{"status": "OPEN"}] * 5}  # fmt: skip
    f = compute_features(PACKS.config("retail"), c360, {"l2_history": {"churnRisk": 0.9}}, now=NOW)
    assert f["churn_propensity"] == 1.0 and f["clv"] == 0.0


async def test_sync_job_fills_the_store_and_turns_read_it(services: Services) -> None:
    keys = [k async for k in services.redis.scan_iter(match="sa:{retail:*}:features", count=1000)]
    assert len(keys) >= 500  # the session fixture ran the sync job
    cust = await customer_with(services, "delivered")
    cid = str(cust["id"])
    await services.redis.delete(features_key("retail", cid))
    _c360, memory = await load_customer_memory(services, None, "retail", cid, "")
    features = memory["features"]
    assert features is not None and features["clv"] >= 0
    stored = await services.redis.get(features_key("retail", cid))
    assert stored is not None and json.loads(stored)["clv"] == features["clv"]
    assert 0 < await services.redis.ttl(features_key("retail", cid)) <= 24 * 3600


async def test_escalation_urgency_uses_clv_from_the_store(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered")
    session = new_session()
    await say(agent, session, proof(cust))
    await say(agent, session, "I am really annoyed and frustrated with this")
    state = (await agent.graph.aget_state(
        {"configurable": {"thread_id": f"retail:{session}"}})).values  # fmt: skip
    features = state["memory"]["features"]
    value = min(1.0, features["clv"] / reference_clv(PACKS.config("retail")))
    escalate = next(c for c in state["candidates"] if c["action"] == "escalate_to_human")
    frustration = state["signals"]["frustration"]
    assert escalate["terms"]["urgency"] == pytest.approx(frustration * (0.5 + 0.5 * value),
                                                         abs=1e-3)  # fmt: skip
