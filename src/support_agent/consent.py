"""The consent reader: does the customer's reply approve exactly the proposed action?

A write runs only after an unambiguous "yes" to exactly the action proposed (the policy's
``explicit_confirmation_before_write``). This module reads a reply as one of:

- ``approve``: an affirmative and nothing else: every word is consent vocabulary (yes, ok, sure,
  go ahead, confirm, correct...), politeness, or names the proposed action and its record;
- ``reject``: a refusal (no, don't, never mind, changed my mind, keep it...), or a reply whose
  last word on the matter is a refusal ("ok wait, no", "sure, but actually don't");
- ``new_request``: something else the customer wants (another action, another order, a question
  about something else) that supersedes the proposal;
- ``unclear``: anything in between: a question, a hedge ("maybe", "I think so"), a condition
  ("yes if it's free"), a delay ("later", "tomorrow"), a mixed answer, an acknowledgement ("got
  it"), noise.

It is built for precision on ``approve``: an unknown word, a question mark, a negation, a
condition, a hedge or a delay anywhere in the reply is enough to withhold approval; the agent then
asks once more, plainly. Measured on ``evals/consent.csv`` (595 labelled replies written for
this project) by ``support-agent eval consent``.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from support_agent.errors import InvalidRequestError

Verdict = Literal["approve", "reject", "unclear", "new_request"]

#: Words that make a reply a "yes" (at least one must be present).
AFFIRMATIVE = frozenset(
    "yes yeah yep yup yea ya yah yeh y ok okay okey oki okk k sure alright confirm confirmed "
    "approve approved agreed agree absolutely definitely certainly indeed affirmative correct "
    "proceed perfect yessir fine exactly continue".split()
)
#: Phrases that count as a "yes" on their own.
AFFIRMATIVE_PHRASES = (
    "go ahead", "goahead", "go on", "do it", "do that", "go for it", "sure thing", "please do",
    "of course", "sounds good", "works for me", "that works", "let's do it", "lets do it",
    "let's go", "for sure", "you bet", "that's right", "that is right", "that's correct",
    "that is correct", "that's fine", "fine by me", "all good", "all right", "make it so",
    "hit it", "you may", "100%", "i'll take", "i'd like that", "please and thank you",
    "that's what i want", "that's perfect", "it's correct", "looks right", "that's exactly",
)  # fmt: skip
#: A reply that is only this word is a "yes".
ALONE = frozenset({"go", "proceed"})
#: Other words a plain "yes" may carry (politeness, fillers, what it agrees to).
NEUTRAL = frozenset(
    "please thanks thank you so much very just and also then now right away straight "
    "the a an it that this them those these one me my i i'm i'll i'd i've it's that's is are "
    "be with for to of on in as at by all everything looks good great nice awesome fine "
    "exactly sir ma'am let's lets let us take like would want understand terms described "
    "asked checked items item order orders card offer address new make made sure yes "
    "cool ok okay that's right correct ahead go do thing can may for it sounds works bet "
    "course of hit what 100% lot".split()
)
#: Words of each action the customer may name when agreeing to it.
ACTION_WORDS = {
    "cancel_order": "cancel cancellation cancelled",
    "return_items": "return returned refund",
    "exchange_items": "exchange swap",
    "modify_order": "change modify update address payment items",
    "update_default_address": "update change address default",
    "freeze_card": "freeze frozen block",
    "order_replacement_card": "order replacement replace send",
    "dispute_transaction": "dispute open file opened fee charge",
    "apply_retention_offer": "apply offer",
}
#: The verbs that name each action: another action's verb in a reply is another request.
ACTION_VERBS = {
    "cancel_order": "cancel", "return_items": "return", "exchange_items": "exchange swap",
    "modify_order": "modify change", "update_default_address": "update",
    "freeze_card": "freeze block", "order_replacement_card": "replace replacement",
    "dispute_transaction": "dispute", "apply_retention_offer": "offer",
}  # fmt: skip
#: Any of these withholds approval (a negation, a pause, a hedge, a condition or a delay).
_WITHHOLD = re.compile(
    r"\b(no|nope|nah|not|don'?t|do not|never|cannot|can'?t|won'?t|wait|hold|stop|later|"
    r"tomorrow|tonight|next|maybe|perhaps|probably|possibly|guess|think|suppose|unsure|"
    r"if|unless|only|but|except|however|actually|although|though|first|before|after|until|"
    r"once|instead|rather|whatever|hopefully|kind of|sort of|almost|minute|second|"
    r"idk|dunno|hmm+|um+|uh+|ugh|meh|mean|yet)\b"
)
#: An ending ("Perfect, that's all.", "thanks, bye") leaves the proposal undone, unless a plain
#: yes is said with it ("yes, that's all" answers "is that every item?").
_CLOSING = re.compile(
    r"\b(that'?s all|that is all|that'?s it|that is it|nothing else|bye|goodbye|"
    r"talk (to you )?later|have a (good|nice|great))\b"
)
_STRONG_YES = re.compile(
    r"\b(yes|yeah|yep|yup|yea|confirm|confirmed|approve|approved|proceed|go ahead|do it|"
    r"please do|go for it)\b"
)
#: A refusal. The word boundary is checked once, before the alternatives (each then starts with
#: a letter the engine compares first): several times faster on a long reply than a boundary
#: in each alternative. Repeats are bounded (linear on any reply: ``tests/test_redos.py``).
_REJECT = re.compile(
    r"\b(?:(no|nope|nah|n|nooo*|noo)\b|don'?t\b|do not\b|never ?mind\b|"
    r"forget (it|about it)\b|"
    r"(cancel|scratch) that\b|changed? my mind\b|not (now|today|interested|really|at all|"
    r"correct|right|what i want)\b|stop\b|leave it\b|keep (it|the)\b|i'?ll keep\b|"
    r"decline\b|wrong\b|incorrect\b|(rather|prefer) not\b|no way\b|no need\b|"
    r"not necessary\b|(i'?ll )?pass\b|"
    r"leave (it|my \w{1,40}|the \w{1,40})( \w{1,40})? alone\b|"
    r"(absolutely|definitely|of course) not\b)|👎|❌"
)
#: Signs of something else the customer wants.
_REQUEST = re.compile(
    r"\b(instead|also|as well|another|other|where|status|how much|balance|total|talk to|"
    r"speak to|human|manager|stolen|lost|twice|i want to|i'?d like to|ridiculous|unhappy|"
    r"waiting)\b"
)
#: A condition on the yes: never a plain yes, never a refusal.
_CONDITION = re.compile(r"\b(if|unless|only|as long as|provided|except)\b")
#: Phrases whose negation is no refusal.
_NOT_REFUSALS = re.compile(
    r"\b(i )?don'?t (know|understand|care)\b|\bnot (sure|yet|just yet|"
    r"exactly)\b|\bno (fee|charge)\b"
)
_ORDER_ID = re.compile(r"#?w(\d{7})\b")
_WORD = re.compile(r"[a-z0-9%']+|[👍✅👌🙂😊👎❌]")
_EMOJI_YES = {"👍": "yes", "✅": "yes", "👌": "ok", "🙂": "", "😊": ""}
#: Typos of the affirmatives, by their shape.
_YES_TYPO = re.compile(r"^(y+e+s+|y+s+e*|ye+a+s*|ye+a+h+|ya+h*|ya+s+|yu+p+|ye+p+|ok+|oki+|ok+ey|"
                       r"su+re+|pro+ce+d+|goahead|yes+ir)$")  # fmt: skip


@dataclass(frozen=True)
class ConsentReading:
    """A reply, read: the verdict and why (for the audit trail)."""

    verdict: Verdict
    reason: str


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'").strip()
    text = re.sub(r"\b(pls|plz|plse|pleas)\b", "please", text)
    text = re.sub(r"[\U0001F3FB-\U0001F3FF]", "", text)  # skin tones of an emoji
    return re.sub(r"\s+", " ", text)


def _words(text: str) -> list[str]:
    words = []
    for word in _WORD.findall(text):
        word = _EMOJI_YES.get(word, word)
        if word:
            words.append("yes" if _YES_TYPO.match(word) else word)
    return words


def _last_clause(text: str) -> str:
    """The reply's last clause (after the last ``,`` ``.`` ``;`` ``!`` ``...`` or "but")."""
    parts = [p for p in re.split(r"[,.;!]+|\bbut\b", text) if p.strip()]
    return parts[-1] if parts else text


def read_consent(reply: str, action: str, target_id: str | None = None) -> ConsentReading:
    """Read a customer's reply to the proposal of ``action`` (see the module docstring).

    Args:
        reply: the customer's message.
        action: the proposed action (``cancel_order``, ``freeze_card``...).
        target_id: the proposed record's id; a reply naming another order id does not approve.

    Returns:
        The verdict and the reason.
    """
    text = _normalise(reply)
    words = _words(text)
    if not words:
        return ConsentReading("unclear", "no words")
    if (found := _CONDITION.search(text)) is not None:
        return ConsentReading("unclear", f"a condition: {found.group(0)!r}")
    if "yes and no" in text:
        return ConsentReading("unclear", "yes and no")
    clause = _without_idioms(text)
    if _REJECT.search(clause):
        if _REJECT.search(_last_clause(clause)) or not _affirmed(_words(_last_clause(clause))):
            return ConsentReading("reject", "a refusal")
        return ConsentReading("unclear", "a refusal and a yes in one reply")
    own = set(ACTION_WORDS.get(action, "").split())
    if _names_something_else(text, words, action, target_id):
        return ConsentReading("new_request", "something else is named")
    if "?" in text:
        return ConsentReading("unclear", "a question")
    if (found := _WITHHOLD.search(text)) is not None:
        return ConsentReading("unclear", f"withheld by {found.group(0)!r}")
    if (found := _CLOSING.search(text)) is not None and not _STRONG_YES.search(text):
        return ConsentReading("reject", f"a closing remark ({found.group(0)!r}): no yes")
    known = AFFIRMATIVE | NEUTRAL | own  # once: a reply may have 2,000 words
    unknown = [w for w in words if w not in known and not w.isdigit()
               and not _ORDER_ID.fullmatch(w)]  # fmt: skip
    affirmed = (
        _affirmed(words)
        or any(p in text for p in AFFIRMATIVE_PHRASES)
        or (words == [w for w in words if w in ALONE] or _imperative(words, own))
    )
    if affirmed and not unknown:
        return ConsentReading("approve", "an unambiguous yes to the proposed action")
    return ConsentReading("unclear", f"not a plain yes ({', '.join(unknown[:3]) or 'no yes'})")


def _affirmed(words: list[str]) -> bool:
    return any(w in AFFIRMATIVE for w in words)


def _imperative(words: list[str], own: set[str]) -> bool:
    """Whether the reply orders the proposed action itself ("cancel it", "please freeze it")."""
    rest = words[1:] if words[:1] == ["please"] else words
    return bool(rest) and rest[0] in own


def _without_idioms(text: str) -> str:
    """The reply without phrases whose "don't"/"not" is no refusal ("I don't know")."""
    return _NOT_REFUSALS.sub(" ", text)


def _names_something_else(text: str, words: list[str], action: str, target: str | None) -> bool:
    """Another order id, another action's verb, or another request."""
    named = {m.group(1) for m in _ORDER_ID.finditer(text)}
    if named and target is not None and named != {target.lower().lstrip("#").lstrip("w")}:
        return True
    own = set(ACTION_VERBS.get(action, "").split())
    others = {w for a, ws in ACTION_VERBS.items() if a != action for w in ws.split()} - own
    if others & set(words):
        return True
    wanted = re.sub(rf"\b(i want to|i'?d like to) ({'|'.join(own) or '-'})\b", " ", text)
    return _REQUEST.search(wanted) is not None


def evaluate(rows: list[dict[str, str]], verdicts: list[str] | None = None) -> dict[str, Any]:
    """Measure the reader on labelled replies (``{"reply", "label", "action"}`` rows).

    ``verdicts`` are the reader's verdicts on the rows when already read (an evaluation run's
    outputs); by default each reply is read here.

    Returns:
        ``{"n", "approve_precision", "approve_recall", "accuracy", "by_label": {label: n},
        "confusion": {"label→verdict": n}, "false_approvals": [reply], "missed_approvals":
        [reply]}``; precision is 1.0 when nothing was approved wrongly.
    """
    confusion: Counter[str] = Counter()
    false_approvals, missed = [], []
    if verdicts is None:
        verdicts = [read_consent(row["reply"], row["action"]).verdict for row in rows]
    for row, verdict in zip(rows, verdicts, strict=True):
        confusion[f"{row['label']}→{verdict}"] += 1
        if verdict == "approve" and row["label"] != "approve":
            false_approvals.append(row["reply"])
        elif verdict != "approve" and row["label"] == "approve":
            missed.append(row["reply"])
    approved = sum(n for k, n in confusion.items() if k.endswith("→approve"))
    labelled = sum(1 for r in rows if r["label"] == "approve")
    right = sum(n for k, n in confusion.items() if k.split("→")[0] == k.split("→")[1])
    return {
        "n": len(rows),
        "approve_precision": round((approved - len(false_approvals)) / approved, 4)
        if approved
        else 1.0,
        "approve_recall": round((labelled - len(missed)) / labelled, 4) if labelled else 1.0,
        "accuracy": round(right / len(rows), 4) if rows else 0.0,
        "by_label": dict(Counter(r["label"] for r in rows)),
        "confusion": dict(sorted(confusion.items())),
        "false_approvals": false_approvals,
        "missed_approvals": missed,
    }


def read_labelled(path: Path) -> list[dict[str, str]]:
    """Labelled replies from a CSV with columns ``reply,label,action``.

    Raises:
        InvalidRequestError: a missing column or an unknown label.
    """
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = {"approve", "reject", "unclear", "new_request"}
    for n, row in enumerate(rows, start=2):
        if not {"reply", "label", "action"} <= set(row) or row["label"] not in labels:
            raise InvalidRequestError(
                f"{path.name}:{n}: expected reply,label,action with a label in {sorted(labels)}"
            )
    return rows
