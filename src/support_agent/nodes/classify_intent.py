"""classify_intent: the intent of the latest message, its sub-signals and the entities it names.

The intent comes from the tenant's embedding classifier (``intents.classifier``); below the
tenant's minimum confidence it is ``other``. The answer to a proposed write, as
``await_consent`` read it, keeps the proposal's intent: ``confirmation`` is ``yes`` only for an
approval and ``no`` for a refusal; an unclear answer is neither; a new request replaces the
proposal (``superseded``) and is classified as any message. A "yes" typed as a fresh message is
never a confirmation. The detail a pending question asked for (the vertical decides: a new
address, an option) is an answer too; so is a reply to that question that makes no new request
(the vertical then asks once more or hands over), and a refusal of it. Sub-signals (frustration,
human request, churn threat) come from ``intents.signals``; entities from the tenant's vertical.

All of it is CPU work on the message (up to 4,000 characters): the lexicons, the vertical's
entities and the classifier run in a worker thread, never on the event loop, so a long message
does not hold up other turns or the health checks. A thread is not enough by itself: one regular
expression call holds the GIL until it returns, so every pattern is also linear and each call
takes milliseconds (``tests/test_redos.py``); between calls the event loop gets the GIL back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from support_agent.consent import read_consent
from support_agent.context import Context, turn_of
from support_agent.intents.classifier import OUT_OF_SCOPE
from support_agent.intents.signals import (
    detect_signals,
    extract_identifiers,
    introduction_only,
    is_closing,
    mentions_a_person,
    without_identifiers,
)
from support_agent.state import PendingAction, Signals, State
from support_agent.verticals.protocol import Turn


async def classify_intent(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Classify the latest message (in a worker thread: see the module docstring).

    Returns:
        ``intent``, ``intent_confidence``, ``signals`` (frustration 0..1, human_request,
        churn_threat, confirmation, cues, ranking, unclear, closing, nothing_asked;
        ``answers_pending`` when the message supplies the detail a pending proposal asked for)
        and ``entities`` (the vertical's).
    """
    return await asyncio.to_thread(_classify, state, turn_of(state, runtime))


def _classify(state: State, this: Turn) -> dict[str, Any]:
    """:func:`classify_intent`'s work, blocking (the message's lexicons, entities, classifier)."""
    config, text = this.deps.config, this.text
    plain = without_identifiers(text)  # what is asked, the same whoever's identifiers came with it
    found = detect_signals(plain)
    history = state.get("history") or []
    offered = (
        bool(history)
        and history[-1].get("human_request")
        and (history[-1].get("decision") != "escalate")
    )
    if (
        offered
        and not found.human_request
        and (mentions_a_person(plain) or read_consent(plain, "transfer").verdict == "approve")
    ):
        # the last reply offered a person ("just say so and I'll connect you"): this says so
        found.human_request = True
        found.cues.append("human_request:accepts_offer")
    cued = config.cued_intent(plain)
    closing = cued is None and is_closing(plain)  # read once; respond_or_escalate uses it too
    # a yes or no is read against the proposal by the consent reader, never from the words alone
    signals: Signals = {**found.__dict__, "confirmation": None,  # type: ignore[typeddict-item]
                        "closing": closing}  # fmt: skip
    entities = this.deps.vertical.entities(text, this.c360)
    pending, consent = this.pending, state.get("consent")
    if pending and consent in ("approve", "reject", "unclear"):
        return _consent(pending, str(consent), signals, entities)
    asked = pending if pending and pending.get("awaiting") else None
    if asked is not None:  # the agent asked for a detail (a new address, an option)
        supplies = this.deps.vertical.answers_pending(this, entities)
        refused = not supplies and read_consent(plain, asked["action"]).verdict == "reject"
        if supplies or refused:
            return _answer(asked, signals, entities, supplies=supplies, refused=refused)
    introduction = bool(extract_identifiers(text)) and introduction_only(text)
    nothing_asked = introduction or closing
    if not text.strip() or nothing_asked:
        predicted, confidence, ranking = "other", 1.0, []  # nothing asked
    else:
        # loading (or training) the model reads files: in this thread too, off the event loop
        model = this.deps.loaded_intent_model()
        if model is None:
            model = this.deps.intent_model()
        prediction = model.predict(plain)
        predicted, confidence, ranking = (
            prediction.intent, prediction.confidence, prediction.ranking
        )  # fmt: skip
    intent = predicted if confidence >= config.intent_min_confidence else "other"
    if cued is not None:  # an explicit request verb ("return the kettle") names the intent
        intent = predicted = cued
        confidence = max(confidence, config.intent_min_confidence)
    if found.human_request:
        intent = "human_agent"
    no_request = intent in ("other", OUT_OF_SCOPE)
    if pending and consent == "new_request" and no_request:
        # said something else but asked for nothing new: the proposal still waits for a yes
        return _consent(pending, "unclear", signals, entities)
    if asked is not None and (no_request or intent == asked["intent"]):
        # no new request: an answer to the question that does not give what it asked for
        return _answer(asked, signals, entities, supplies=False, refused=False)
    superseded: dict[str, Any] = {}
    if pending and consent == "new_request":
        superseded = {"superseded": pending, "pending_action": None}
    identifying = bool((state.get("identification") or {}).get("new")) or bool(
        extract_identifiers(text)
    )
    unclear = (
        (predicted == OUT_OF_SCOPE or confidence < config.intent_min_confidence)
        and not identifying
        and not found.human_request
        and not nothing_asked  # "thanks, that's all" is understood
    )
    return {
        "intent": intent,
        "intent_confidence": confidence,
        "signals": {
            **signals,
            "ranking": ranking,
            "unclear": unclear,
            "nothing_asked": nothing_asked,
        },
        "entities": entities,
        **superseded,
    }


def _answer(
    pending: PendingAction,
    signals: Signals,
    entities: dict[str, Any],
    *,
    supplies: bool,
    refused: bool,
) -> dict[str, Any]:
    """An answer to the question a pending proposal asked (it keeps the proposal's intent)."""
    return {
        "intent": pending["intent"],
        "intent_confidence": 1.0,
        "signals": {**signals, "confirmation": "no" if refused else None, "ranking": [],
                    "unclear": False, "answers_pending": supplies},
        "entities": entities,
    }  # fmt: skip


def _consent(
    pending: PendingAction, consent: str, signals: Signals, entities: dict[str, Any]
) -> dict[str, Any]:
    """The answer to a proposed write: ``confirmation`` yes only for an approval."""
    return {
        "intent": pending["intent"],
        "intent_confidence": 1.0,
        "signals": {**signals, "confirmation": {"approve": "yes", "reject": "no"}.get(consent),
                    "consent": consent, "ranking": [], "unclear": False},
        "entities": entities,
    }  # fmt: skip
