"""The verification facts a customer typed, and whether each matches the record on file.

Pure functions, no I/O. Every pattern here is linear in the message (bounded repeats, no
overlapping quantifiers) and reads at most the first :data:`SCAN_CHARS` characters: a 4,000
character hostile message costs microseconds.

Dates of birth are read in the shapes people type them: ``03/15/1992``, ``3-15-1992``,
``1992-03-15``, ``March 15, 1992``, ``15 March 1992`` (month-first for slashed dates, as in the
tau2-bench banking records, which store ``MM/DD/YYYY``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from support_agent.crm.loader import normalize_phone
from support_agent.intents.signals import extract_identifiers

#: Characters of a message read for facts: identifiers sit at the start of what people type.
SCAN_CHARS = 1000

_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december"
    .split(), start=1)}  # fmt: skip
_MONTH_WORD = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]{0,6}\.?"
_NUMERIC_MDY = re.compile(r"(?<!\d)(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?!\d)")
_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_MONTH_D_Y = re.compile(rf"\b{_MONTH_WORD} (\d{{1,2}})(?:st|nd|rd|th)?,? (\d{{4}})\b", re.I)
_D_MONTH_Y = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?{_MONTH_WORD},? (\d{{4}})\b", re.I)
#: A one-time code: six digits standing alone.
_CODE = re.compile(r"(?<![\d-])(\d{6})(?![\d-])")
#: A word: letters (any script) or digits, at most 40 of them.
_WORD = re.compile(r"[^\W_]{1,40}")
#: Where a message introduces a name ("I'm Ana Ruiz", "my name is …").
NAME_HINT = re.compile(
    r"\b(?:i'?m|i am|my name is|name is|name:|this is|it's|its)\s+[A-Za-z][a-z'-]{1,30}"
    r"\s+[A-Za-z][a-z'-]{1,30}",
    re.I,
)
#: A street address: a house number, up to four words and a street type.
ADDRESS_HINT = re.compile(
    r"\b\d{1,6}\s(?:[A-Za-z]{1,20}\s){1,4}(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|"
    r"boulevard|blvd|way|court|ct|place|pl|terrace|parkway|pkwy|highway|hwy|circle|cir)\b",
    re.I,
)
#: Where a list of names or facts splits: punctuation, "or", "and", a colon.
_CHUNK = re.compile(r"[,;.!?:\n/|]+|\s(?:or|and|&)\s", re.I)
#: Words that open an introduction or are no part of a name.
_NOT_NAME = frozenset(
    "hi hello hey there good morning afternoon evening i im i'm am my name is this it's its it "
    "here thanks thank you please yes no ok okay sure the a an me call zip code email phone "
    "number user id account date birth born dob live at from in on of".split()
)
#: The years a date of birth may fall in: 1900 to ten years ago.
_OLDEST_BIRTH_YEAR = 1900


def _month(word: str) -> int | None:
    word = word.lower().rstrip(".")
    return next((n for name, n in _MONTHS.items() if name.startswith(word[:3])), None)


def _valid(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def dates_in(text: str) -> list[date]:
    """Calendar dates written in a message (see the module docstring for the shapes)."""
    text = text[:SCAN_CHARS]
    found: list[date] = []
    for m in _NUMERIC_MDY.finditer(text):
        found.append(_valid(int(m.group(3)), int(m.group(1)), int(m.group(2))) or date.min)
    for m in _ISO.finditer(text):
        found.append(_valid(int(m.group(1)), int(m.group(2)), int(m.group(3))) or date.min)
    for m in _MONTH_D_Y.finditer(text):
        month = _month(m.group(1))
        found.append(_valid(int(m.group(3)), month or 0, int(m.group(2))) or date.min)
    for m in _D_MONTH_Y.finditer(text):
        month = _month(m.group(2))
        found.append(_valid(int(m.group(3)), month or 0, int(m.group(1))) or date.min)
    return [d for d in found if d != date.min]


def code_in(text: str) -> str | None:
    """A 6-digit one-time code typed alone in a message, or ``None``."""
    m = _CODE.search(text[:SCAN_CHARS])
    return None if m is None else m.group(1)


@dataclass(frozen=True)
class Given:
    """The facts one message (and the request) gives, by kind.

    A fact proves something only when the message gives one value of it: a message listing
    several dates of birth, several names or several addresses proves none of them (one attempt,
    one guess).

    Attributes:
        email, phone, customer_id, zip: as typed (:func:`extract_identifiers`), or ``None``.
        dates: the dates written (a date of birth is one of them).
        code: a 6-digit one-time code, or ``None``.
        words: the message's lower-cased words (addresses are matched on them).
        sequence: the same words in order (a name is matched as consecutive words).
        names: how many name-like phrases the message holds (two or three words that are no
            common word, between punctuation, "and" or "or").
        addresses: how many street addresses the message holds.
        text: the message (its first :data:`SCAN_CHARS` characters).
    """

    email: str | None = None
    phone: str | None = None
    customer_id: str | None = None
    zip: str | None = None
    dates: tuple[date, ...] = ()
    code: str | None = None
    words: frozenset[str] = frozenset()
    sequence: tuple[str, ...] = ()
    names: int = 0
    addresses: int = 0
    text: str = ""

    @property
    def birth_dates(self) -> set[date]:
        """The dates that could be a date of birth (1900 to ten years ago)."""
        latest = date.today().year - 10
        return {d for d in self.dates if _OLDEST_BIRTH_YEAR <= d.year <= latest}

    def kinds(self) -> set[str]:
        """The kinds of fact given (``date_of_birth`` for any date).

        Names and addresses are known only against a record.
        """
        out = {k for k in ("email", "phone", "customer_id", "zip") if getattr(self, k)}
        if self.birth_dates:
            out.add("date_of_birth")
        if self.names or NAME_HINT.search(self.text):
            out.add("name")
        if self.addresses:
            out.add("address")
        if self.code:
            out.add("one_time_code")
        return out


def given_in(text: str, request: dict[str, str] | None = None) -> Given:
    """The facts a message gives, with identifiers the request carried.

    Args:
        text: the customer's message.
        request: identifiers from the request (``email``, ``phone``, ``customer_id``, ``name``,
            ``zip``); they are read like typed ones.
    """
    text = text[:SCAN_CHARS]
    found = {**extract_identifiers(text), **{k: v for k, v in (request or {}).items() if v}}
    if "name" in found:
        text = f"{text} {found['name']}"
    code = code_in(text)
    sequence = tuple(_WORD.findall(text.lower()))
    return Given(
        email=found.get("email"),
        phone=found.get("phone"),
        customer_id=found.get("customer_id"),
        zip=found.get("zip"),
        dates=tuple(dates_in(text)),
        code=code,
        words=frozenset(sequence),
        sequence=sequence,
        names=name_phrases(text),
        addresses=len(ADDRESS_HINT.findall(text)),
        text=text,
    )


def name_phrases(text: str) -> int:
    """How many name-like phrases a message holds.

    The message is cut at punctuation, "and" and "or"; a piece counts when, after the words
    that open an introduction ("hi", "I'm", "my name is"), two to four words are left and none
    is a common word. "Hi, I'm Ana Ruiz, zip 12345" holds one; a list of names holds many.
    """
    count = 0
    for piece in _CHUNK.split(text[:SCAN_CHARS]):
        words = _WORD.findall(piece.lower())
        while words and words[0] in _NOT_NAME:
            words.pop(0)
        if 2 <= len(words) <= 4 and not any(w in _NOT_NAME or w.isdigit() for w in words):
            count += 1
    return count


def _consecutive(needle: list[str], hay: tuple[str, ...]) -> bool:
    n = len(needle)
    return n > 0 and any(list(hay[i : i + n]) == needle for i in range(len(hay) - n + 1))


@dataclass(frozen=True)
class Record:
    """What the systems of record hold to verify one customer against.

    Attributes:
        customer_id: the customer.
        first_name, last_name: the name on file.
        emails, phones: the contact details on file (normalised): the customer row's and the
            identities the systems of record hold (``source = 'record'``: loaded, or moved by an
            owner's merge); never one a staff member linked.
        email: the customer row's email (where a code asked for again goes).
        zip: the zip code on file.
        date_of_birth: the date of birth on file.
        address_words: the postal address on file as lower-cased words (house number, street,
            city, state, zip).
    """

    customer_id: str
    first_name: str
    last_name: str
    emails: frozenset[str]
    phones: frozenset[str]
    zip: str | None
    email: str | None = None
    date_of_birth: date | None = None
    address_words: tuple[str, ...] = ()


#: Street-type words and their common abbreviations (one canonical form each).
_STREET_TYPES = {
    "st": "street", "ave": "avenue", "av": "avenue", "rd": "road", "ln": "lane", "dr": "drive",
    "blvd": "boulevard", "ct": "court", "pl": "place", "pkwy": "parkway", "hwy": "highway",
    "ter": "terrace", "cir": "circle",
}  # fmt: skip


def _canon(words: set[str] | frozenset[str] | tuple[str, ...]) -> set[str]:
    return {_STREET_TYPES.get(w, w) for w in words}


def address_matches(record_words: tuple[str, ...], given: frozenset[str]) -> bool:
    """Whether the message gives the address on file.

    That is its house number, every word of the street name, and the city or the zip code.

    ``record_words`` is the address line's words in order (``742 maple street austin tx 78701``);
    the street name is the words after the number up to the street type.
    """
    if not record_words or not record_words[0].isdigit():
        return False
    words = _canon(given)
    number, rest = record_words[0], [_STREET_TYPES.get(w, w) for w in record_words[1:]]
    street: list[str] = []
    for word in rest:
        street.append(word)
        if word in _STREET_TYPES.values():
            break
    place = [w for w in rest[len(street) :] if len(w) > 2 or w.isdigit()]
    return (
        number in words
        and all(w in words for w in street if w not in _STREET_TYPES.values())
        and any(w in words for w in place)
    )


def matching(record: Record, given: Given) -> tuple[set[str], set[str]]:
    """Which given facts match the record, and which were given but do not.

    The one-time code is not checked here (``verification.codes``).

    Returns:
        ``(proven, wrong)``: fact kinds (``email``, ``phone``, ``customer_id``, ``zip``,
        ``date_of_birth``, ``name``, ``address``).
    """
    proven: set[str] = set()
    wrong: set[str] = set()

    def check(kind: str, ok: bool) -> None:
        (proven if ok else wrong).add(kind)

    if given.email:
        check("email", given.email.strip().lower() in record.emails)
    if given.phone:
        digits = normalize_phone(given.phone)[-10:]
        check("phone", len(digits) == 10 and any(p[-10:] == digits for p in record.phones))
    if given.customer_id:
        check("customer_id", given.customer_id.strip().lower() == record.customer_id.lower())
    if given.zip:
        check("zip", record.zip is not None and given.zip.strip() == record.zip)
    births = given.birth_dates
    if births:  # several dates of birth in one message prove none
        check("date_of_birth", len(births) == 1 and record.date_of_birth in births)
    name = _WORD.findall(f"{record.first_name} {record.last_name}".lower())
    if len(name) >= 2 and _consecutive(name, given.sequence):
        check("name", given.names <= 1)
    if address_matches(record.address_words, given.words):
        check("address", given.addresses <= 1)
    return proven, wrong


def address_words(line: str) -> tuple[str, ...]:
    """The words of an address line, lower-cased.

    ``"742 Maple Street, Austin, TX 78701"`` → ``("742", "maple", "street", "austin", "tx",
    "78701")``.
    """
    return tuple(_WORD.findall(line.lower()[:SCAN_CHARS]))
