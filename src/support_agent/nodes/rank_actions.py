"""rank_actions: next-best-action ranking of the candidate actions, every score explained.

Formula (weights sum to 1; each term in [0, 1])::

    score(a) = 0.50·fit(a) + 0.25·evidence(a) + 0.15·memory(a) + 0.10·urgency(a)

    fit(a)      = affinity(intent, a) · intent_confidence    (actions.catalog.INTENT_AFFINITY)
    evidence(a) = max over retrieved resolution records r listing a of
                  max(0, similarity(r)) · success_rate(r)
                  (similarity is the cosine similarity; 0 if r came from the keyword list only)
    memory(a)   = 1 if a continues the customer's open issue (follow-up, or the pending proposal
                  the customer is answering), else 0
    urgency(a)  = for escalate_to_human only: max(frustration, human_request) · (0.5 + 0.5·value)
                  where value = min(1, CLV / reference CLV) — the customer's CLV from the
                  online feature store over the CLV of a customer at the tenant's top tier
                  threshold with base churn (``reference_clv``) — so high-CLV customers reach a
                  human sooner; 0 for other actions

Ranking only orders candidates; whether an action is allowed is the policy engine's decision.
Each candidate also carries its target (order, items, refund method) resolved from the message,
the pending proposal, the session's issue or the open issue in memory, in that order; when
several orders could be meant, the target is left empty and the agent asks which one.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from support_agent.actions.catalog import INTENT_AFFINITY
from support_agent.context import Context
from support_agent.policy.config import ActionRule, load_policy
from support_agent.state import State
from support_agent.tenants import TenantConfig, load_tenant_config

WEIGHTS = {"fit": 0.50, "evidence": 0.25, "memory": 0.15, "urgency": 0.10}

_FOLLOW_UP_INTENTS = {"order_status", "refund_status", "other", "return", "exchange", "complaint"}


def reference_clv(config: TenantConfig) -> float:
    """CLV of a customer at the top tier threshold with the base churn (features.store formula)."""
    top = max(config.tier_thresholds.values(), default=1.0) or 1.0
    retention = 1.0 - config.memory.base_churn
    clv = config.clv_margin_rate * top * retention / (1.0 + config.clv_discount_rate - retention)
    return max(clv, 1e-6)


def score_candidate(
    action: str,
    *,
    intent: str,
    confidence: float,
    resolutions: list[dict[str, Any]],
    continues_memory: bool,
    frustration: float,
    human_request: bool,
    value: float,
) -> dict[str, Any]:
    """Score one action with the module's formula.

    Returns:
        ``{"score": float, "terms": {fit, evidence, memory, urgency}, "weights": WEIGHTS}``,
        rounded to 4 decimals; ``score == Σ weights[t]·terms[t]``.
    """
    fit = INTENT_AFFINITY.get(intent, {}).get(action, 0.0) * confidence
    evidence = max(
        (
            max(0.0, float(r.get("similarity") or 0.0)) * float(r["success_rate"])
            for r in resolutions
            if r.get("kind") == "resolution" and action in (r.get("actions") or [])
        ),
        default=0.0,
    )
    urgency = 0.0
    if action == "escalate_to_human":
        urgency = max(frustration, 1.0 if human_request else 0.0) * (0.5 + 0.5 * value)
    terms = {
        "fit": round(fit, 4),
        "evidence": round(evidence, 4),
        "memory": 1.0 if continues_memory else 0.0,
        "urgency": round(urgency, 4),
    }
    score = sum(WEIGHTS[k] * v for k, v in terms.items())
    return {"score": round(score, 4), "terms": terms, "weights": dict(WEIGHTS)}


def _orders(state: State) -> list[dict[str, Any]]:
    return list((state.get("c360") or {}).get("orders", []))


def resolve_target(action: str, state: State, spec: ActionRule) -> dict[str, Any]:
    """The order and items an action is about (see module docstring for the order of sources).

    Returns:
        ``{"order_id", "item_ids", "item_names", "payment_method_id", "reason", "source"}``;
        ``order_id`` is ``None`` when it cannot be told without asking.
    """
    entities = state.get("entities") or {}
    products: list[str] = entities.get("products") or []
    orders = {o["order_id"]: o for o in _orders(state)}
    pending = state.get("pending_action")
    issue = state.get("issue")
    open_issue = (state.get("memory") or {}).get("open_issue")
    order_id: str | None = None
    source = "none"
    if entities.get("order_ids"):
        order_id, source = entities["order_ids"][0], "message"
    elif pending and pending.get("order_id") and (state.get("signals") or {}).get("confirmation"):
        order_id, source = pending["order_id"], "pending_action"
    elif issue and issue.get("order_id"):
        order_id, source = issue["order_id"], "session_issue"
    elif (
        open_issue
        and open_issue.get("order_id")
        and (action == "follow_up_open_issue" or not products)
    ):
        order_id, source = open_issue["order_id"], "memory"
    elif spec.needs_order or action in ("order_status", "refund_status"):
        pool = list(orders.values())
        if products:
            pool = [o for o in pool if {i["name"] for i in o["items"]} & set(products)]
        if spec.order_status_in is not None:
            eligible = [o for o in pool if o["status"] in spec.order_status_in]
            pool = eligible or pool
        if len(pool) == 1:
            order_id, source = pool[0]["order_id"], "inferred"
    order = orders.get(order_id or "")
    item_ids: list[str] = []
    item_names: list[str] = []
    if order is not None:
        chosen = [i for i in order["items"] if i["name"] in products] if products else []
        if not chosen and source in ("session_issue", "memory", "pending_action"):
            keep = set(
                (pending or {}).get("item_ids")
                or (issue or {}).get("item_ids")
                or (open_issue or {}).get("item_ids")
                or []
            )
            chosen = [i for i in order["items"] if i["item_id"] in keep]
        if not chosen and spec.needs_order:
            chosen = order["items"] if len(order["items"]) == 1 else []
        item_ids = [i["item_id"] for i in chosen]
        item_names = [i["name"] for i in chosen]
    payment = (order or {}).get("payment_method_ids") or [None]
    return {
        "order_id": order_id,
        "item_ids": item_ids,
        "item_names": item_names,
        "payment_method_id": payment[0],
        "reason": entities.get("reason") or (pending or {}).get("reason"),
        "source": source,
    }


async def rank_actions(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Rank the candidate next-best-actions for this turn.

    Returns:
        ``candidates``: ``[{"action", "score", "terms", "weights", "target"}]``, best first.
    """
    config = load_tenant_config(runtime.context.tenant_id)
    intent = state.get("intent", "other")
    confidence = float(state.get("intent_confidence", 0.0))
    signals = state.get("signals") or {}
    resolutions = state.get("resolutions") or []
    memory = state.get("memory") or {}
    entities = state.get("entities") or {}
    pending = state.get("pending_action")
    features = memory.get("features") or {}
    value = min(1.0, max(0.0, float(features.get("clv", 0.0))) / reference_clv(config))

    declared = load_policy(runtime.context.tenant_id).actions
    names = set(INTENT_AFFINITY.get(intent, {})) | {"escalate_to_human", "general_help"}
    open_issue = memory.get("open_issue")
    if open_issue:
        names.add("follow_up_open_issue")
    answering = bool(pending) and signals.get("confirmation") == "yes"
    if answering and pending is not None:
        names.add(pending["action"])

    candidates = []
    for name in sorted(names & set(declared)):  # a tenant offers only what its policy declares
        continues = (answering and pending is not None and name == pending["action"]) or (
            name == "follow_up_open_issue"
            and open_issue is not None
            and intent in _FOLLOW_UP_INTENTS
            and not entities.get("order_ids")
            and not entities.get("products")
        )
        scored = score_candidate(
            name,
            intent=intent,
            confidence=confidence,
            resolutions=resolutions,
            continues_memory=continues,
            frustration=float(signals.get("frustration", 0.0)),
            human_request=bool(signals.get("human_request")),
            value=value,
        )
        target = resolve_target(name, state, declared[name])
        candidates.append({"action": name, **scored, "target": target})
    candidates.sort(key=lambda c: (-c["score"], c["action"]))
    return {"candidates": candidates}
