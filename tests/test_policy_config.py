"""Declarative policy: compliance switches, validation, personal-data masking, retention rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support_agent.errors import InvalidRequestError
from support_agent.policy.config import Policy, read_policy
from support_agent.policy.engine import PolicyFacts, evaluate
from support_agent.policy.masking import mask_personal_data
from support_agent.policy.retention import OfferFacts, evaluate_offer
from tests.conftest import PACKS

NOW = datetime(2026, 11, 21, tzinfo=UTC)
FACTS = PolicyFacts(authenticated=False, identity_conflict=True, has_target=True,
                    has_items=True, target_status="pending", confirmed=False)  # fmt: skip


def _with_compliance(**switches: bool) -> Policy:
    base = PACKS.policy("retail")
    return base.model_copy(
        update={"compliance": base.compliance.model_copy(update=switches)}, deep=True
    )


def test_compliance_switches_come_from_the_policy_file() -> None:
    strict = PACKS.policy("retail")
    assert evaluate("cancel_order", FACTS, strict).outcome == "ask_identification"
    relaxed = _with_compliance(authenticate_before_account_access=False)
    assert evaluate("cancel_order", FACTS, relaxed).outcome == "deny"  # one customer still holds
    looser = _with_compliance(authenticate_before_account_access=False,
                              one_customer_per_conversation=False)  # fmt: skip
    assert evaluate("cancel_order", FACTS, looser).outcome == "confirm"
    loosest = _with_compliance(authenticate_before_account_access=False,
                               one_customer_per_conversation=False,
                               confirmation_before_write=False)  # fmt: skip
    assert evaluate("cancel_order", FACTS, loosest).outcome == "execute"


def test_undeclared_action_is_rejected() -> None:
    with pytest.raises(KeyError):
        evaluate("freeze_card", FACTS, PACKS.policy("retail"))  # a bank action, not retail's


def test_malformed_policy_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\ncompliance: {authenticate_before_account_acces: false}\n"
        "actions: {}\nretention: {max_discount_pct: 10, min_days_between_offers: 1}\n"
    )  # a typo in a switch name must not silently leave the rule at its default
    with pytest.raises(InvalidRequestError, match="invalid policy"):
        read_policy(path)
    path.write_text("version: 1\ncompliance: {}\nactions: {x: {kind: write}}\nretention: {}\n")
    with pytest.raises(InvalidRequestError):
        read_policy(path)
    with pytest.raises(InvalidRequestError, match="no policy file"):
        read_policy(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ann.lee@example.com", "write to [email]"),
        ("call +1 (555) 010-2030 today", "call [phone] today"),
        ("card 4111 1111 1111 1234 was used", "card •••• 1234 was used"),
        ("order #W1234567 refund 42.50", "order #W1234567 refund 42.50"),
    ],
)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert mask_personal_data(text) == expected


def _offer_facts(**changes: object) -> OfferFacts:
    base = OfferFacts(
        tier="gold", tenure_days=800, churn_risk=0.7, days_since_last_offer=None,
        active_offers=(), complaint_open=False, offer_expires_at=None, now=NOW,
    )  # fmt: skip
    return OfferFacts(**{**base.__dict__, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("offer", "changes", "failed"),
    [
        ("annual_fee_waiver", {}, None),
        ("no_such_offer", {}, "offer_declared"),
        ("annual_fee_waiver", {"tier": "platinum"}, "eligible_tier"),
        ("annual_fee_waiver", {"tenure_days": 30}, "eligible_tenure"),
        ("annual_fee_waiver", {"churn_risk": 0.1}, "eligible_churn_band"),
        ("annual_fee_waiver", {"days_since_last_offer": 300}, "offer_frequency"),
        ("annual_fee_waiver", {"days_since_last_offer": 400}, None),
        ("annual_fee_waiver", {"active_offers": ("apr_promo_6m",)}, "no_stacking"),
        ("annual_fee_waiver", {"offer_expires_at": NOW - timedelta(days=1)}, "not_expired"),
        ("annual_fee_waiver", {"complaint_open": True}, "no_offer_while_complaint_open"),
        ("downgrade_no_annual_fee", {"tenure_days": 30, "churn_risk": 0.45}, None),
        ("retention_statement_credit", {"tier": "standard", "tenure_days": 90}, None),
        ("retention_statement_credit", {"churn_risk": 0.45}, "eligible_churn_band"),
        ("retention_statement_credit", {"tenure_days": 30}, "eligible_tenure"),
    ],
)
def test_retention_rules(offer: str, changes: dict[str, object], failed: str | None) -> None:
    decision = evaluate_offer(offer, _offer_facts(**changes), PACKS.policy("bank"))
    failures = [r.rule for r in decision.rules if not r.passed]
    if failed is None:
        assert decision.outcome == "respond" and failures == []
        assert decision.disclosure_required
    else:
        assert decision.outcome == "deny" and failures[0] == failed


def test_discount_above_the_maximum_is_denied() -> None:
    policy = PACKS.policy("bank")
    rules = [
        r.model_copy(update={"discount_pct": 15}) if r.offer == "downgrade_no_annual_fee" else r
        for r in policy.retention.rules
    ]
    tight = policy.model_copy(
        update={"retention": policy.retention.model_copy(
            update={"max_discount_pct": 10, "rules": rules})},
        deep=True,
    )  # fmt: skip
    decision = evaluate_offer("downgrade_no_annual_fee", _offer_facts(churn_risk=0.45), tight)
    assert [r.rule for r in decision.rules if not r.passed] == ["within_max_discount"]


def test_churn_bands() -> None:
    band = PACKS.policy("bank").retention.band_edges.band
    assert [band(x) for x in (0.0, 0.29, 0.3, 0.59, 0.6, 1.0)] == [
        "low", "low", "medium", "medium", "high", "high"]  # fmt: skip
