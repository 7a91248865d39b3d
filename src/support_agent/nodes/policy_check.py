"""policy_check: judge the ranked candidates against the tenant's hard rules and audit the decision.

The facts handed to the rules are structured (see ``policy.engine.PolicyFacts``); the customer's
text and the memory contents are not among them. The decision for the top-ranked candidate is the
turn's decision; the other candidates' decisions are kept so the reply can offer an allowed
alternative. Every decision is written to ``policy_audit``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langgraph.runtime import Runtime

from support_agent.actions.targets import card_status, target_id, transaction_status
from support_agent.context import Context
from support_agent.crm.repository import record_policy_audit
from support_agent.policy.config import Policy, load_policy
from support_agent.policy.engine import PolicyFacts, evaluate
from support_agent.policy.retention import choose_offer, churn_band, offer_facts
from support_agent.services import get_services
from support_agent.state import State
from support_agent.tenants import load_tenant_config


def facts_for(candidate: dict[str, Any], state: State, kind: str | None = None) -> PolicyFacts:
    """Build the structured policy facts for one candidate from the state.

    Args:
        candidate: ``{"action", "target"}`` from ``rank_actions``.
        state: the graph state (its 360, pending proposal, signals, session offer).
        kind: what the action is about (``policy.config.ActionRule.target``).
    """
    target = candidate.get("target") or {}
    c360 = state.get("c360") or {}
    tid = target_id(target, kind) if kind else target.get("order_id")
    status: str | None = None
    if kind in (None, "order"):
        orders = {o["order_id"]: o for o in c360.get("orders", [])}
        status = orders[tid]["status"] if tid in orders else None
    elif kind == "card":
        status = card_status(c360, tid)
    elif kind == "transaction":
        status = transaction_status(c360, tid)
    elif kind == "offer":
        offer = state.get("offer") or {}
        status = "offered" if tid is not None and offer.get("offer_id") == tid else None
    pending = state.get("pending_action")
    confirmed = bool(
        pending
        and not pending.get("awaiting")  # a question still open is not a proposal to accept
        and pending.get("action") == candidate["action"]
        and (target_id(pending, kind) if kind else pending.get("order_id")) == tid
        and (state.get("signals") or {}).get("confirmation") == "yes"
    )
    return PolicyFacts(
        authenticated=bool(state.get("authenticated")),
        identity_conflict=(state.get("identification") or {}).get("status") == "conflict",
        has_target=tid is not None,
        has_items=bool(target.get("item_ids")),
        target_status=status,
        confirmed=confirmed,
    )


async def _card_catalog(tenant_id: str) -> dict[str, dict[str, Any]]:
    """``{card product: terms}`` from the tenant's offers catalog (``crm.bank_offers``)."""
    services = await get_services()
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT terms FROM offers WHERE tenant_id = %s AND kind = 'card_product'",
                (tenant_id,),
            )
        ).fetchall()
    return {r["terms"]["product"]: r["terms"] for r in rows}


#: Churn risk assumed when the customer says they want to leave (the low edge of the medium band,
#: ``policy.retention.churn_band``): enough for offers the policy allows at medium risk, never
#: for those it keeps for the high band, which only the measured propensity reaches.
CHURN_THREAT_RISK = 0.3


async def retention_offer(
    state: State, policy: Policy, top: dict[str, Any], ctx: Context
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Proactive retention: the offer to make this turn, if any, and the decisions evaluated.

    Considered only for an authenticated customer of a tenant with retention rules, when no offer
    was made yet in this session, the turn is not a handoff, denial or pending confirmation, and
    the customer is at risk: a churn threat in the message, a ``terminate_account`` intent or a
    churn propensity in the high band. Whether an offer may be made is the retention policy's
    decision (``policy.retention.choose_offer``), audited like every other decision.
    """
    if not policy.retention.rules or state.get("offer") or not state.get("authenticated"):
        return None, []
    if top["outcome"] not in ("respond", "execute"):
        return None, []
    features = (state.get("memory") or {}).get("features") or {}
    signals = state.get("signals") or {}
    at_risk = (
        bool(signals.get("churn_threat"))
        or state.get("intent") == "terminate_account"
        or churn_band(float(features.get("churn_propensity") or 0.0)) == "high"
    )
    c360 = state.get("c360") or {}
    if not at_risk or not any(h["kind"] == "credit_card" for h in c360.get("holdings", [])):
        return None, []
    issues = [*c360.get("open_issues", []), state.get("issue") or {}]
    # a complaint: an issue logged as one, or an open billing dispute (tenant.yaml handoff)
    complaints = {"complaint", *load_tenant_config(ctx.tenant_id).handoff.billing_dispute_intents}
    threat = bool(signals.get("churn_threat")) or state.get("intent") == "terminate_account"
    if threat:  # a stated intent to leave puts the customer at least in the medium band
        features = {**features, "churn_propensity": max(
            float(features.get("churn_propensity") or 0.0), CHURN_THREAT_RISK)}  # fmt: skip
    facts = offer_facts(
        c360,
        features,
        session_id=ctx.session_id,
        complaint_open=any(
            i.get("kind") in complaints and i.get("status", "open") == "open" for i in issues if i
        ),
        now=datetime.now(UTC),
    )
    offer, decisions = choose_offer(policy, c360, await _card_catalog(ctx.tenant_id), facts)
    return offer, [{**d.as_dict(), "target": {}, "score": 0.0} for d in decisions]


async def policy_check(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Decide what the agent may do with the best candidate.

    Returns:
        ``policy``: the top decision (``action``, ``outcome``, ``reason``, ``rules``, ``target``)
        plus ``alternatives``: other candidates the policy allows, best first, and
        ``retention_offer``: a retention offer the policy approved this turn (or ``None``).
    """
    policy = load_policy(runtime.context.tenant_id)
    candidates = state.get("candidates") or []
    decisions = []
    for cand in candidates[:5]:
        kind = policy.actions[cand["action"]].target
        decision = evaluate(cand["action"], facts_for(cand, state, kind), policy).as_dict()
        decisions.append({**decision, "target": cand.get("target"), "score": cand["score"]})
    if not decisions:
        fallback = evaluate("general_help", facts_for({"action": "general_help"}, state), policy)
        decisions.append({**fallback.as_dict(), "target": {}, "score": 0.0})
    top = decisions[0]
    alternatives = [
        d
        for d in decisions[1:]
        if d["outcome"] in ("respond", "confirm", "execute") and d["score"] > 0.1
    ]
    offer, offer_decisions = await retention_offer(state, policy, top, runtime.context)
    services = await get_services()
    for decision in (top, *offer_decisions):
        await record_policy_audit(
            services,
            runtime.context.tenant_id,
            runtime.context.session_id,
            state.get("turn", 0),
            decision,
        )
    return {"policy": {**top, "alternatives": alternatives, "retention_offer": offer}}
