"""Online feature store: customer value, churn propensity and intent features, computed.

Features are computed here from the systems of record (the Customer 360) and the memory layers;
``memory_store.hot`` keeps them in Redis under ``sa:{tenant:customer}:features`` (JSON, TTL
24 h), refreshed for every customer by the sync job and for one customer after each memory update,
and read by ``load_360`` in the same Redis round trip as the 360 and the layers.

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

from datetime import UTC, date, datetime
from typing import Any

from support_agent.state import Customer360, Features
from support_agent.tenants import TenantConfig

#: How long features stay in the online store, seconds.
TTL_S = 24 * 3600


def compute_features(
    config: TenantConfig, c360: Customer360, layers: dict[str, Any], now: datetime | None = None
) -> Features:
    """The feature vector of one customer (see module docstring for every formula).

    Args:
        config: the tenant's configuration (its CLV constants and tier basis).
        c360: the customer's 360.
        layers: the memory layers in the public shape (``l2_history`` is used).
        now: time of computation (default now, UTC).

    Returns:
        ``{"clv", "annual_value", "value_basis", "churn_propensity", "tenure_days",
        "open_disputes", "complaints", "recent_intents", "tier", "computed_at"}``.
    """
    now = now or datetime.now(UTC)
    l2 = layers.get("l2_history") or {}
    starts: list[date] = []
    if l2.get("firstContact"):
        starts.append(datetime.fromisoformat(l2["firstContact"]).date())
    starts += [date.fromisoformat(opened) for h in c360.get("holdings", [])
               if (opened := h.get("opened_on"))]  # fmt: skip
    tenure_days = max(0, (now.date() - min(starts)).days) if starts else 0
    value: dict[str, float] = dict(c360.get("value") or {})  # type: ignore[arg-type]
    basis = float(value.get(config.tier_basis) or 0.0)
    annual = config.clv.margin_rate * basis / max(1.0, tenure_days / 365.0)
    open_disputes = sum(1 for d in c360.get("disputes", [])
                        if d["status"] not in ("RESOLVED", "CLOSED", "resolved"))  # fmt: skip
    churn = min(1.0, float(l2.get("churnRisk", 0.0)) + 0.1 * open_disputes)
    retention = 1.0 - churn
    clv = annual * retention / (1.0 + config.clv.discount_rate - retention)
    intents = [str(i["intent"]) for i in c360.get("interactions", []) if i.get("intent")]
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
