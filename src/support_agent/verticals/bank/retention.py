"""The bank's retention offers on credit cards ("Internal: Credit Card Retention Protocol").

What each offer id means is the tenant's setting (``vertical.settings.retention_offers``): a fee
waiver for some days, a downgrade to the segment's no-annual-fee card, or a statement credit by
card tier. :func:`offer_terms` says what an offer gives on one card (or that it cannot apply);
:func:`choose_offer` walks the policy's retention rules in order and returns the first offer the
rules (``policy.retention.evaluate_offer``) allow on one of the customer's active credit cards,
the one with the highest annual fee first.
"""

from __future__ import annotations

from typing import Any

from support_agent.policy.config import Policy
from support_agent.policy.retention import OfferDecision, OfferFacts, evaluate_offer
from support_agent.state import Customer360, Holding, Offer


def offer_terms(
    kind: str,
    spec: dict[str, Any],
    card: Holding,
    product: dict[str, Any],
) -> dict[str, Any] | None:
    """What an offer gives on one card (``None`` when it cannot apply to that card).

    Args:
        kind: what the offer means: ``fee_waiver``, ``downgrade`` or ``statement_credit``.
        spec: the offer's settings (``waiver_days``; ``credit_by_card_tier`` in USD).
        card: the 360 holding (a credit card).
        product: its catalog terms (``verticals.bank.catalog.card_catalog``).

    Returns:
        ``{"card", "annual_fee", ...}`` with ``waiver_days`` (fee waiver), ``downgrade_to``
        (downgrade) or ``credit`` (statement credit, USD, by the card's tier).
    """
    fee = float(product.get("annual_fee") or 0.0)
    base = {"card": card["product"], "annual_fee": fee}
    if kind == "fee_waiver":
        if fee <= 0 or (card.get("details") or {}).get("annual_fee_waived_until"):
            return None
        return {**base, "waiver_days": int(spec.get("waiver_days", 365))}
    if kind == "downgrade":
        target = product.get("downgrade_to")
        return {**base, "downgrade_to": target} if fee > 0 and target else None
    if kind == "statement_credit":
        credits = spec.get("credit_by_card_tier") or {}
        credit = credits.get(str(product.get("tier", "entry")))
        return {**base, "credit": float(credit)} if credit is not None else None
    return None


def choose_offer(
    policy: Policy,
    c360: Customer360,
    catalog: dict[str, dict[str, Any]],
    facts: OfferFacts,
    offers: dict[str, dict[str, Any]],
) -> tuple[Offer | None, list[OfferDecision]]:
    """The first retention offer, in the policy's order, the rules allow for this customer.

    Args:
        policy: the tenant's policy (its ``retention.rules`` in preference order).
        c360: the customer's 360 (its active credit cards).
        catalog: ``{card product name: catalog terms}``.
        facts: the customer's offer facts (``policy.retention.offer_facts``).
        offers: ``{offer id: {"kind", ...settings}}`` from the tenant's settings.

    Returns:
        ``(offer or None, every decision evaluated)``; the offer is ``{"offer_id",
        "holding_id", "terms", "disclosure_required", "rules"}``.
    """
    credit_cards = [
        h
        for h in c360.get("holdings", [])
        if h["kind"] == "credit_card" and str(h["status"]).upper() == "ACTIVE"
    ]
    credit_cards.sort(key=lambda h: -float(catalog.get(h["product"], {}).get("annual_fee") or 0))
    decisions: list[OfferDecision] = []
    for rule in policy.retention.rules:
        spec = offers.get(rule.offer)
        if spec is None:
            continue
        for card in credit_cards:
            terms = offer_terms(spec["kind"], spec, card, catalog.get(card["product"], {}))
            if terms is None:
                continue
            decision = evaluate_offer(rule.offer, facts, policy)
            decisions.append(decision)
            if decision.outcome == "respond":
                offer: Offer = {
                    "offer_id": rule.offer,
                    "holding_id": card["id"],
                    "terms": terms,
                    "disclosure_required": decision.disclosure_required,
                    "rules": [r.as_dict() for r in decision.rules],
                }
                return offer, decisions
            break  # the rule's verdict does not depend on the card
    return None, decisions
