"""rank_actions: next-best-action ranking of the candidate actions, every score explained.

Formula (weights sum to 1; each term in [0, 1])::

    score(a) = 0.45·fit(a) + 0.20·evidence(a) + 0.15·memory(a) + 0.10·urgency(a)
               + 0.10·retention(a)

    fit(a)      = affinity(intent, a) · intent_confidence · eligibility(a)
                  (actions.catalog.affinity; eligibility is 1, or 0.5 when the target order's
                  status rules the action out, e.g. an exchange of a still pending order)
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
    retention(a) = for retention offers only: churn_propensity · value (both from the online
                  feature store), the expected value at risk that the offer protects; 0 for
                  other actions

Ranking only orders candidates; whether an action is allowed is the policy engine's decision.
Each candidate also carries its target, resolved from the message, the pending proposal, the
session's issue or the open issue in memory, in that order: for retail an order (with items and
refund method), for the bank a card or a transaction (``actions.targets``) or the retention offer
made in this session. When several records could be meant, the target is left empty and the agent
asks which one.
"""

from __future__ import annotations

import re
from typing import Any

from langgraph.runtime import Runtime

from support_agent.actions.catalog import affinity, candidate_actions
from support_agent.actions.retail import available_variants, choose_variant
from support_agent.actions.targets import (
    TARGET_KEYS,
    card_label,
    cards,
    resolve_card,
    resolve_transaction,
    transaction_label,
)
from support_agent.context import Context
from support_agent.nodes._text import last_customer_text
from support_agent.policy.config import ActionRule, load_policy
from support_agent.services import get_services
from support_agent.state import State
from support_agent.tenants import TenantConfig, load_tenant_config

WEIGHTS = {"fit": 0.45, "evidence": 0.20, "memory": 0.15, "urgency": 0.10, "retention": 0.10}
RETENTION_ACTIONS = frozenset({"apply_retention_offer"})
#: Eligibility factor of an action whose target's status rules it out.
INELIGIBLE = 0.5
#: Bank intents about a fee (a fee-like transaction is the likely target).
FEE_INTENTS = frozenset({"card_payment_fee_charged", "cash_withdrawal_charge",
                         "transfer_fee_charged", "extra_charge_on_statement", "exchange_charge",
                         "top_up_by_card_charge"})  # fmt: skip
_DEFAULT_ADDRESS_RE = re.compile(
    r"\b(default|profile|on file|account address|future orders)\b", re.I
)

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
    churn: float = 0.0,
    prior: float | None = None,
    eligibility: float = 1.0,
) -> dict[str, Any]:
    """Score one action with the module's formula.

    Args:
        action: the candidate action.
        intent: the turn's intent; ``confidence`` its probability.
        confidence: the classifier's probability of ``intent``.
        resolutions: retrieved hits (``retrieval.hybrid.Hit.as_dict``).
        continues_memory: the action continues the open issue or the pending proposal.
        frustration: frustration score in [0, 1].
        human_request: the customer asked for a person.
        value: CLV over the tenant's reference CLV, in [0, 1].
        churn: churn propensity in [0, 1].
        prior: the affinity to use instead of the catalog's (set when the message itself says
            which of two related actions is meant, e.g. the default address, not an order's).
        eligibility: 1 when the action's target allows it, :data:`INELIGIBLE` when its status
            rules it out (the policy will deny it), so an allowed related action ranks first.

    Returns:
        ``{"score": float, "terms": {fit, evidence, memory, urgency, retention}, "weights"}``,
        rounded to 4 decimals; ``score == Σ weights[t]·terms[t]``.
    """
    fit = (affinity(intent, action) if prior is None else prior) * confidence * eligibility
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
    retention = churn * value if action in RETENTION_ACTIONS else 0.0
    terms = {
        "fit": round(fit, 4),
        "evidence": round(evidence, 4),
        "memory": 1.0 if continues_memory else 0.0,
        "urgency": round(urgency, 4),
        "retention": round(retention, 4),
    }
    score = sum(WEIGHTS[k] * v for k, v in terms.items())
    return {"score": round(score, 4), "terms": terms, "weights": dict(WEIGHTS)}


def _orders(state: State) -> list[dict[str, Any]]:
    return list((state.get("c360") or {}).get("orders", []))


def resolve_target(
    action: str,
    state: State,
    spec: ActionRule,
    variants: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
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
    elif (
        pending
        and pending.get("order_id")
        and ((state.get("signals") or {}).get("confirmation") or pending.get("awaiting"))
    ):
        order_id, source = pending["order_id"], "pending_action"
    elif issue and issue.get("order_id"):
        order_id, source = issue["order_id"], "session_issue"
    elif (
        open_issue
        and open_issue.get("order_id")
        and (action == "follow_up_open_issue" or not products)
    ):
        order_id, source = open_issue["order_id"], "memory"
    elif spec.target == "order" or action in ("order_status", "refund_status"):
        pool = list(orders.values())
        if products:
            pool = [o for o in pool if {i["name"] for i in o["items"]} & set(products)]
        if spec.status_in is not None:
            eligible = [o for o in pool if o["status"] in spec.status_in]
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
        if not chosen and spec.target == "order":
            chosen = order["items"] if len(order["items"]) == 1 else []
        item_ids = [i["item_id"] for i in chosen]
        item_names = [i["name"] for i in chosen]
    payment = (order or {}).get("payment_method_ids") or [None]
    target = {
        "order_id": order_id,
        "item_ids": item_ids,
        "item_names": item_names,
        "payment_method_id": payment[0],
        "reason": entities.get("reason") or (pending or {}).get("reason"),
        "source": source,
    }
    if action == "exchange_items" or (action == "modify_order" and _change(state) == "items"):
        target.update(_swaps(action, state, order, item_ids, variants or {}))
    if action in ("modify_order", "update_default_address"):
        from_pending = pending if pending and pending.get("action") == action else {}
        target["new_address"] = entities.get("address") or from_pending.get("new_address")
        target["change"] = _change(state)
        target["new_payment_method_id"] = _named_payment_method(
            state, (order or {}).get("payment_method_ids") or []
        ) or from_pending.get("new_payment_method_id")
        if action == "update_default_address":
            target["order_id"] = None
    return target


_CHANGE = {"modify_address": "address", "modify_payment": "payment", "modify_items": "items",
           "exchange": "items"}  # fmt: skip


def _change(state: State) -> str:
    """What a modify_order changes: from the pending proposal, else from the intent."""
    pending = state.get("pending_action") or {}
    if pending.get("action") == "modify_order" and pending.get("change"):
        return str(pending["change"])
    return _CHANGE.get(str(state.get("intent")), "address")


def _swaps(
    action: str,
    state: State,
    order: dict[str, Any] | None,
    item_ids: list[str],
    variants: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The new variant of each item to exchange or modify (``actions.retail.choose_variant``).

    Returns:
        ``{"swaps": {old item id: new item id}, "new_options": [str], "variant_options":
        [str], "variant_values": [str]}``; ``swaps`` is empty unless every item's new variant is
        known (from the pending proposal or this message); ``variant_options`` lists what is
        available to ask about, ``variant_values`` the option values an answer may name.
    """
    pending = state.get("pending_action") or {}
    if pending.get("action") == action and pending.get("swaps"):
        keep = ("swaps", "new_options", "variant_options", "variant_values")
        return {k: pending[k] for k in keep if k in pending}
    text = last_text(state)
    swaps: dict[str, str] = {}
    new_options: list[str] = []
    available: list[str] = []
    values: set[str] = set()
    for item in (order or {}).get("items", []):
        if item["item_id"] not in item_ids:
            continue
        chosen, others = choose_variant(item, variants.get(item["product_id"], []), text)
        available += [_options_text(v["options"]) for v in others[:5]]
        values |= {str(v).lower() for o in others for v in o["options"].values()}
        if chosen is not None:
            swaps[item["item_id"]] = chosen["item_id"]
            new_options.append(f"{item['name']} ({_options_text(chosen['options'])})")
    complete = bool(item_ids) and len(swaps) == len(item_ids)
    return {
        "swaps": swaps if complete else {},
        "new_options": new_options if complete else [],
        "variant_options": available,
        "variant_values": sorted(values),
    }


def _options_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in options.items())


def _named_payment_method(state: State, current: list[str]) -> str | None:
    """A payment method on file, other than the order's, that the message names by kind."""
    text = last_text(state).lower()
    methods = (state.get("c360") or {}).get("payment_methods", [])
    for method in methods:
        if method["id"] in current:
            continue
        kind = method["kind"].replace("_", " ")
        if kind in text or (method.get("last_four") and method["last_four"] in text):
            return str(method["id"])
    return None


def last_text(state: State) -> str:
    """The latest customer message."""
    return last_customer_text(state.get("messages"))


def resolve_bank_target(action: str, state: State, spec: ActionRule, intent: str) -> dict[str, Any]:
    """The card, transaction or offer a bank action is about.

    Returns:
        ``{"card_id" | "transaction_id" | "offer_id": id or None, "label", "candidates",
        "source"}``; for an offer also ``holding_id`` and ``terms``.
    """
    c360 = state.get("c360") or {}
    entities = state.get("entities") or {}
    pending = state.get("pending_action")
    signals = state.get("signals") or {}
    key = TARGET_KEYS[str(spec.target)]
    if pending and pending.get("action") == action and signals.get("confirmation"):
        return {k: v for k, v in pending.items() if k not in ("action", "intent")} | {
            "source": "pending_action"
        }
    if spec.target == "offer":
        offer = state.get("offer") or {}
        return {
            "offer_id": offer.get("offer_id"),
            "holding_id": offer.get("holding_id"),
            "terms": offer.get("terms"),
            "label": offer.get("label"),
            "candidates": [],
            "source": "session_offer" if offer else "none",
        }
    issue = state.get("issue") or (state.get("memory") or {}).get("open_issue") or {}
    if spec.target == "card":
        found, candidates = resolve_card(entities, c360)
        by_id = {c["id"]: c for c in cards(c360)}
        label = card_label(by_id[found]) if found else None
        labels = [card_label(by_id[c]) for c in candidates]
    else:
        found, candidates = resolve_transaction(entities, c360, fee_intent=intent in FEE_INTENTS)
        source_is_issue = False
        if found is None and issue.get("subject_id") and not entities.get("amounts"):
            found, source_is_issue = issue["subject_id"], True
        by_id = {t["id"]: t for t in c360.get("transactions", [])}
        label = transaction_label(by_id[found]) if found in by_id else issue.get("subject_label")
        labels = [transaction_label(by_id[c]) for c in candidates[:5]]
        if source_is_issue:
            return {key: found, "label": label, "candidates": [], "source": "session_issue"}
    return {
        key: found,
        "label": label,
        "candidates": labels[:5],
        "source": "message" if found else "none",
        "reason": intent,
    }


def eligibility(spec: ActionRule, target: dict[str, Any], state: State) -> float:
    """1.0, or :data:`INELIGIBLE` when the target order's status rules the action out.

    Only order actions are discounted: there one goal has a different action per order status
    (a new variant is an exchange once delivered, an item change while pending), so the allowed
    one should rank first. For a card or transaction the best reply to an action its status
    rules out is the denial itself, which says where things stand ("already disputed", "already
    frozen").
    """
    if spec.status_in is None or spec.target != "order":
        return 1.0
    tid = target.get("order_id")
    if tid is None:
        return 1.0
    status = next((o["status"] for o in _orders(state) if o["order_id"] == tid), None)
    return 1.0 if status in spec.status_in else INELIGIBLE


def _prior(action: str, intent: str, default_address: bool) -> float | None:
    """Affinity overrides when the message says which address is meant (else ``None``)."""
    if intent != "modify_address" or action not in ("modify_order", "update_default_address"):
        return None
    if action == "update_default_address":
        return 1.0 if default_address else 0.3
    return 0.4 if default_address else None


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

    churn = min(1.0, max(0.0, float(features.get("churn_propensity", 0.0))))
    declared = load_policy(runtime.context.tenant_id).actions
    names = candidate_actions(intent) | {"escalate_to_human", "general_help"}
    if intent == "modify_address":
        names.add("update_default_address")
    if not state.get("offer"):  # only an offer made in this session can be applied
        names.discard("apply_retention_offer")
    elif signals.get("churn_threat") or intent == "terminate_account":
        names.add("apply_retention_offer")
    default_address = bool(_DEFAULT_ADDRESS_RE.search(last_text(state)))
    open_issue = memory.get("open_issue")
    if open_issue:
        names.add("follow_up_open_issue")
    answering = bool(pending) and (
        signals.get("confirmation") == "yes"
        or bool(signals.get("answers_pending"))  # decided by classify_intent
    )
    if answering and pending is not None:
        names.add(pending["action"])

    variants: dict[str, list[dict[str, Any]]] = {}
    if {"exchange_items", "modify_order"} & names and _orders(state):
        products = sorted({i["product_id"] for o in _orders(state) for i in o["items"]})
        variants = await available_variants(
            await get_services(), runtime.context.tenant_id, products
        )

    candidates = []
    for name in sorted(names & set(declared)):  # a tenant offers only what its policy declares
        continues = (answering and pending is not None and name == pending["action"]) or (
            name == "follow_up_open_issue"
            and open_issue is not None
            and intent in _FOLLOW_UP_INTENTS
            and not entities.get("order_ids")
            and not entities.get("products")
        )
        spec = declared[name]
        if spec.target in ("card", "transaction", "offer"):
            target = resolve_bank_target(name, state, spec, intent)
        else:
            target = resolve_target(name, state, spec, variants)
        scored = score_candidate(
            name,
            intent=intent,
            confidence=confidence,
            resolutions=resolutions,
            continues_memory=continues,
            frustration=float(signals.get("frustration", 0.0)),
            human_request=bool(signals.get("human_request")),
            value=value,
            churn=churn,
            # the customer is answering this proposal: it fits fully
            prior=1.0 if continues and answering else _prior(name, intent, default_address),
            eligibility=eligibility(spec, target, state),
        )
        candidates.append({"action": name, **scored, "target": target})
    candidates.sort(key=lambda c: (-c["score"], c["action"]))
    return {"candidates": candidates}
