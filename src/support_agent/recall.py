"""Recall: a follow-up is answered from the customer's threads first, for every intent.

"Any news on the dispute I opened?", "I'm following up on both of my complaints", "did my return
go through?": the customer's open and recently resolved threads (``crm.threads``, loaded with
the 360) say where each stands, so the agent never asks again for an order, a transaction or a
card a thread already identifies. One thread → one answer about it; several → each named with
its state in one reply. Resolved threads are told as outcomes, never as open.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from support_agent.state import InteractionSummary, Thread

_FOLLOW_UP = re.compile(
    r"\b(follow(?:ing)?[- ]?up|any (?:news|update|updates|progress)|news (?:on|about)|"
    r"update (?:on|about)|what happened|what'?s happening|did (?:my|the) [\w' -]{0,40}?"
    r"go through|status of (?:my|the)|where (?:are we|do things stand|is my|are my)|heard back|"
    r"still waiting|checking (?:in|on)|how(?:'s| is) my)\b",
    re.I,
)
#: Words that point at one kind of thread.
_KIND_WORDS: dict[str, tuple[str, ...]] = {
    "dispute": ("dispute", "disputed", "chargeback"),
    "issue": ("complaint", "complaints", "problem", "problems", "issue", "issues", "broken",
              "damaged", "scratched"),
    "handoff": ("complaint", "complaints", "colleague", "agent", "person", "human", "case"),
    "return": ("return", "returns", "refund"),
    "exchange": ("exchange", "exchanges", "swap"),
    "card_order": ("replacement", "new card", "card"),
    "retention_offer": ("offer", "waiver", "credit", "downgrade"),
    "promise": ("promise", "promised"),
}  # fmt: skip
_ALL = re.compile(r"\b(both|all|every|each)\b", re.I)


def wants_recall(text: str) -> bool:
    """The message follows up on something earlier."""
    return _FOLLOW_UP.search(text) is not None


def relevant(text: str, threads: Sequence[Thread]) -> list[Thread]:
    """The threads a follow-up is about.

    Those whose subject the message names (an order id, a card's last four digits, an amount),
    else those of the kinds it names ("my dispute", "both complaints"), else every open one, else
    the latest resolved one.
    """
    low = text.lower()
    named = [t for t in threads if t.get("subject_id") and str(t["subject_id"]).lower() in low]
    named += [t for t in threads if t not in named and _names_subject(low, t)]
    if named:
        return named
    kinds = {k for k, words in _KIND_WORDS.items()
             if any(re.search(rf"\b{re.escape(w)}\b", low) for w in words)}  # fmt: skip
    pool = [t for t in threads if t["kind"] in kinds] if kinds else list(threads)
    open_ = [t for t in pool if t["status"] != "resolved"]
    if open_:
        if kinds or _ALL.search(text) or len(open_) > 1:
            return open_
        return open_[:1]
    return pool[:1]


def _names_subject(low: str, thread: Thread) -> bool:
    label = str(thread.get("subject_label") or "").lower()
    four = re.search(r"ending in (\d{4})", label)
    if four and four.group(1) in low:
        return True
    amount = re.search(r"\$([\d,]+\.\d{2})", label)
    return bool(amount and amount.group(1).replace(",", "") in low.replace(",", ""))


def _when(value: str | None) -> str:
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).strftime("%b %-d")
    except ValueError:
        return value[:10]


def state_of(thread: Thread) -> str:
    """Where one thread stands, in the customer's words (outcomes for resolved threads)."""
    kind, state = thread["kind"], str(thread.get("state") or "")
    day = _when(thread.get("opened_at"))
    on = f" on {day}" if day else ""
    if kind == "retention_offer":
        applied = _when(thread.get("updated_at"))
        return f"it was applied to your account{' on ' + applied if applied else ''}"
    if thread["status"] == "resolved":
        if thread.get("outcome") and kind in ("handoff", "issue"):
            return f"resolved by my colleague: {thread['outcome']}"
        return f"resolved ({thread.get('outcome') or state})"
    if kind == "dispute":
        now = state.lower().replace("_", " ")
        if now in ("", "submitted", "open", "pending"):
            return f"your dispute was submitted{on} and is waiting for review"
        return f"your dispute, submitted{on}, is {now}"
    if kind == "handoff":
        return f"with a colleague since {day or 'earlier'}; they will get back to you"
    if kind == "card_order":
        return f"a replacement card was ordered{on} and is on its way"
    if kind in ("return", "exchange"):
        return f"the {kind} is requested; the return instructions were emailed to you"
    if kind == "promise":
        return f"we promised: {thread['what']}"
    where = f", now {state}" if state and state not in ("open", "resolved") else ""
    return f"still open since {day or 'earlier'} ({thread['what']}){where}"


def untold_outcomes(
    threads: Sequence[Thread], interactions: Sequence[InteractionSummary], session_id: str
) -> list[Thread]:
    """Handoffs a colleague resolved that the customer has not heard about since.

    A resolution is told once a later session (not this one) has started after it.
    """
    later = [str(i.get("started_at") or "") for i in interactions if i.get("id") != session_id]
    return [
        t for t in threads
        if t["kind"] == "handoff" and t["status"] == "resolved" and t.get("outcome")
        and not any(s > str(t.get("updated_at") or "") for s in later)
    ]  # fmt: skip


def outcome_line(thread: Thread) -> str:
    """How a new session opens after a colleague resolved something."""
    return (
        f"Last time my colleague took care of {thread['subject_label']}: {thread['outcome']}. "
        "Is everything all right now? "
    )


_LAST_CONTACT = re.compile(
    r"\b(when|how long ago) (did|was) (i|we) (last |the last time )?"
    r"(contact|talk|speak|chat|call|write|reach|message)|\blast time (i|we) (talked|spoke|"
    r"chatted|contacted|wrote|called)\b|\bwhen was my last\b",
    re.I,
)
_PROMISED = re.compile(r"\bwhat (did|have) (you|your \w+) promise", re.I)
_DECIDED = re.compile(
    r"\bwhat did (the|your) (agent|colleague|person|human|representative)[\w ]{0,30}?"
    r"(decide|do|say|conclude)\b",
    re.I,
)
_ASKED_BEFORE = re.compile(
    r"\bwhat did i (ask|contact you|write|call) (about|for)\b|\bwhat was my last (question|"
    r"request|conversation)\b",
    re.I,
)


def history_answer(
    text: str,
    threads: Sequence[Thread],
    interactions: Sequence[InteractionSummary],
    session_id: str,
) -> str | None:
    """Answers to questions about the customer's history with us, from memory.

    "When did I last contact you?", "what did you promise me?", "what did the agent I spoke to
    decide?", "what did I ask about last time?": from the CRM's interactions (date, channel,
    summary), the pending promises and the handoffs' outcomes. ``None`` for anything else.
    """
    past = [i for i in interactions if i.get("id") != session_id]
    if _LAST_CONTACT.search(text) or _ASKED_BEFORE.search(text):
        if not past:
            return "This is our first conversation; I have no earlier contact on record."
        last = past[0]
        when = _when(last.get("started_at"))
        about = last.get("summary") or (
            f"about {str(last['intent']).replace('_', ' ')}" if last.get("intent") else ""
        )
        return (
            f"Your last conversation with us was on {when} by {last['channel']}"
            + (f": {about}" if about else "")
            + "."
        )
    if _PROMISED.search(text):
        promises = [t for t in threads if t["kind"] == "promise"]
        if not promises:
            return "There is no open promise on your account."
        return "We promised: " + "; ".join(t["what"] for t in promises) + "."
    if _DECIDED.search(text):
        handled = [t for t in threads if t["kind"] == "handoff"]
        if not handled:
            return "None of my colleagues has handled a request of yours recently."
        t = handled[0]
        if t["status"] == "resolved":
            return f"My colleague took care of {t['subject_label']}: {t.get('outcome')}."
        return f"My colleague is still working on {t['subject_label']}; they will get back to you."
    return None


def answer(text: str, threads: Sequence[Thread]) -> tuple[str, list[Thread]] | None:
    """The reply to a follow-up from the threads, and the threads it is about.

    Returns:
        ``(reply, threads)``, or ``None`` when the message is no follow-up or no thread fits.
    """
    if not threads or not wants_recall(text):
        return None
    chosen = relevant(text, threads)
    if not chosen:
        return None
    if len(chosen) == 1:
        t = chosen[0]
        return f"About {t['subject_label']}: {state_of(t)}.", chosen
    lines = "; ".join(f"{n}) {t['subject_label']}: {state_of(t)}"
                      for n, t in enumerate(chosen, 1))  # fmt: skip
    return f"Here is where each stands: {lines}.", chosen
