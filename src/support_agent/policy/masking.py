"""Personal data masked in replies (compliance rule ``mask_personal_data_in_replies``).

Applied to every reply after it is written (template or LLM), so nothing a model generates can
leak contact data: email addresses become ``[email]``, phone numbers ``[phone]``, and card-like
numbers (13–19 digits, spaces or dashes allowed) keep only their last four digits.
Order ids (``#W1234567``) and amounts are not personal data and are kept, and so are the
verified customer's own order facts (tracking numbers look like phone numbers): masking protects
other people's data, not the customer's own.
"""

from __future__ import annotations

import re

# Linear in the text (``tests/test_redos.py``): bounded repeats (an e-mail's local part 64
# characters, its domain 255), the local part possessive ("@" is not in it).
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}+@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,63}\b")
_CARD = re.compile(r"(?<![#\w])(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![#\w])\+?\(?\d{1,3}\)?[ .-]?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}\b")


def mask_personal_data(text: str, keep: frozenset[str] = frozenset()) -> str:
    """Return ``text`` with emails, card numbers and phone numbers masked.

    Args:
        text: a reply.
        keep: exact values shown as they are (the verified customer's own tracking numbers).
    """
    text = _EMAIL.sub("[email]", text)

    def card(m: re.Match[str]) -> str:
        if m.group(0) in keep:
            return m.group(0)
        digits = re.sub(r"\D", "", m.group(0))
        return f"•••• {digits[-4:]}"

    text = _CARD.sub(card, text)
    return _PHONE.sub(lambda m: m.group(0) if m.group(0) in keep else "[phone]", text)
