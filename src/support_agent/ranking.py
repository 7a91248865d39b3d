"""Next-best-action ranking: the formula, every term explained.

Formula (weights per tenant in ``tenant.yaml`` ``ranking.weights``, summing to 1; each term in
[0, 1]; the bundled packs use 0.45 / 0.20 / 0.15 / 0.10 / 0.10)::

    score(a) = w_fit·fit(a) + w_evidence·evidence(a) + w_memory·memory(a)
               + w_urgency·urgency(a) + w_retention·retention(a)

    fit(a)       = affinity(intent, a) · intent_confidence · eligibility(a)
                   (affinity from the tenant's table, or the vertical's prior when the message
                   itself says which of two related actions is meant; eligibility is 1, or the
                   tenant's ``ineligible_factor`` (0.5) when the target's status rules the action
                   out, e.g. an exchange of a still pending order)
    evidence(a)  = max over retrieved resolution records r listing a of
                   max(0, similarity(r)) · success_rate(r)
                   (similarity is the cosine similarity; 0 if r came from the keyword list only)
    memory(a)    = 1 if a continues the customer's open issue (follow-up, or the pending proposal
                   the customer is answering), else 0
    urgency(a)   = for escalate_to_human only: max(frustration, human_request) · (0.5 + 0.5·value)
                   where value = min(1, CLV / reference CLV): the customer's CLV from the online
                   feature store over the CLV of a customer at the tenant's top tier threshold
                   with base churn (:func:`reference_clv`), so high-CLV customers reach a human
                   sooner; 0 for other actions
    retention(a) = for the retention offer action only: churn_propensity · value (both from the
                   online feature store), the expected value at risk that the offer protects

Ranking only orders candidates; whether an action is allowed is the policy engine's decision.
"""

from __future__ import annotations

from typing import Any

from support_agent.tenants import RankingWeights, TenantConfig

HANDOFF_ACTION = "escalate_to_human"


def reference_clv(config: TenantConfig) -> float:
    """CLV of a customer at the top tier threshold with the base churn, in currency units.

    The ``features.store`` formula (Gupta & Lehmann 2003); at least 1e-6.
    """
    top = max(config.tier_thresholds.values(), default=1.0) or 1.0
    retention = 1.0 - config.memory.base_churn
    clv = config.clv.margin_rate * top * retention / (1.0 + config.clv.discount_rate - retention)
    return max(clv, 1e-6)


def score_candidate(
    action: str,
    *,
    weights: RankingWeights,
    affinity: float,
    confidence: float,
    resolutions: list[dict[str, Any]],
    continues_memory: bool,
    frustration: float,
    human_request: bool,
    value: float,
    churn: float = 0.0,
    retention_action: str | None = None,
    eligibility: float = 1.0,
) -> dict[str, Any]:
    """Score one action with the module's formula.

    Args:
        action: the candidate action.
        weights: the tenant's weights.
        affinity: the intent's affinity for the action, in [0, 1].
        confidence: the classifier's probability of the intent.
        resolutions: retrieved hits (``retrieval.hybrid.Hit.as_dict``).
        continues_memory: the action continues the open issue or the pending proposal.
        frustration: frustration score in [0, 1].
        human_request: the customer asked for a person.
        value: CLV over the tenant's reference CLV, in [0, 1].
        churn: churn propensity in [0, 1].
        retention_action: the tenant's action that applies a retention offer.
        eligibility: 1, or the tenant's ``ineligible_factor`` when the target's status rules the
            action out.

    Returns:
        ``{"score": float, "terms": {fit, evidence, memory, urgency, retention}, "weights"}``,
        rounded to 4 decimals; ``score == Σ weights[t]·terms[t]``.
    """
    fit = affinity * confidence * eligibility
    evidence = max(
        (
            max(0.0, float(r.get("similarity") or 0.0)) * float(r["success_rate"])
            for r in resolutions
            if r.get("kind") == "resolution" and action in (r.get("actions") or [])
        ),
        default=0.0,
    )
    urgency = 0.0
    if action == HANDOFF_ACTION:
        urgency = max(frustration, 1.0 if human_request else 0.0) * (0.5 + 0.5 * value)
    retention = churn * value if action == retention_action else 0.0
    terms = {
        "fit": round(fit, 4),
        "evidence": round(evidence, 4),
        "memory": 1.0 if continues_memory else 0.0,
        "urgency": round(urgency, 4),
        "retention": round(retention, 4),
    }
    w = weights.as_dict()
    score = sum(w[k] * v for k, v in terms.items())
    return {"score": round(score, 4), "terms": terms, "weights": w}
