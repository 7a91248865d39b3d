"""Retention policy and offer constraints: may this customer get this offer now?

Rules, from the tenant's ``policy.yaml`` ``retention`` section and compliance switches, each
evaluated and audited like the hard rules (``policy.engine``):

``offer_declared``            the offer has a retention rule
``eligible_tier``             the customer's tier is listed
``eligible_tenure``           tenure ≥ ``min_tenure_days``
``eligible_churn_band``       the churn band (``retention.band_edges``; default low < 0.3 ≤
                              medium < 0.6 ≤ high) is listed
``within_max_discount``       the rule's discount ≤ ``max_discount_pct`` (or 100 for a fee waiver)
``offer_frequency``           no retention offer in the last ``min_days_between_offers`` days
``no_stacking``               no other retention offer active
``not_expired``               the offer is not past its expiry
``no_offer_while_complaint_open``  (compliance switch) no open complaint

Which offer fits which of the customer's products, and on what terms, is the tenant's vertical's
business (the bank's card offers: ``verticals.bank.retention``); it asks :func:`evaluate_offer`
whether each may be made, in the policy's order.

Outcome ``respond`` (offer allowed; ``disclosure_required`` tells the reply to carry the
promotional terms) or ``deny`` with the first failing rule's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from support_agent.policy.config import Policy
from support_agent.policy.engine import PolicyDecision, RuleResult
from support_agent.state import Customer360, Features


@dataclass(frozen=True)
class OfferFacts:
    """Structured facts an offer decision may read.

    Attributes:
        tier: relationship tier.
        tenure_days: days since the customer's first contact or account opening.
        churn_risk: 0..1 (L2 / feature store).
        days_since_last_offer: days since the last retention offer, ``None`` if never.
        active_offers: retention offers currently active for the customer.
        complaint_open: the customer has an open complaint.
        offer_expires_at: the offer's expiry, ``None`` if it does not expire.
        now: the time of the decision.
    """

    tier: str
    tenure_days: int
    churn_risk: float
    days_since_last_offer: int | None
    active_offers: tuple[str, ...]
    complaint_open: bool
    offer_expires_at: datetime | None
    now: datetime


@dataclass(frozen=True)
class OfferDecision(PolicyDecision):
    """A retention decision; ``disclosure_required`` when the terms must be stated."""

    disclosure_required: bool = False


def evaluate_offer(offer: str, facts: OfferFacts, policy: Policy) -> OfferDecision:
    """Decide whether ``offer`` may be made, evaluating every rule for the audit trail."""
    retention = policy.retention
    rule = next((r for r in retention.rules if r.offer == offer), None)
    declared = "retention rule found" if rule else "no retention rule for this offer"
    rules = [RuleResult("offer_declared", rule is not None, declared)]
    if rule is not None:
        band = retention.band_edges.band(facts.churn_risk)
        limit = 100.0 if rule.discount_pct == 100 else retention.max_discount_pct
        rules += [
            RuleResult("eligible_tier", facts.tier in rule.tiers, f"tier {facts.tier}"),
            RuleResult("eligible_tenure", facts.tenure_days >= rule.min_tenure_days,
                       f"tenure {facts.tenure_days} d, minimum {rule.min_tenure_days} d"),
            RuleResult("eligible_churn_band", band in rule.churn_bands, f"churn band {band}"),
            RuleResult("within_max_discount", rule.discount_pct <= limit,
                       f"discount {rule.discount_pct}% (limit {limit}%)"),
        ]  # fmt: skip
    recent = (
        facts.days_since_last_offer is not None
        and facts.days_since_last_offer < retention.min_days_between_offers
    )
    rules += [
        RuleResult("offer_frequency", not recent,
                   f"last offer {facts.days_since_last_offer} d ago" if recent
                   else "no recent retention offer"),
        RuleResult("no_stacking", not facts.active_offers,
                   "another retention offer is active" if facts.active_offers
                   else "no active offer"),
        RuleResult("not_expired",
                   facts.offer_expires_at is None or facts.offer_expires_at > facts.now,
                   "offer valid" if facts.offer_expires_at is None
                   or facts.offer_expires_at > facts.now else "offer expired"),
        RuleResult("no_offer_while_complaint_open",
                   not (facts.complaint_open and policy.compliance.no_offer_while_complaint_open),
                   "a complaint is open" if facts.complaint_open else "no open complaint"),
    ]  # fmt: skip
    failed = next((r for r in rules if not r.passed), None)
    if failed is not None:
        return OfferDecision(offer, "deny", failed.reason, rules)
    return OfferDecision(
        offer, "respond", "all rules passed", rules,
        disclosure_required=bool(rule and rule.requires_disclosure),
    )  # fmt: skip


def offer_facts(
    c360: Customer360,
    features: Features,
    *,
    session_id: str,
    complaint_open: bool,
    now: datetime,
) -> OfferFacts:
    """The structured offer facts of one customer, from the 360 and the online feature store.

    Offers made in this session (ledger ids ending in ``session_id``) do not count against the
    frequency rule: applying the offer just made is not a second offer.
    """
    earlier = [r for r in c360.get("retention_offers", []) if not r["id"].endswith(session_id)]
    last = max(
        (datetime.fromisoformat(at) for r in earlier if (at := r.get("offered_at"))), default=None
    )
    active = tuple(
        r["offer_id"]
        for r in earlier
        if r["status"] == "applied"
        and (expires := r.get("expires_at"))
        and datetime.fromisoformat(expires) > now
    )
    return OfferFacts(
        tier=str(c360.get("tier", "standard")),
        tenure_days=int(features.get("tenure_days") or 0),
        churn_risk=float(features.get("churn_propensity") or 0.0),
        days_since_last_offer=None if last is None else (now - last).days,
        active_offers=active,
        complaint_open=complaint_open,
        offer_expires_at=None,
        now=now,
    )
