"""Rho-Bank's offers catalog, read from its own product documents (tau2-bench banking, MIT).

The bank's data has no product table: card terms live in the knowledge documents
(``documents.jsonl.gz``, e.g. "Gold Rewards Card: Apply for a Premium Credit Card" lists
"Annual fee: $0.00", "Cash back on all purchases: 2.5%", "APR on carried balances: 17.99%").
:func:`card_catalog` extracts, per card product:

- ``annual_fee`` (USD), ``cash_back_pct`` (highest base rate), ``apr_pct`` (standard purchase
  APR), ``min_credit_score``, ``segment`` (``personal`` | ``business``), ``tier`` (``entry`` with
  no annual fee and ≤ 1 % cash back, ``premium`` with an annual fee ≥ $200, else ``mid``);
- upgrade paths: within a segment, products ordered by (cash back, annual fee); ``upgrade_to`` is
  the next one up, ``downgrade_to`` the segment's no-annual-fee card ("Internal: Downgrading a
  Credit Card to a No-Annual-Fee Card");
- promotional rates and fee waivers from the "New Customer Promo" documents, with their window
  (``valid_until`` = the window's end).

:func:`retention_offers` adds the offers of the bank's "Internal: Credit Card Retention Protocol":
a one-year annual fee waiver (customers of 2+ years), a downgrade to the no-annual-fee card, and a
statement credit by card tier (the amounts are the tenant's settings: $5 entry, $20 mid, $50
premium in Rho-Bank's pack).

Fields a document does not state are ``None``; nothing is invented.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

#: Document-id groups that are not card products.
_NOT_PRODUCTS = ("credit_card_account", "credit_cards_(general)", "virtual_card", "replacements")
_MONEY = r"\$?([\d,]+(?:\.\d+)?)"
#: A percentage, and a cash-back rate. A run of digits and dots is read from its start only (a
#: tail of the run ends where it does), so the patterns are linear in a document's line.
_PERCENT = re.compile(r"(?<![\d.])([\d.]{1,20})%")
_CASH_BACK = re.compile(
    r"(?<![\d.])([\d.]{1,20})%\s{0,10}cash back|cash back[^%\n]{0,40}?(?<![\d.])([\d.]{1,20})%",
    re.I,
)


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _first(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text, flags=re.IGNORECASE)
    return _num(m.group(1)) if m else None


def _card_terms(text: str) -> dict[str, Any]:
    """Terms stated in one product's documents (joined text)."""
    fee = _first(r"(?:standard )?annual fee(?: for the [^.\n]*?)?(?::| is| of)\s*" + _MONEY, text)
    if fee is None and re.search(r"no annual fee", text, flags=re.IGNORECASE):
        fee = 0.0
    rates = [
        float(m)
        for line in text.splitlines()
        if not re.search(r"×|multipl|promo|bonus", line, flags=re.IGNORECASE)
        for m in _CASH_BACK.findall(line)
        for m in m
        if m
    ]
    aprs = [
        float(m)
        for line in text.splitlines()
        if "APR" in line and not re.search(r"intro|promo|first", line, flags=re.IGNORECASE)
        for m in _PERCENT.findall(line)
    ]
    score = _first(r"credit score[^\n]*?\$?(\d{3})\b", text)
    return {
        "annual_fee": fee,
        "cash_back_pct": max(rates) if rates else None,
        "apr_pct": max(aprs) if aprs else None,
        "min_credit_score": int(score) if score is not None else None,
    }


def _tier(terms: dict[str, Any]) -> str:
    fee = terms["annual_fee"] or 0.0
    if fee >= 200:
        return "premium"
    if fee == 0 and (terms["cash_back_pct"] or 0.0) <= 1.0:
        return "entry"
    return "mid"


_TIER_RANK = {"entry": 0, "mid": 1, "premium": 2}


def _downgrade_targets(docs: list[dict[str, Any]]) -> dict[str, str]:
    """``{"personal": card, "business": card}`` from "Available No-Annual-Fee Card Options"."""
    out: dict[str, str] = {}
    for doc in docs:
        for segment, card in re.findall(
            r"(Personal|Business) cards:\s*([^()\n]+?)\s*\(no annual fee\)", doc["content"]
        ):
            out.setdefault(segment.lower(), card.strip())
    return out


def _promo(doc: dict[str, Any], product: str) -> dict[str, Any] | None:
    """A promotional-rate or fee-waiver offer from one "Promo" document, or ``None``."""
    text = doc["content"]
    dates = re.findall(r"(\d{4}-\d{2}-\d{2})", text)
    intro = _first(r"(?:introductory|promotional) APR[^:\n]*?(?::|of)\s*([\d.]+)%", text)
    if intro is None:
        intro = _first(r"receive an? ([\d.]+)% APR", text)
    waived = re.search(r"first[- ]year (?:promotional )?annual fee[^:\n]*?(?::|is|of)\s*\$?0\b",
                       text, flags=re.IGNORECASE)  # fmt: skip
    if intro is None and not waived:
        return None
    standard = _first(r"standard APR[^:\n]*?(?::|of)\s*([\d.]+)%", text)
    kind = "promo_rate" if intro is not None else "fee_waiver"
    terms = {
        "product": product,
        "intro_apr_pct": intro,
        "standard_apr_pct": standard,
        "first_year_annual_fee": 0.0 if waived else None,
        "window_start": min(dates) if dates else None,
        "window_end": max(dates) if dates else None,
        "new_customers_only": True,
        "source_document": doc["id"],
    }
    return {
        "id": f"promo:{doc['id'].removeprefix('doc_')}",
        "kind": kind,
        "title": doc["title"],
        "description": text[:600],
        "terms": terms,
        "valid_until": (
            datetime.fromisoformat(max(dates)).replace(hour=23, minute=59, tzinfo=UTC)
            if dates
            else None
        ),
    }


def card_catalog(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Card products and their promotions from the bank's documents.

    Args:
        docs: ``[{"id", "title", "content"}]`` (the bank's ``documents.jsonl``).

    Returns:
        Offer rows ``{"id", "kind", "title", "description", "terms", "valid_until"}``: one
        ``card_product`` per card (terms as in the module docstring plus ``upgrade_to`` /
        ``downgrade_to``), and one ``promo_rate`` / ``fee_waiver`` per promotion document.
    """
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        m = re.match(r"doc_(business_credit_cards|credit_cards)_(.+)_\d+$", doc["id"])
        if m and not any(x in m.group(2) for x in _NOT_PRODUCTS):
            groups[f"{m.group(1)}:{m.group(2)}"].append(doc)
    products: list[dict[str, Any]] = []
    promos: list[dict[str, Any]] = []
    for key, group in sorted(groups.items()):
        names = Counter(d["title"].split(":")[0].strip() for d in group)
        name = names.most_common(1)[0][0]
        if key.startswith("business") and "Business" not in name and "Zoom" not in name:
            name = f"Business {name}" if f"Business {name}" in names else name
        terms = _card_terms("\n".join(d["content"] for d in group))
        terms["segment"] = "business" if key.startswith("business") else "personal"
        terms["tier"] = _tier(terms)
        terms["source_documents"] = sorted(d["id"] for d in group)
        products.append({"name": name, "terms": terms})
        promos += [
            p
            for d in group
            if re.search(r"promo|fee waiver", d["title"], flags=re.IGNORECASE)
            and (p := _promo(d, name))
        ]
    downgrade = _downgrade_targets(docs)
    rows = []
    for segment in ("personal", "business"):
        line = sorted(
            (p for p in products if p["terms"]["segment"] == segment),
            key=lambda p: (
                _TIER_RANK[p["terms"]["tier"]],
                p["terms"]["annual_fee"] or 0.0,
                p["terms"]["cash_back_pct"] or 0.0,
                p["name"],
            ),
        )
        no_fee = downgrade.get(segment)
        for i, p in enumerate(line):
            t = p["terms"]
            t["upgrade_to"] = line[i + 1]["name"] if i + 1 < len(line) else None
            t["downgrade_to"] = no_fee if no_fee != p["name"] and (t["annual_fee"] or 0) else None
            facts = [
                f"annual fee ${t['annual_fee']:.2f}" if t["annual_fee"] is not None else None,
                f"{t['cash_back_pct']}% cash back" if t["cash_back_pct"] is not None else None,
                f"{t['apr_pct']}% APR on carried balances" if t["apr_pct"] is not None else None,
                f"upgrade path: {t['upgrade_to']}" if t["upgrade_to"] else None,
            ]
            rows.append(
                {
                    "id": "card:" + re.sub(r"[^a-z0-9]+", "_", p["name"].lower()).strip("_"),
                    "kind": "card_product",
                    "title": f"{p['name']} ({segment} credit card)",
                    "description": f"{p['name']}: " + ", ".join(f for f in facts if f) + ".",
                    "terms": {"product": p["name"], **t},
                    "valid_until": None,
                }
            )
    return rows + promos


def retention_offers(credit_by_card_tier: dict[str, float]) -> list[dict[str, Any]]:
    """The retention protocol's offers ("Internal: Credit Card Retention Protocol", steps 4-5).

    Args:
        credit_by_card_tier: the statement credit per card tier, USD (tenant settings).

    Returns:
        Offer rows (``kind`` ``retention``); their eligibility is the tenant policy's
        ``retention`` rules.
    """
    amounts = ", ".join(f"${v:g} {k}" for k, v in credit_by_card_tier.items())
    source = "doc_credit_cards_credit_card_account_logistics_003"
    return [
        {
            "id": "annual_fee_waiver",
            "kind": "retention",
            "title": "Loyalty annual fee waiver",
            "description": "Loyalty benefit for customers of two years or more: the card's "
            "annual fee is waived for one year.",
            "terms": {"duration_days": 365, "flag": "annual_fee_waived",
                      "reason": "loyalty_benefit", "source_document": source},
            "valid_until": None,
        },
        {
            "id": "downgrade_no_annual_fee",
            "kind": "retention",
            "title": "Downgrade to a no-annual-fee card",
            "description": "Move to the no-annual-fee card of the same segment; credit limit, "
            "account number, history and rewards are preserved.",
            "terms": {"source_document": "doc_credit_cards_credit_card_account_logistics_008"},
            "valid_until": None,
        },
        {
            "id": "retention_statement_credit",
            "kind": "retention",
            "title": "Retention statement credit",
            "description": f"A one-time statement credit by card tier: {amounts}.",
            "terms": {"amount_by_card_tier": credit_by_card_tier, "source_document": source},
            "valid_until": None,
        },
    ]  # fmt: skip
