"""policy_check: judge the ranked candidates against the tenant's hard rules and audit the decision.

The facts handed to the rules are structured (``policy.engine.PolicyFacts``): whether the customer
is authenticated, the target's id and status as the vertical read them from the systems of
record, and whether the customer said "yes" to exactly this proposal. The customer's text and the
memory contents are not among them. The decision for the top-ranked candidate is the turn's
decision; the other candidates' decisions are kept so the reply can offer an allowed alternative.
A proactive retention offer is considered when the customer is at risk. Every decision is written
to ``policy_audit``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from langgraph.runtime import Runtime

from support_agent.actions.ledger import change_key, made_by_proposal, recorded_at
from support_agent.context import Context, turn_of
from support_agent.crm.repository import record_policy_audit
from support_agent.policy.config import ActionRule
from support_agent.policy.engine import PolicyFacts, evaluate
from support_agent.policy.retention import offer_facts
from support_agent.state import Candidate, Offer, PolicyDecision, State
from support_agent.verticals.protocol import Turn

#: Candidates judged per turn (the rest rank too low to matter).
JUDGED = 5


def facts_for(candidate: Candidate, rule: ActionRule, this: Turn) -> PolicyFacts:
    """The structured policy facts of one candidate.

    ``recorded`` is left ``False``: it needs the ledger (:func:`_recorded`).

    Args:
        candidate: ``{"action", "target"}`` from ``rank_actions``.
        rule: the action's policy rule.
        this: the turn (its authentication, pending proposal and confirmation).
    """
    target = candidate.get("target") or {}
    pending = this.pending
    confirmed = bool(
        pending
        and not pending.get("awaiting")  # a question still open is not a proposal to accept
        and pending.get("action") == candidate["action"]
        and (pending.get("target") or {}).get("id") == target.get("id")
        and this.signals.get("confirmation") == "yes"
    )
    # a write needs the customer verified for writes (the tenant's verification scopes)
    scope = "writes" if rule.kind == "write" else "account_data"
    return PolicyFacts(
        authenticated=bool(this.state.get("authenticated"))
        and scope in (this.state.get("verified_for") or [scope]),
        identity_conflict=(this.state.get("identification") or {}).get("status") == "conflict",
        has_target=target.get("id") is not None,
        has_items=bool((target.get("args") or {}).get("item_ids")) and not target.get("candidates"),
        target_status=target.get("status") if rule.target is not None else None,
        confirmed=confirmed,
    )


async def _recorded(candidate: Candidate, this: Turn) -> bool:
    """Whether the proposal the customer just confirmed (``facts.confirmed``) was carried out.

    Its change is in the ledger, recorded after the proposal was made. That happens when a
    process died after acting on the customer's "yes" and before its checkpoint and answer;
    the "yes" is then resent, and the change is reported (its first result) instead of refused
    because the record now shows it.
    """
    target = candidate.get("target") or {}
    key = change_key(this.tenant_id, this.session_id, candidate["action"], target.get("id"),
                     target.get("args") or {})  # fmt: skip
    when = await recorded_at(this.deps.services, this.tenant_id, key)
    return made_by_proposal(when, (this.pending or {}).get("proposed_at"))


async def retention_offer(
    this: Turn, top: PolicyDecision
) -> tuple[Offer | None, list[PolicyDecision]]:
    """Proactive retention: the offer to make this turn, if any, and the decisions evaluated.

    Considered only for an authenticated customer of a tenant with retention rules, when no offer
    was made yet in this session, the turn is not a handoff, denial or pending confirmation, and
    the customer is at risk: a churn threat in the message, an at-risk intent, or a churn
    propensity in the high band. A stated threat counts as at least the policy's
    ``stated_threat_band``. Whether an offer may be made is the retention policy's decision,
    audited like every other decision; which offer fits which product is the vertical's.
    """
    retention = this.deps.policy.retention
    if not retention.rules or this.state.get("offer") or not this.state.get("authenticated"):
        return None, []
    if top.get("outcome") not in ("respond", "execute"):
        return None, []
    features: dict[str, Any] = dict(this.memory.get("features") or {})
    churn = float(features.get("churn_propensity") or 0.0)
    threat = bool(this.signals.get("churn_threat")) or this.intent in retention.at_risk_intents
    if not threat and retention.band_edges.band(churn) != "high":
        return None, []
    if threat:
        churn = max(churn, retention.band_edges.floor(retention.stated_threat_band))
    complaints = {"complaint", *this.deps.config.handoff.billing_dispute_intents}
    issues = [*this.c360.get("open_issues", []), this.state.get("issue") or {}]
    facts = offer_facts(
        this.c360,
        {**features, "churn_propensity": churn},  # type: ignore[typeddict-item]
        session_id=this.session_id,
        complaint_open=any(
            i.get("kind") in complaints and i.get("status", "open") == "open" for i in issues if i
        ),
        now=datetime.now(UTC),
    )
    offer, decisions = await this.deps.vertical.choose_retention_offer(this, facts)
    return offer, [{**d.as_dict(), "target": {}, "score": 0.0} for d in decisions]


async def policy_check(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Decide what the agent may do with the best candidate.

    Returns:
        ``policy``: the top decision (``action``, ``outcome``, ``reason``, ``rules``, ``target``)
        plus ``alternatives``: other candidates the policy allows, best first, and
        ``retention_offer``: a retention offer the policy approved this turn (or ``None``).
    """
    this = turn_of(state, runtime)
    policy = this.deps.policy
    decisions: list[PolicyDecision] = []
    for cand in (state.get("candidates") or [])[:JUDGED]:
        rule = policy.actions[cand["action"]]
        facts = facts_for(cand, rule, this)
        if facts.confirmed and rule.kind == "write":  # the ledger only for a write just confirmed
            facts = dataclasses.replace(facts, recorded=await _recorded(cand, this))
        verdict = evaluate(cand["action"], facts, policy).as_dict()
        decisions.append({**verdict, "target": cand.get("target") or {}, "score": cand["score"]})
    if not decisions:
        rule = policy.actions["general_help"]
        fallback = evaluate(
            "general_help", facts_for({"action": "general_help"}, rule, this), policy
        )
        decisions.append({**fallback.as_dict(), "target": {}, "score": 0.0})
    top = decisions[0]
    alternatives = [
        d
        for d in decisions[1:]
        if d.get("outcome") in ("respond", "confirm", "execute") and d.get("score", 0.0) > 0.1
    ]
    offer, offer_decisions = await retention_offer(this, top)
    for decision in (top, *offer_decisions):
        await record_policy_audit(
            this.deps.services, this.tenant_id, this.session_id, state.get("turn", 0), decision
        )
    return {"policy": {**top, "alternatives": alternatives, "retention_offer": offer}}
