"""What a bank action is about: the card or transaction a message means, read from the 360.

Entities come from the message (:func:`bank_entities`: amounts, a card's last four digits, debit
or credit, words of a transaction description); :func:`resolve_card` and
:func:`resolve_transaction` match them against the customer's holdings and recent transactions in
the Customer 360. When more than one record could be meant the target is left empty and the
candidates are returned, so the agent asks which one instead of guessing.

The statuses handed to the policy engine (:func:`card_status`, :func:`transaction_status`) are
lower case; a transaction that already has a dispute is ``disputed``; the retention offer made in
this session is ``offered``. :func:`resolve` puts it together for one action.
"""

from __future__ import annotations

import re
from typing import Any

from support_agent.policy.config import ActionRule
from support_agent.state import Customer360, Holding, Target, Transaction
from support_agent.templates import money
from support_agent.verticals.protocol import Turn

_AMOUNT_RE = re.compile(r"(?<![\w.])\$?\s?(\d{1,6}(?:,\d{3})*(?:\.\d{1,2})?)(?!\s*%)(?![\d])")
_LAST_FOUR_RE = re.compile(
    r"\b(?:ending|ends|last four|last 4|x{2,}|\*{2,})\D{0,12}(\d{4})\b", re.I
)
_WORD_RE = re.compile(r"[a-z]{3,}")
#: Words too common in complaints to identify a transaction by.
_STOP = frozenset(
    "the and was for this that charge charged charges fee fees payment payments transaction "
    "transactions account card debit credit from with have has had there what why you your "
    "not don't didn't recognise recognize dispute disputed wrong money bank statement twice "
    "please help need want just got get see saw can could would".split()
)
FEE_WORDS = ("fee", "charge", "interest")


def bank_entities(text: str) -> dict[str, Any]:
    """Bank entities in a message.

    Returns:
        ``{"amounts": [float], "last_four": str | None, "card_kind": "debit_card" |
        "credit_card" | None, "words": [str]}`` (amounts in currency units; words are the
        message's lower-case words of 3+ letters minus common complaint words).
    """
    lowered = text.lower()
    four = _LAST_FOUR_RE.search(text)
    amounts = []
    for m in _AMOUNT_RE.finditer(text):
        raw = m.group(1).replace(",", "")
        if four and raw == four.group(1):
            continue
        if "$" in m.group(0) or "." in raw:
            amounts.append(float(raw))
    kind = None
    if "debit" in lowered:
        kind = "debit_card"
    elif "credit card" in lowered or "credit-card" in lowered:
        kind = "credit_card"
    words = [w for w in _WORD_RE.findall(lowered) if w not in _STOP]
    return {
        "amounts": amounts,
        "last_four": four.group(1) if four else None,
        "card_kind": kind,
        "words": words,
    }


def cards(c360: Customer360) -> list[Holding]:
    """The customer's cards (credit card accounts and debit cards) from the 360 holdings."""
    return [h for h in c360.get("holdings", []) if h["kind"] in ("credit_card", "debit_card")]


def card_label(card: Holding) -> str:
    """``"Gold Rewards Card"`` / ``"debit card ending 4821"`` (never the full number)."""
    four = (card.get("details") or {}).get("last_four")
    if card["kind"] == "debit_card":
        return f"debit card ending {four}" if four else "debit card"
    return str(card["product"])


def card_status(c360: Customer360, card_id: str | None) -> str | None:
    """The card's status in lower case, ``None`` if the customer has no such card."""
    for card in cards(c360):
        if card["id"] == card_id:
            return str(card["status"]).lower()
    return None


def transaction_status(c360: Customer360, transaction_id: str | None) -> str | None:
    """``disputed`` if a dispute exists, else the status in lower case; ``None`` if unknown."""
    if any(d["transaction_id"] == transaction_id for d in c360.get("disputes", [])):
        return "disputed"
    for txn in c360.get("transactions", []):
        if txn["id"] == transaction_id:
            return str(txn["status"]).lower()
    return None


def transaction_label(txn: Transaction) -> str:
    """``"FOREIGN ATM FEE of $5.00 on 2025-11-17"``."""
    return f"{txn['description']} of {money(float(txn['amount']))} on {txn['date']}"


def resolve_card(entities: dict[str, Any], c360: Customer360) -> tuple[str | None, list[str]]:
    """The card the message means.

    Returns:
        ``(card_id or None, candidate card ids)``; the id is set only when exactly one card fits.
    """
    pool = cards(c360)
    if entities.get("last_four"):
        pool = [
            c for c in pool if (c.get("details") or {}).get("last_four") == entities["last_four"]
        ]
    if entities.get("card_kind"):
        pool = [c for c in pool if c["kind"] == entities["card_kind"]] or pool
    words = set(entities.get("words") or [])
    overlap = {c["id"]: len(words & set(_WORD_RE.findall(str(c["product"]).lower()))) for c in pool}
    best = max(overlap.values(), default=0)
    if best:  # the cards the message names most closely ("Gold Rewards" over "Silver Rewards")
        pool = [c for c in pool if overlap[c["id"]] == best]
    active = [c for c in pool if str(c["status"]).lower() == "active"]
    if len(pool) > 1 and len(active) == 1:
        pool = active
    ids = [c["id"] for c in pool]
    return (ids[0] if len(ids) == 1 else None), ids


def resolve_transaction(
    entities: dict[str, Any], c360: Customer360, *, fee_intent: bool
) -> tuple[str | None, list[str]]:
    """The transaction the message means, among the customer's recent debits.

    Filters in order, each only when it leaves something: the amounts named, the description
    words named, fee-like descriptions for a fee intent (``fee_intent``).

    Returns:
        ``(transaction_id or None, candidate ids newest first)``; the id is set only when exactly
        one transaction fits.
    """
    pool = [t for t in c360.get("transactions", []) if float(t["amount"]) < 0]
    amounts = entities.get("amounts") or []
    if amounts:
        pool = [t for t in pool if any(abs(abs(float(t["amount"])) - a) < 0.005 for a in amounts)]
    words = set(entities.get("words") or [])
    if words:
        by_words = [t for t in pool if words & set(_WORD_RE.findall(t["description"].lower()))]
        pool = by_words or pool
    if fee_intent and not amounts:
        fees = [t for t in pool if any(w in t["description"].lower() for w in FEE_WORDS)]
        pool = fees or pool
    ids = [t["id"] for t in pool]
    return (ids[0] if len(ids) == 1 else None), ids


def resolve(action: str, rule: ActionRule, turn: Turn, *, fee_intents: tuple[str, ...]) -> Target:
    """The card, transaction or offer a bank action is about, with its status.

    In order: the pending proposal the customer answers; the retention offer made in this
    session (offers); the card or transaction the message names (:func:`resolve_card`,
    :func:`resolve_transaction`, fee-like descriptions first for an intent in ``fee_intents``);
    for a transaction, the one the session's or memory's open issue is about.

    Returns:
        A target of the rule's kind; ``id`` is ``None`` when several records fit (``candidates``
        lists up to five to ask about) or none does; ``args`` carries the ``reason`` (the
        intent) and, for an offer, ``holding_id`` and ``terms``.
    """
    pending = turn.pending
    kind = rule.target
    if kind is None:
        return {"kind": None, "id": None, "source": "none", "candidates": [], "args": {}}
    if pending and pending.get("action") == action and turn.signals.get("confirmation"):
        return {**(pending.get("target") or {}), "source": "pending_action"}
    if kind == "offer":
        return _offer_target(turn)
    c360, entities = turn.c360, turn.entities
    issue = turn.state.get("issue") or turn.open_issue or {}
    source = "none"
    if kind == "card":
        found, candidates = resolve_card(entities, c360)
        by_card = {c["id"]: c for c in cards(c360)}
        label = card_label(by_card[found]) if found else None
        labels = [card_label(by_card[c]) for c in candidates]
        status = card_status(c360, found)
    else:
        found, candidates = resolve_transaction(
            entities, c360, fee_intent=turn.intent in fee_intents
        )
        if found is None and issue.get("subject_id") and not entities.get("amounts"):
            found, source, candidates = issue["subject_id"], "session_issue", []
        by_txn = {t["id"]: t for t in c360.get("transactions", [])}
        label = transaction_label(by_txn[found]) if found in by_txn else issue.get("subject_label")
        labels = [transaction_label(by_txn[c]) for c in candidates[:5]]
        status = transaction_status(c360, found)
    if source == "none" and found:
        source = "message"
    return {"kind": kind, "id": found, "label": label, "status": status, "source": source,
            "candidates": labels[:5], "args": {"reason": turn.intent}}  # fmt: skip


def _offer_target(turn: Turn) -> Target:
    """The retention offer made in this session (status ``offered``)."""
    offer = turn.state.get("offer") or {}
    offer_id = offer.get("offer_id")
    return {
        "kind": "offer",
        "id": offer_id,
        "label": offer.get("label"),
        "status": "offered" if offer_id else None,
        "source": "session_offer" if offer else "none",
        "candidates": [],
        "args": {"holding_id": offer.get("holding_id"), "terms": offer.get("terms")},
    }
