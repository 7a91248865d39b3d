"""classify_intent: the intent of the latest message, its sub-signals and the entities it names.

The intent comes from the tenant's embedding classifier (``intents.classifier``); below the
tenant's minimum confidence it is ``other``. A short "yes"/"no" answering a pending proposal, or
the detail a pending proposal asked for (the vertical decides: a new address, an option), keeps
the pending action's intent: it is an answer, not a new request. Sub-signals (frustration, human
request, churn threat, confirmation) come from ``intents.signals``; entities from the tenant's
vertical.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context, turn_of
from support_agent.intents.classifier import OUT_OF_SCOPE
from support_agent.intents.signals import detect_signals, extract_identifiers
from support_agent.state import Signals, State


async def classify_intent(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Classify the latest message.

    Returns:
        ``intent``, ``intent_confidence``, ``signals`` (frustration 0..1, human_request,
        churn_threat, confirmation, cues, ranking, unclear; ``answers_pending`` when the message
        supplies the detail a pending proposal asked for) and ``entities`` (the vertical's).
    """
    this = turn_of(state, runtime)
    config, text = this.deps.config, this.text
    found = detect_signals(text)
    signals: Signals = {**found.__dict__}  # type: ignore[typeddict-item]
    entities = this.deps.vertical.entities(text, this.c360)
    pending = this.pending
    supplies = bool(
        pending and pending.get("awaiting") and this.deps.vertical.answers_pending(this, entities)
    )
    if pending and (found.confirmation is not None or supplies):
        return {
            "intent": pending["intent"],
            "intent_confidence": 1.0,
            "signals": {**signals, "ranking": [], "unclear": False, "answers_pending": supplies},
            "entities": entities,
        }
    if not text.strip():
        predicted, confidence, ranking = "other", 1.0, []
    else:
        # loading (or training) the model and reading files stay off the event loop
        model = this.deps.loaded_intent_model()
        if model is None:
            model = await asyncio.to_thread(this.deps.intent_model)
        prediction = await asyncio.to_thread(model.predict, text)
        predicted, confidence, ranking = (
            prediction.intent, prediction.confidence, prediction.ranking
        )  # fmt: skip
    intent = predicted if confidence >= config.intent_min_confidence else "other"
    if found.human_request:
        intent = "human_agent"
    identifying = bool((state.get("identification") or {}).get("new")) or bool(
        extract_identifiers(text)
    )
    unclear = (
        (predicted == OUT_OF_SCOPE or confidence < config.intent_min_confidence)
        and not identifying
        and not found.human_request
    )
    return {
        "intent": intent,
        "intent_confidence": confidence,
        "signals": {**signals, "ranking": ranking, "unclear": unclear},
        "entities": entities,
    }
