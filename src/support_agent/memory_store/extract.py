"""Facts the memory pipeline reads from a finished conversation (deterministic, no LLM).

- language: ``lingua`` (lingua-language-detector, built for short text; deterministic) over the
  languages in :data:`LANGUAGES`, accepted only with confidence ≥ 0.60 over ≥ 20 characters.
- timezone: an explicit mention (IANA name or a US abbreviation such as EST/PST), else the primary
  IANA zone of the customer's US state of address (table below, from the IANA tz database's zone
  assignments per state; states split across zones take the zone of most of their population).
- mood: from the sub-signals of the last customer turns: frustrated / annoyed / satisfied /
  neutral.
- tone preference: ``formal`` (salutations), ``brief`` (≤ 6 words per message on average) or
  ``friendly``.
- personal details: explicit statements of preference ("I prefer …", "contact me by …"). They
  are the customer's *claims*, stored marked as theirs (source ``customer``, date; see
  ``memory_store.layers``), never as facts: a claim naming an email or phone that is not the
  customer's own on file is dropped (:func:`claims_on_file`: "contact me only at attacker@…"
  would otherwise sit in memory as if it were the customer's contact), and at most
  :data:`MAX_CLAIMS` are kept.
"""

from __future__ import annotations

import re
import threading
from typing import Any

_LANG_LOCK = threading.Lock()
_lingua: Any = None

#: Languages the detector chooses among (a closed set keeps it fast and confident).
LANGUAGES = (
    "ENGLISH", "SPANISH", "FRENCH", "GERMAN", "ITALIAN", "PORTUGUESE", "DUTCH", "VIETNAMESE",
    "CHINESE", "JAPANESE", "KOREAN", "RUSSIAN", "ARABIC", "HINDI", "TURKISH", "POLISH", "SWEDISH",
    "INDONESIAN", "TAGALOG", "UKRAINIAN",
)  # fmt: skip

ABBREVIATIONS = {
    "est": "America/New_York", "edt": "America/New_York", "eastern": "America/New_York",
    "cst": "America/Chicago", "cdt": "America/Chicago", "central": "America/Chicago",
    "mst": "America/Denver", "mdt": "America/Denver", "mountain": "America/Denver",
    "pst": "America/Los_Angeles", "pdt": "America/Los_Angeles", "pacific": "America/Los_Angeles",
    "gmt": "Etc/GMT", "utc": "Etc/UTC", "cet": "Europe/Paris", "ist": "Asia/Kolkata",
}  # fmt: skip

STATE_TZ = {
    "AL": "America/Chicago", "AK": "America/Anchorage", "AZ": "America/Phoenix",
    "AR": "America/Chicago", "CA": "America/Los_Angeles", "CO": "America/Denver",
    "CT": "America/New_York", "DE": "America/New_York", "DC": "America/New_York",
    "FL": "America/New_York", "GA": "America/New_York", "HI": "Pacific/Honolulu",
    "ID": "America/Boise", "IL": "America/Chicago", "IN": "America/Indiana/Indianapolis",
    "IA": "America/Chicago", "KS": "America/Chicago", "KY": "America/New_York",
    "LA": "America/Chicago", "ME": "America/New_York", "MD": "America/New_York",
    "MA": "America/New_York", "MI": "America/Detroit", "MN": "America/Chicago",
    "MS": "America/Chicago", "MO": "America/Chicago", "MT": "America/Denver",
    "NE": "America/Chicago", "NV": "America/Los_Angeles", "NH": "America/New_York",
    "NJ": "America/New_York", "NM": "America/Denver", "NY": "America/New_York",
    "NC": "America/New_York", "ND": "America/Chicago", "OH": "America/New_York",
    "OK": "America/Chicago", "OR": "America/Los_Angeles", "PA": "America/New_York",
    "RI": "America/New_York", "SC": "America/New_York", "SD": "America/Chicago",
    "TN": "America/Chicago", "TX": "America/Chicago", "UT": "America/Denver",
    "VT": "America/New_York", "VA": "America/New_York", "WA": "America/Los_Angeles",
    "WV": "America/New_York", "WI": "America/Chicago", "WY": "America/Denver",
}  # fmt: skip

_IANA = re.compile(r"\b((?:America|Europe|Asia|Africa|Australia|Pacific)/[A-Z][A-Za-z_]+)\b")
_PREFERENCE = re.compile(
    r"\b(I (?:would |'d )?prefer [^.!?]{3,60}|(?:please )?(?:only )?(?:contact|reach|call|email|"
    r"text) me (?:by|via|on|at|after|before) [^.!?]{2,40}|I'?m (?:usually )?(?:available|free) "
    r"[^.!?]{3,40})",
    re.I,
)
_POSITIVE = re.compile(r"\b(thanks?|thank you|great|perfect|appreciate|awesome|excellent)\b", re.I)
_FORMAL = re.compile(r"\b(dear|sir|madam|regards|sincerely|kindly)\b", re.I)


def _detector() -> Any:
    """The lingua detector, built once per process (≈1.4 s, models preloaded)."""
    global _lingua
    with _LANG_LOCK:
        if _lingua is None:
            from lingua import Language, LanguageDetectorBuilder

            _lingua = (
                LanguageDetectorBuilder.from_languages(*(getattr(Language, n) for n in LANGUAGES))
                .with_preloaded_language_models()
                .build()
            )
    return _lingua


def detect_language(lines: list[str]) -> str | None:
    """ISO 639-1 code of the customer's language, or ``None`` when too short or uncertain."""
    text = " ".join(lines).strip()
    if len(text) < 20:
        return None
    best = _detector().compute_language_confidence_values(text)[0]
    if best.value < 0.60:
        return None
    return str(best.language.iso_code_639_1.name).lower()


def detect_timezone(lines: list[str], state: str | None) -> str | None:
    """IANA timezone from an explicit mention, else from the US state of address."""
    text = " ".join(lines)
    if m := _IANA.search(text):
        return m.group(1)
    for word in re.findall(r"[A-Za-z]+", text):
        zone = ABBREVIATIONS.get(word.lower())
        if zone and (word.isupper() or word.lower() in ("eastern", "central", "pacific")):
            return zone
    return STATE_TZ.get((state or "").upper())


def detect_mood(frustrations: list[float], lines: list[str]) -> str:
    """``frustrated`` | ``annoyed`` | ``satisfied`` | ``neutral`` from the last turns."""
    last = frustrations[-2:] if frustrations else [0.0]
    peak = max(last)
    if peak >= 0.5:
        return "frustrated"
    if peak >= 0.25:
        return "annoyed"
    if lines and _POSITIVE.search(lines[-1]):
        return "satisfied"
    return "neutral"


def detect_tone(lines: list[str]) -> str | None:
    """``formal`` | ``brief`` | ``friendly`` (``None`` with no customer messages)."""
    if not lines:
        return None
    if any(_FORMAL.search(line) for line in lines):
        return "formal"
    words = sum(len(line.split()) for line in lines) / len(lines)
    return "brief" if words <= 6 else "friendly"


#: Most customer claims kept per customer (the oldest are dropped first).
MAX_CLAIMS = 20
#: A phone-like run: 7 to 15 digits with separators, not part of a word or an id (``#W123…``).
#: Bounded and linear: the separators are one character between digits.
_PHONE_RUN = re.compile(r"(?<![\w#])\+?\d(?:[ .()-]{0,2}\d){6,14}(?!\w)")


def contact_details(text: str) -> tuple[set[str], set[str]]:
    """The emails and phone numbers a text names, normalised (linear time).

    Emails: every whitespace-separated token holding an ``@`` (trimmed of punctuation,
    lower-cased); anything with an ``@`` counts, so an obfuscated address is still caught.
    Phones: runs of 7–15 digits with separators, as digits only.

    Returns:
        ``(emails, phones)``.
    """
    emails = {token.strip("<>()[]{}\"'.,;:!?").lower() for token in text.split() if "@" in token}
    phones = {re.sub(r"\D", "", m.group(0)) for m in _PHONE_RUN.finditer(text)}
    return emails, phones


def _same_phone(a: str, b: str) -> bool:
    """Two digit strings are one phone: equal, or equal in their last 10 (a country code or not)."""
    return a == b or (len(a) >= 10 and len(b) >= 10 and a[-10:] == b[-10:])


def claims_on_file(details: list[str], emails: set[str], phones: set[str]) -> list[str]:
    """The claims that name no contact detail other than the customer's own on file.

    Args:
        details: claims as :func:`personal_details` found them.
        emails: the customer's emails on file, lower-cased.
        phones: the customer's phones on file, as digits.

    Returns:
        ``details`` without any claim naming an email or phone not in ``emails`` / ``phones``,
        in order.
    """
    kept = []
    for claim in details:
        named_emails, named_phones = contact_details(claim)
        if named_emails - emails:
            continue
        if any(not any(_same_phone(p, own) for own in phones) for p in named_phones):
            continue
        kept.append(claim)
    return kept


def personal_details(lines: list[str]) -> list[str]:
    """Explicit preference statements, trimmed, in order of appearance."""
    found: list[str] = []
    for line in lines:
        for m in _PREFERENCE.finditer(line):
            fact = m.group(1).strip().rstrip(",;")
            if fact not in found:
                found.append(fact)
    return found
