"""policy_check: judge the ranked candidates against the tenant's hard rules and audit the decision.

The facts handed to the rules are structured (see ``policy.engine.PolicyFacts``); the customer's
text and the memory contents are not among them. The decision for the top-ranked candidate is the
turn's decision; the other candidates' decisions are kept so the reply can offer an allowed
alternative. Every decision is written to ``policy_audit``.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context
from support_agent.crm.repository import record_policy_audit
from support_agent.policy.config import load_policy
from support_agent.policy.engine import PolicyFacts, evaluate
from support_agent.services import get_services
from support_agent.state import State


def facts_for(candidate: dict[str, Any], state: State) -> PolicyFacts:
    """Build the structured policy facts for one candidate from the state."""
    target = candidate.get("target") or {}
    order_id = target.get("order_id")
    orders = {o["order_id"]: o for o in (state.get("c360") or {}).get("orders", [])}
    pending = state.get("pending_action")
    confirmed = bool(
        pending
        and pending.get("action") == candidate["action"]
        and pending.get("order_id") == order_id
        and (state.get("signals") or {}).get("confirmation") == "yes"
    )
    return PolicyFacts(
        authenticated=bool(state.get("authenticated")),
        identity_conflict=(state.get("identification") or {}).get("status") == "conflict",
        has_target=order_id is not None,
        has_items=bool(target.get("item_ids")),
        order_status=orders[order_id]["status"] if order_id in orders else None,
        confirmed=confirmed,
    )


async def policy_check(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Decide what the agent may do with the best candidate.

    Returns:
        ``policy``: the top decision (``action``, ``outcome``, ``reason``, ``rules``, ``target``)
        plus ``alternatives``: other candidates the policy allows, best first.
    """
    policy = load_policy(runtime.context.tenant_id)
    candidates = state.get("candidates") or []
    decisions = []
    for cand in candidates[:5]:
        decision = evaluate(cand["action"], facts_for(cand, state), policy).as_dict()
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
    services = await get_services()
    await record_policy_audit(
        services,
        runtime.context.tenant_id,
        runtime.context.session_id,
        state.get("turn", 0),
        top,
    )
    return {"policy": {**top, "alternatives": alternatives}}
