"""Memory layers: the trust and churn formulas, and the hot tier's TTL and read-through."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from support_agent.memory_store.hot import get_layers, memory_key
from support_agent.memory_store.layers import churn_risk, present_layers, trust_score
from support_agent.services import Services
from tests.conftest import PACKS, customer_with


@pytest.mark.parametrize(
    ("base", "pos", "esc", "comp", "expected"),
    [
        (0.5, 0, 0, 0, 0.5),
        (0.5, 3, 1, 1, 0.5 + 0.3 - 0.15 - 0.1),  # 0.55
        (0.5, 10, 0, 0, 1.0),  # clamped above
        (0.5, 0, 4, 2, 0.0),  # 0.5 - 0.6 - 0.2 = -0.3, clamped below
        (0.2, 1, 0, 1, 0.2),
    ],
)
def test_trust_formula(base: float, pos: int, esc: int, comp: int, expected: float) -> None:
    assert trust_score(base, pos, esc, comp) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("base", "days", "unresolved", "resolutions", "expected"),
    [
        (0.1, 0, 0, 0, 0.1),
        (0.1, 45, 1, 0, 0.1 + 0.1 + 0.25),  # 0.45
        (0.1, 90, 2, 1, 0.1 + 0.2 + 0.5 - 0.1),  # 0.7
        (0.1, 900, 3, 0, 1.0),  # clamped above
        (0.1, 0, 0, 5, 0.0),  # clamped below
    ],
)
def test_churn_formula(
    base: float, days: float, unresolved: int, resolutions: int, expected: float
) -> None:
    assert churn_risk(base, days, unresolved, resolutions) == pytest.approx(expected)


def test_churn_grows_with_silence_when_read() -> None:
    last = datetime(2026, 1, 1, tzinfo=UTC)
    raw = {
        "l1_identity": {},
        "l4_prefs_mood": {},
        "l2_counters": {
            "firstContact": last.isoformat(), "totalConversations": 4,
            "positiveInteractions": 2, "escalations": 1, "complaints": 0,
            "unresolvedIssues": 1, "positiveResolutions": 1,
            "lastInteractionAt": last.isoformat(),
        },
    }  # fmt: skip
    soon = present_layers(raw, PACKS.config("retail").memory, now=last + timedelta(days=9))[
        "l2_history"
    ]
    later = present_layers(raw, PACKS.config("retail").memory, now=last + timedelta(days=90))[
        "l2_history"
    ]
    # retail base_trust 0.5, base_churn 0.1 (tenants/retail/tenant.yaml)
    assert soon["trustScore"] == pytest.approx(0.5 + 0.2 - 0.15)
    assert soon["churnRisk"] == pytest.approx(0.1 + 0.02 + 0.25 - 0.1)
    assert later["churnRisk"] == pytest.approx(0.1 + 0.2 + 0.25 - 0.1)
    assert soon["totalConversations"] == 4


async def test_hot_layers_expire_and_are_rewarmed_from_postgres(services: Services) -> None:
    cust = await customer_with(services, "pending")
    cid = str(cust["id"])
    key = memory_key("retail", cid)
    await services.redis.delete(key)
    layers, source = await get_layers(services, "retail", cid)
    assert source == "postgres"
    assert layers is not None and layers["l1_identity"]["email"] == cust["email"]
    ttl = await services.redis.ttl(key)
    assert 3500 < ttl <= services.settings.hot_ttl_s
    _, source = await get_layers(services, "retail", cid)
    assert source == "redis"
    # Expire the key for real (1 ms TTL) and read through again.
    await services.redis.pexpire(key, 1)
    await asyncio.sleep(0.05)
    assert await services.redis.exists(key) == 0
    again, source = await get_layers(services, "retail", cid)
    assert source == "postgres" and again == layers
    assert await services.redis.exists(key) == 1
    assert json.loads(await services.redis.get(key))["l1_identity"]["email"] == cust["email"]


async def test_unknown_customer_has_no_layers(services: Services) -> None:
    layers, _ = await get_layers(services, "retail", "nobody_here_0000")
    assert layers is None
