"""classify_intent: the intent of the latest message, its sub-signals and the entities it names.

The intent comes from the tenant's embedding classifier (``intents.classifier``); below the
tenant's minimum confidence it is ``other``. A short "yes"/"no" answering a pending proposal, or
the new address a pending change was waiting for, keeps the pending action's intent: it is an
answer, not a new request. Sub-signals (frustration, human request, churn threat, confirmation)
and entities (order ids, product names of the customer's orders, cancellation reason, an address;
for bank customers amounts, a card's last four digits, card kind, description words) come from
``intents.signals`` and ``actions.targets``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from langgraph.runtime import Runtime

from support_agent.actions.targets import bank_entities
from support_agent.context import Context
from support_agent.intents.classifier import OUT_OF_SCOPE, classifier_for
from support_agent.intents.signals import (
    cancel_reason,
    detect_signals,
    extract_identifiers,
    extract_order_ids,
    parse_address,
)
from support_agent.nodes._text import last_customer_text
from support_agent.services import get_services
from support_agent.state import State
from support_agent.tenants import load_tenant_config


def mentioned_products(text: str, c360: dict[str, Any]) -> list[str]:
    """Product names from the customer's orders that the message mentions (case-insensitive)."""
    names = {item["name"] for order in c360.get("orders", []) for item in order["items"]}
    lowered = text.lower()
    return sorted(n for n in names if re.search(rf"\b{re.escape(n.lower())}s?\b", lowered))


def _names_value(text: str, pending: dict[str, Any]) -> bool:
    """The message names an option value a pending exchange/change asked about."""
    lowered = text.lower()
    return any(
        re.search(rf"\b{re.escape(v)}\b", lowered) for v in pending.get("variant_values") or []
    )


async def classify_intent(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Classify the latest message.

    Returns:
        ``intent``, ``intent_confidence``, ``signals`` (frustration 0..1, human_request,
        churn_threat, confirmation, cues, ranking; ``answers_pending`` when the message supplies
        the address or option a pending change asked for) and ``entities`` (order_ids,
        products, reason; for customers with bank holdings also amounts, last_four, card_kind,
        words).
    """
    services = await get_services()
    tenant_id = runtime.context.tenant_id
    config = load_tenant_config(tenant_id)
    text = last_customer_text(state.get("messages"))
    signals = detect_signals(text)
    entities = {
        "order_ids": extract_order_ids(text),
        "products": mentioned_products(text, state.get("c360") or {}),
        "reason": cancel_reason(text),
        "address": parse_address(text),
        **(bank_entities(text) if (state.get("c360") or {}).get("holdings") else {}),
    }
    pending = state.get("pending_action")
    supplies = bool(
        pending
        and (
            (pending.get("awaiting") == "new_address" and entities["address"])
            or (pending.get("awaiting") == "new_item" and _names_value(text, pending))
        )
    )
    if pending and (signals.confirmation is not None or supplies):
        return {
            "intent": pending["intent"],
            "intent_confidence": 1.0,
            "signals": {
                **signals.__dict__,
                "ranking": [],
                "unclear": False,
                "answers_pending": supplies,
            },  # fmt: skip
            "entities": entities,
        }
    if not text.strip():
        prediction_intent, confidence, ranking = "other", 1.0, []
    else:
        clf = await asyncio.to_thread(  # file checks and reads stay off the event loop
            lambda: classifier_for(
                tenant_id,
                config.intents_paths(services.settings.shared_data_dir),
                services.settings.data_dir / "models",
                services.embeddings,
            )
        )
        prediction = await asyncio.to_thread(clf.predict, text)
        prediction_intent, confidence = prediction.intent, prediction.confidence
        ranking = prediction.ranking
    intent = prediction_intent if confidence >= config.intent_min_confidence else "other"
    if signals.human_request:
        intent = "human_agent"
    identifying = bool((state.get("identification") or {}).get("new")) or bool(
        extract_identifiers(text)
    )
    unclear = (
        (prediction_intent == OUT_OF_SCOPE or confidence < config.intent_min_confidence)
        and not identifying
        and not signals.human_request
    )
    return {
        "intent": intent,
        "intent_confidence": confidence,
        "signals": {**signals.__dict__, "ranking": ranking, "unclear": unclear},
        "entities": entities,
    }
