"""Sub-signals and entities read from a customer message with small, auditable lexicons.

Every function here is deterministic and explains itself through the cues it matched, so a human
reviewing a decision can see why a message counted as frustrated or as a request for a human.

Frustration, urgency, vulnerability and positivity are each a noisy-OR of cue weights:
``1 − Π(1 − w_i)`` over the matched cues, in [0, 1]. Sentiment is ``positivity − frustration``,
in [−1, 1].
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

#: Frustration cues and their weights (probability-like, combined by noisy-OR).
FRUSTRATION_CUES: dict[str, float] = {
    r"\bridiculous\b": 0.5,
    r"\bunacceptable\b": 0.55,
    r"\bterrible\b": 0.4,
    r"\bawful\b": 0.4,
    r"\bhorrible\b": 0.4,
    r"\bworst\b": 0.5,
    r"\bfurious\b": 0.7,
    r"\bangry\b": 0.55,
    r"\bfed up\b": 0.55,
    r"\bfrustrat\w*": 0.45,
    r"\bannoy\w*": 0.35,
    r"\bdisappoint\w*": 0.3,
    r"\bupset\b": 0.4,
    r"\bsick of\b": 0.55,
    r"\bwaste of (my )?time\b": 0.5,
    r"\bstill (not|no|hasn'?t|haven'?t)\b": 0.25,
    r"\bagain\b": 0.15,
    r"\bscam\b": 0.6,
    r"\bwtf\b|\bdamn\b|\bhell\b": 0.5,
    r"!{2,}": 0.25,
}

URGENCY_CUES: dict[str, float] = {
    r"\burgent(ly)?\b": 0.6,
    r"\basap\b|\bas soon as possible\b": 0.55,
    r"\bimmediately\b|\bright now\b|\bright away\b": 0.5,
    r"\bemergency\b": 0.7,
    r"\btoday\b|\btonight\b": 0.25,
    r"\b(stolen|fraud\w*|unauthori[sz]ed|hacked|scam(med)?)\b": 0.6,
    r"\b(lost|missing) (my )?card\b": 0.5,
    r"\blocked out\b|\bcan'?t access\b": 0.45,
    r"\bdeadline\b|\bcan'?t wait\b": 0.4,
}

VULNERABILITY_CUES: dict[str, tuple[str, float]] = {
    r"\b(passed away|died|death|funeral|bereave\w*|widow\w*)\b": ("bereavement", 0.8),
    r"\b(lost my job|unemployed|laid off|redundan\w*)\b": ("hardship", 0.6),
    r"\b(can'?t afford|cannot afford|can'?t pay|cannot pay|hardship|struggling to pay|"
    r"behind on (my )?payments|debt)\b": ("hardship", 0.6),
    r"\b(hospital\w*|medical bills|disabilit\w*|illness|cancer)\b": ("health", 0.5),
}

POSITIVE_CUES: dict[str, float] = {
    r"\bthank(s| you)\b": 0.4,
    r"\b(great|perfect|awesome|excellent|wonderful)\b": 0.45,
    r"\b(appreciate|love it|happy|glad)\b": 0.4,
}


def _noisy_or(cues: dict[str, float], text: str, tag: str, matched: list[str]) -> float:
    keep = 1.0
    for pattern, weight in cues.items():
        if re.search(pattern, text, re.I):
            keep *= 1.0 - weight
            matched.append(f"{tag}:{pattern}")
    return round(1.0 - keep, 4)


_HUMAN = re.compile(
    r"\b(human|real person|person|representative|rep|agent|manager|supervisor|operator|someone|"
    r"somebody|staff)\b",
    re.I,
)
_HUMAN_VERB = re.compile(
    r"\b(talk|speak|transfer|connect|put me through|get me|want|need|escalate|prefer|rather)\b",
    re.I,
)
_NOT_BOT = re.compile(r"\b(not|no|don'?t want)\b.{0,12}\b(bot|robot|machine|ai)\b", re.I)
_OPERATOR = re.compile(r"^\s*(operator|agent|human|representative)[\s!.]*$", re.I)


def mentions_a_person(text: str) -> bool:
    """Whether a message names a person to talk to ("a person please", "someone", "an agent")."""
    return _HUMAN.search(text) is not None


CHURN_CUES = [
    r"\bclose my account\b",
    r"\bdelete my account\b",
    r"\bcancel my (account|membership|subscription)\b",
    r"\bswitch(ing)? to\b",
    r"\bcompetitor\b",
    r"\bnever (shop|order|buy|come back)\w*\b",
    r"\b(take|taking) my business elsewhere\b",
    r"\blast time I (shop|order|buy)\w*\b",
    r"\bI'?m (leaving|done with you)\b",
    r"\bgo(ing)? elsewhere\b",
]

# Every pattern below runs on customer text of up to 4,000 characters: repeats are bounded (an
# e-mail's local part 64, its domain 255) and no two quantifiers can match the same characters,
# so a search is linear in the text (``tests/test_redos.py`` holds each to 50 ms); a quantifier
# followed by a character it cannot match is possessive (``{1,64}+@``): nothing to give back.
EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}+@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,63}\b")
PHONE_RE = re.compile(r"(?<![\w#])\+?\d[\d\s().-]{8,40}\d\b")
ZIP_RE = re.compile(r"\b\d{5}\b")
ORDER_RE = re.compile(r"#?\b[Ww](\d{7})\b")
ACCOUNT_ID_RE = re.compile(
    r"\b(?:user|account|customer)(?:\s{0,5}(?:id|number))?(?:\s{0,5}(?:is|:|=))?\s{0,5}"
    r"([a-z][a-z0-9]{0,40}_[a-z0-9_]{1,60})\b",
    re.I,
)
UNDERSCORE_ID_RE = re.compile(r"\b([a-z]{1,40}_[a-z]{1,40}_\d{3,12})\b", re.I)
#: A date written with digits (a date of birth while verifying): ``03/15/1992``, ``1992-03-15``.
NUMERIC_DATE_RE = re.compile(r"(?<!\d)\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}(?!\d)")


def without_identifiers(text: str) -> str:
    """The message with its identifiers blanked; order ids stay (they name what is asked about).

    Emails, phone numbers, user ids, zip codes and numeric dates become a space.

    What the customer asks is read from this text, so a question reads the same whoever's email,
    real or invented, comes with it: the answer to an email that is nobody's is the same, word
    for word, as to one that is a customer's (the verification facts are read from the message
    itself, by the identify node).
    """
    text = EMAIL_RE.sub(" ", text)
    text = NUMERIC_DATE_RE.sub(" ", text)
    text = PHONE_RE.sub(" ", text)
    text = UNDERSCORE_ID_RE.sub(
        " ", ACCOUNT_ID_RE.sub(lambda m: m.group(0).replace(m.group(1), " "), text)
    )
    return ZIP_RE.sub(" ", text)


@dataclass
class Signals:
    """Sub-signals of one message.

    Attributes:
        frustration: 0..1 (noisy-OR of matched cue weights).
        human_request: the customer explicitly asked for a person.
        churn_threat: the customer threatened to leave.
        urgency: 0..1 (noisy-OR of urgency cues: "urgent", "stolen", "right now"...).
        vulnerability: 0..1, with ``vulnerability_kind`` ``bereavement`` | ``hardship`` |
            ``health`` (the strongest matched) or ``None``.
        sentiment: −1..1, positivity minus frustration.
        cues: the cues that matched, for the audit trail.
    """

    frustration: float = 0.0
    urgency: float = 0.0
    vulnerability: float = 0.0
    vulnerability_kind: str | None = None
    sentiment: float = 0.0
    human_request: bool = False
    churn_threat: bool = False
    cues: list[str] = field(default_factory=list)


def detect_signals(text: str) -> Signals:
    """Compute sub-signals of a message (see module docstring for the formula)."""
    signals = Signals()
    keep = 1.0
    for pattern, weight in FRUSTRATION_CUES.items():
        if re.search(pattern, text, re.I):
            keep *= 1.0 - weight
            signals.cues.append(f"frustration:{pattern}")
    shouted = re.findall(r"\b[A-Z]{4,}\b", text)
    if shouted:
        keep *= 1.0 - 0.3
        signals.cues.append("frustration:CAPS")
    signals.frustration = round(1.0 - keep, 4)
    signals.urgency = _noisy_or(URGENCY_CUES, text, "urgency", signals.cues)
    keep, strongest = 1.0, 0.0
    for pattern, (kind, weight) in VULNERABILITY_CUES.items():
        if re.search(pattern, text, re.I):
            keep *= 1.0 - weight
            signals.cues.append(f"vulnerability:{kind}")
            if weight > strongest:
                strongest, signals.vulnerability_kind = weight, kind
    signals.vulnerability = round(1.0 - keep, 4)
    positivity = _noisy_or(POSITIVE_CUES, text, "positive", signals.cues)
    signals.sentiment = round(max(-1.0, min(1.0, positivity - signals.frustration)), 4)
    if (
        _OPERATOR.match(text)
        or _NOT_BOT.search(text)
        or (_HUMAN.search(text) and _HUMAN_VERB.search(text))
    ):
        signals.human_request = True
        signals.cues.append("human_request")
    for pattern in CHURN_CUES:
        if re.search(pattern, text, re.I):
            signals.churn_threat = True
            signals.cues.append(f"churn:{pattern}")
            break
    return signals


def extract_order_ids(text: str) -> list[str]:
    """Order ids named in a message, normalised to ``#W1234567``, in order of appearance."""
    seen: list[str] = []
    for digits in ORDER_RE.findall(text):
        oid = f"#W{digits}"
        if oid not in seen:
            seen.append(oid)
    return seen


def extract_identifiers(text: str) -> dict[str, str]:
    """Identifiers a customer typed: ``email``, ``phone``, ``customer_id``, ``zip``.

    Name matching for name + zip needs the candidate customers, so it happens in the identify node.
    """
    found: dict[str, str] = {}
    if m := EMAIL_RE.search(text):
        found["email"] = m.group(0)
    without_email = EMAIL_RE.sub(" ", text)
    if m := PHONE_RE.search(ORDER_RE.sub(" ", without_email)):
        digits = re.sub(r"\D", "", m.group(0))
        if 10 <= len(digits) <= 15:
            found["phone"] = m.group(0)
    if m := ACCOUNT_ID_RE.search(without_email) or UNDERSCORE_ID_RE.search(without_email):
        found["customer_id"] = m.group(1)
    if m := ZIP_RE.search(ORDER_RE.sub(" ", without_email)):
        found["zip"] = m.group(0)
    return found


_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]*")
_INTRODUCTION_WORDS = frozenset(
    "hi hello hey hiya good morning afternoon evening there it's its it is this i'm i am im my "
    "name email e-mail mail address phone mobile cell number no user account customer id "
    "zip zipcode postal code and here's here your you yes sure ok okay please thanks thank "
    "the a me date of birth born dob was on i live at home verification".split()
)


def introduction_only(text: str) -> bool:
    """Whether a message only introduces the customer ("Hi, my email is …", "I'm Ana Ruiz, 12345").

    After removing identifiers and introduction words, only capitalised words inside a sentence
    (a name) or nothing may remain; any other word ("card", "broken", "Cancel" opening a
    sentence) or a question makes it a request.
    """
    if "?" in text:
        return False
    rest = UNDERSCORE_ID_RE.sub(" ", EMAIL_RE.sub(" ", text))
    rest = ZIP_RE.sub(" ", PHONE_RE.sub(" ", rest))
    previous, end = "", 0  # the last non-space character before the word ("" at the start)
    for m in _WORD_RE.finditer(rest):
        if gap := rest[end : m.start()].rstrip():
            previous = gap[-1]
        word, end = m.group(0), m.end()
        if word.lower() not in _INTRODUCTION_WORDS:
            starts_sentence = previous in ("", ".", "!", "?")
            if not word[0].isupper() or starts_sentence:  # "Cancel my order" is no name
                return False
        previous = word[-1]
    return True


_CLOSING = re.compile(
    r"\b(thanks|thank you|thx|cheers|bye|goodbye|that'?s all|that is all|nothing else|"
    r"that'?s it|all set|all good|get back to you|talk (?:to you )?later|have a (?:good|nice))\b",
    re.I,
)


_ENDING_WORDS = frozenset(
    "ok okay perfect great awesome excellent wonderful fine good nice cool alright right sure "
    "so very much a lot again for the your help it that this on then now i i'll ill we we'll "
    "you you'll and oh well everything all day really appreciate appreciated mate ".split()
)


def is_closing(text: str) -> bool:
    """Thanks, a goodbye, "that's all", "I'll get back to you": an ending, not a request.

    Short messages only (at most 12 words), never a question, and nothing but the ending and
    pleasantries ("Perfect, that's all."); "thanks, I lost my card" is a request.
    """
    if len(text.split()) > 12 or "?" in text or _CLOSING.search(text) is None:
        return False
    rest = _CLOSING.sub(" ", text)
    others = [w for w in re.findall(r"[a-z][a-z']*", rest.lower()) if w not in _ENDING_WORDS]
    return not others


def cancel_reason(text: str) -> str | None:
    """The cancellation reason a message gives, if it is one the retail policy accepts.

    Returns:
        ``"no longer needed"``, ``"ordered by mistake"`` or ``None``.
    """
    if re.search(r"\bno longer need|\bdon'?t need|\bnot needed\b", text, re.I):
        return "no longer needed"
    if re.search(r"\bby mistake\b|\baccident|\bwrong order\b", text, re.I):
        return "ordered by mistake"
    return None


#: Street types an address line ends with, as a trie ("st", "street", "ave", "avenue"...), behind
#: a one-character look-ahead so most positions are ruled out at once.
_STREET_TYPE = (
    r"(?=[abcdlprstw])(?:st(?:reet)?|ave(?:nue)?|r(?:oa)?d|l(?:ane|n)|dr(?:ive)?|"
    r"b(?:oulevard|lvd)|way|c(?:our)?t|p(?:l(?:ace)?|arkway|kwy)|terrace)"
)
#: ``<number> <street> [<apt/suite>], <city>, <ST> <zip>``, linear in the text. The street line
#: is up to six words of up to 20 characters, then a word ending in a street type ("Maple
#: Drive", "Broadway"); words and the spaces between them are disjoint and taken possessively,
#: so a line splits into words one way only, and no two quantifiers share a run of spaces (each
#: part starts with a character the one before it cannot end with). Every repeat is bounded.
_ADDRESS_RE = re.compile(
    r"(?P<address1>(?<![\w#])\d{1,6}\s{1,10}(?:[A-Za-z0-9.'-]{1,20}+ {1,5}+){0,6}?"
    rf"[A-Za-z0-9.'-]{{0,20}}?{_STREET_TYPE}\.?)"
    r"(?:,?\s{0,10}(?P<address2>(?:apt|apartment|suite|ste|unit|#)\.?\s{0,10}[\w-]{1,20}))?"
    r",\s{0,10}(?P<city>[A-Za-z.'-][A-Za-z .'-]{0,40}?)"
    r",\s{0,10}(?P<state>[A-Z]{2})\s{1,10}(?P<zip>\d{5})\b",
    re.I,
)
#: How every address :data:`_ADDRESS_RE` reads ends (``", IL 62704"``): the cheap test of
#: whether a message gives an address at all.
_STATE_ZIP_RE = re.compile(r",\s{0,10}[A-Z]{2}\s{1,10}\d{5}\b", re.I)
#: The most characters before its ``", ST 12345"`` tail an address :data:`_ADDRESS_RE` reads can
#: start (number 6 + spaces 10 + six words 150 + street word 30 + apartment 51 + city 52), and
#: the most tails of one message tried.
_ADDRESS_SPAN = 300
_ADDRESS_TRIES = 5


def parse_address(text: str) -> dict[str, str] | None:
    """A US postal address written in a message, or ``None``.

    Accepts ``"<number> <street> [<apt/suite>], <city>, <ST> <zip>"``, the shape of the retail
    data's addresses (tau2-bench retail ``{address1, address2, city, state, zip, country}``).
    Only a message that has the ``", <ST> <zip>"`` ending is read, and only the 300 characters
    before each of its first five such endings (the longest address the pattern reads): the
    cost is bounded whatever the message's length (a few milliseconds at most; nothing for a
    message without one).

    Returns:
        ``{"address1", "address2", "city", "state", "zip", "country": "USA"}``.
    """
    m: re.Match[str] | None = None
    for tail in itertools.islice(_STATE_ZIP_RE.finditer(text), _ADDRESS_TRIES):
        window = text[max(0, tail.start() - _ADDRESS_SPAN - 1) : tail.end()]  # 1: look-behind
        if (m := _ADDRESS_RE.search(window)) is not None:
            break
    if m is None:
        return None
    return {
        "address1": m.group("address1").strip(),
        "address2": (m.group("address2") or "").strip(),
        "city": m.group("city").strip(),
        "state": m.group("state").upper(),
        "zip": m.group("zip"),
        "country": "USA",
    }
