"""Online feature store: customer value, churn propensity and intent features in Redis.

Features are computed from the systems of record (the Customer 360) and the memory layers, kept
under ``sa:{tenant}:features:{customer}`` (JSON, TTL 24 h), refreshed for every customer by the
sync job and for one customer after each memory update, and read by ``load_360`` in the same
Redis round trip as the 360 and the layers.

Formulas (constants per tenant in ``tenant.yaml`` ``clv:``):

- ``value_basis``: the 360 value the tenant's tiers use (retail: net spend; bank: deposits);
- ``annual_value = margin_rate · value_basis / max(1, tenure_years)``;
- ``churn_propensity = min(1, churn_risk + 0.1 · open_disputes)``: the L2 churn risk (reference
  formula) raised by open billing disputes;
- ``retention r = 1 − churn_propensity``;
- ``clv = annual_value · r / (1 + d − r)``: the simple infinite-horizon CLV with constant margin
  and retention (Gupta & Lehmann 2003, "Customers as assets"), discount rate ``d``;
- intent features: the most recent intents of the customer's interactions and the complaint count.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import Any

from redis.exceptions import RedisError

from support_agent.crm.customer360 import Customer360, build_360s
from support_agent.memory_store.layers import present_layers, read_layers_pg
from support_agent.services import Services
from support_agent.tenants import load_tenant_config

logger = logging.getLogger(__name__)

TTL_S = 24 * 3600


def features_key(tenant_id: str, customer_id: str) -> str:
    """Redis key of a customer's online features."""
    return f"sa:{tenant_id}:features:{customer_id}"


def compute_features(
    tenant_id: str, c360: Customer360, layers: dict[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    """The feature vector of one customer (see module docstring for every formula).

    Args:
        tenant_id: tenant (for its CLV constants and tier basis).
        c360: the customer's 360.
        layers: the memory layers in the public shape (``l2_history`` is used).
        now: time of computation (default now, UTC).

    Returns:
        ``{"clv", "annual_value", "value_basis", "churn_propensity", "tenure_days",
        "open_disputes", "complaints", "recent_intents", "tier", "computed_at"}``.
    """
    config = load_tenant_config(tenant_id)
    now = now or datetime.now(UTC)
    l2 = layers.get("l2_history") or {}
    starts: list[date] = []
    if l2.get("firstContact"):
        starts.append(datetime.fromisoformat(l2["firstContact"]).date())
    starts += [date.fromisoformat(h["opened_on"]) for h in c360.get("holdings", [])
               if h.get("opened_on")]  # fmt: skip
    tenure_days = max(0, (now.date() - min(starts)).days) if starts else 0
    basis = float(c360["value"][config.tier_basis])
    annual = config.clv_margin_rate * basis / max(1.0, tenure_days / 365.0)
    open_disputes = sum(1 for d in c360.get("disputes", [])
                        if d["status"] not in ("RESOLVED", "CLOSED", "resolved"))  # fmt: skip
    churn = min(1.0, float(l2.get("churnRisk", 0.0)) + 0.1 * open_disputes)
    retention = 1.0 - churn
    clv = annual * retention / (1.0 + config.clv_discount_rate - retention)
    intents = [i["intent"] for i in c360.get("interactions", []) if i.get("intent")]
    return {
        "clv": round(clv, 2),
        "annual_value": round(annual, 2),
        "value_basis": round(basis, 2),
        "churn_propensity": round(churn, 4),
        "tenure_days": tenure_days,
        "open_disputes": open_disputes,
        "complaints": int(l2.get("complaints", 0)),
        "recent_intents": intents[:3],
        "tier": c360.get("tier"),
        "computed_at": now.isoformat(),
    }


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
    c360s = await build_360s(services, tenant_id, customer_ids)
    features = {}
    for cid, c360 in c360s.items():
        if raw_layers is not None and cid in raw_layers:
            raw = raw_layers[cid]
        else:
            raw = await read_layers_pg(services, tenant_id, cid)
        layers = present_layers(raw, tenant_id) if raw else {}
        features[cid] = compute_features(tenant_id, c360, layers)
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            for cid, vector in features.items():
                pipe.set(features_key(tenant_id, cid), json.dumps(vector), ex=TTL_S)
            await pipe.execute()
    except RedisError as exc:
        logger.warning("feature_store_write_failed", extra={"error": type(exc).__name__})
        return 0
    return len(features)
