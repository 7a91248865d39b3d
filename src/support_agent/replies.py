"""Grounded reply templates: every fact in a reply comes from the Customer 360 or memory.

Replies name orders, items, statuses and amounts from the systems of record, never personal
contact data (emails, phone numbers are not echoed; cards appear as brand + last four digits).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

_ACTION_WORDS = {
    "dispute_transaction": "a dispute",
    "freeze_card": "freezing the card",
    "order_replacement_card": "a replacement card",
    "apply_retention_offer": "the offer",
    "return_items": "a return",
    "exchange_items": "an exchange",
    "cancel_order": "a cancellation",
    "modify_order": "a change to the order",
}


def action_words(actions: list[str]) -> str:
    """``["return_items", "exchange_items"]`` → ``"a return or an exchange"``."""
    return " or ".join(_ACTION_WORDS.get(a, a.replace("_", " ")) for a in actions)


def items_phrase(names: list[str]) -> str:
    """``["Water Bottle"]`` → ``"the Water Bottle"``; several joined with "and"."""
    if not names:
        return "the items"
    return "the " + " and the ".join(names)


def payment_phrase(c360: dict[str, Any], method_id: str | None) -> str:
    """A payment method without personal data: ``"your mastercard ending 9212"``."""
    for method in c360.get("payment_methods", []):
        if method["id"] == method_id:
            if method["kind"] == "credit_card":
                return f"your {method['brand']} card ending {method['last_four']}"
            if method["kind"] == "gift_card":
                return "your gift card"
            return f"your {method['kind']} account"
    return "the original payment method"


def when_phrase(iso: str | None) -> str:
    """``"on 2026-11-21"`` from an ISO timestamp (or ``"earlier"``)."""
    if not iso:
        return "earlier"
    return "on " + datetime.fromisoformat(iso).date().isoformat()


def ask_identification(status: str, auth_methods: tuple[str, ...]) -> str:
    """Ask for the identifiers the tenant accepts."""
    ways = []
    if "email" in auth_methods:
        ways.append("the email address on your account")
    if "phone" in auth_methods:
        ways.append("your phone number")
    if "name_zip" in auth_methods:
        ways.append("your full name and zip code")
    how = " or ".join(ways)
    if status == "unknown":
        return f"I couldn't find an account with those details. Could you share {how}?"
    if status == "identified_unverified":
        return (
            f"Thanks. Before I can look at your account I need to verify it's you: {how}, please."
        )
    return f"I can help with that. First, to find your account, please share {how}."


def open_issue_line(issue: dict[str, Any]) -> str:
    """One sentence recalling an open issue from an earlier session."""
    items = items_phrase(issue.get("item_names") or [])
    channel = issue.get("episode_channel")
    via = f" on {channel}" if channel else ""
    proposed = action_words(issue.get("proposed_actions") or [])
    what = (
        f"{items} from order {issue['order_id']}"
        if issue.get("order_id")
        else f"the {issue.get('subject_label') or 'item'}"
    )
    line = (
        f"you told us{via} {when_phrase(issue.get('created_at'))} that {what} had a problem "
        f"({issue['description']})"
    )
    if proposed:
        line += f", and we offered {proposed}"
    return line


def order_status(order: dict[str, Any]) -> str:
    """Status line of one order with its tracking ids."""
    names = ", ".join(sorted({i["name"] for i in order["items"]}))
    text = f"Order {order['order_id']} ({names}) is {order['status']}"
    if order.get("tracking_ids"):
        text += f"; tracking: {', '.join(order['tracking_ids'])}"
    return text + "."


def handoff_message(issue: dict[str, Any] | None) -> str:
    """What the customer hears at a warm handoff: who takes over and what they already know."""
    about = ""
    if issue and issue.get("order_id"):
        about = (f" about {items_phrase(issue.get('item_names') or [])} from order "
                 f"{issue['order_id']}")  # fmt: skip
    elif issue and issue.get("subject_label"):
        about = f" about the {issue['subject_label']}"
    return (
        f"I'm connecting you with a colleague now{about}. They can see everything we've "
        "discussed, so you won't need to repeat yourself."
    )


def address_line(address: dict[str, Any] | None) -> str:
    """``"12 Main Street, Apt 4, Springfield, IL 62704"`` (an address the customer gave us)."""
    if not address:
        return "the new address"
    parts = [address.get("address1"), address.get("address2"), address.get("city")]
    line = ", ".join(p for p in parts if p)
    return f"{line}, {address.get('state', '')} {address.get('zip', '')}".strip()


def confirm_bank_action(action: str, target: dict[str, Any]) -> str:
    """The confirmation question for a bank write (what exactly will happen)."""
    label = target.get("label") or "it"
    if action == "freeze_card":
        return (f"To confirm: freeze your {label} now. Payments and withdrawals with it will be "
                "declined until it is unfrozen. Reply yes to go ahead.")  # fmt: skip
    if action == "order_replacement_card":
        return (f"To confirm: order a replacement for your {label}, sent to the address on file "
                "(7 to 10 business days). Reply yes to go ahead.")  # fmt: skip
    if action == "dispute_transaction":
        return f"To confirm: open a dispute on the {label}. Reply yes to go ahead."
    return f"To confirm: {action.replace('_', ' ')} for {label}. Reply yes to go ahead."


def bank_action_done(result: dict[str, Any]) -> str:
    """What the customer hears after a bank write succeeded."""
    action = result["action"]
    label = result.get("label") or "your card"
    if action == "freeze_card":
        return f"Done: your {label} is frozen. Nobody can use it until it is unfrozen."
    if action == "order_replacement_card":
        return (f"Done: a replacement for your {label} is ordered and will arrive in "
                f"{result['delivery']}.")  # fmt: skip
    if action == "dispute_transaction":
        return (f"Done: I've opened dispute {result['dispute_id']} for the {label}. You can "
                "follow its status in the app; we'll contact you when it's reviewed.")  # fmt: skip
    if action == "apply_retention_offer":
        if result.get("annual_fee_waived_until"):
            return (f"Done: your annual fee is waived until "
                    f"{result['annual_fee_waived_until']}.")  # fmt: skip
        if result.get("product"):
            return (f"Done: your card is now the {result['product']}, with no annual fee; your "
                    "credit limit, account number, history and rewards are kept.")  # fmt: skip
        return f"Done: a ${result['credit']:.2f} statement credit is on your card."
    return "Done."


def retention_offer_text(offer: dict[str, Any]) -> str:
    """A retention offer with its terms, and the disclosure when the policy requires one."""
    terms = offer.get("terms") or {}
    card = terms.get("card", "your card")
    fee = float(terms.get("annual_fee") or 0.0)
    if offer["offer_id"] == "annual_fee_waiver":
        text = (f"As a thank-you for your loyalty, I can waive the ${fee:.2f} annual fee on your "
                f"{card} for the next 12 months.")  # fmt: skip
        terms_text = (f"Terms: a one-time loyalty benefit for one year; the standard ${fee:.2f} "
                      "annual fee applies again after that.")  # fmt: skip
    elif offer["offer_id"] == "downgrade_no_annual_fee":
        text = (f"I can move your {card} to the {terms.get('downgrade_to')}, which has no annual "
                f"fee (you pay ${fee:.2f} a year today).")  # fmt: skip
        terms_text = (
            "Terms: your credit limit, account number, history and unredeemed rewards are kept; "
            "the rewards rate and benefits change to the new card's."
        )
    else:
        text = (
            f"I can add a ${float(terms.get('credit', 0.0)):.2f} statement credit to your {card}."
        )
        terms_text = "Terms: a one-time credit; one retention offer per year."
    if offer.get("disclosure_required"):
        text += " " + terms_text
    return text + " Reply yes if you'd like it."


def knowledge_answer(doc: dict[str, Any], question: str) -> str:
    """A grounded answer from one help article, quoted, never rewritten.

    The article's title and its lines (at most three, in article order) sharing most words with
    the question.
    """
    words = set(re.findall(r"[a-z]{3,}", question.lower()))
    lines = [ln.strip(" -*#") for ln in str(doc.get("text") or "").splitlines()]
    lines = [ln for ln in lines if len(ln) > 20]
    ranked = sorted(
        range(len(lines)),
        key=lambda i: (-len(words & set(re.findall(r"[a-z]{3,}", lines[i].lower()))), i),
    )
    best = sorted(ranked[:3])
    body = " ".join(lines[i].rstrip(".") + "." for i in best)
    return f'From our help article "{doc["title"]}": {body}'.strip()


def account_activity(c360: dict[str, Any], limit: int = 3) -> str:
    """The latest transactions and the cards' status, from the 360."""
    txns = c360.get("transactions", [])[:limit]
    parts = [
        f"{t['date']}: {t['description']} {'+' if t['amount'] > 0 else '-'}"
        f"${abs(float(t['amount'])):.2f} ({str(t['status']).lower()})"
        for t in txns
    ]
    text = "Your latest activity: " + "; ".join(parts) + "." if parts else "No recent activity."
    cards = [h for h in c360.get("holdings", []) if h["kind"] in ("credit_card", "debit_card")]
    if cards:
        text += (
            " Cards: "
            + ", ".join(
                f"{h['product'] if h['kind'] == 'credit_card' else 'debit card'} "
                f"({str(h['status']).lower()})"
                for h in cards
            )
            + "."
        )
    return text


def subject_status(c360: dict[str, Any], subject_id: str) -> str:
    """Where a bank card or transaction stands now, from the 360 (its dispute or its status)."""
    dispute = next((d for d in c360.get("disputes", []) if d["transaction_id"] == subject_id), None)
    if dispute is not None:
        status = str(dispute["status"]).lower().replace("_", " ")
        return (f"Dispute {dispute['id']} on it is {status} (opened "
                f"{dispute.get('submitted_on') or 'earlier'}); we'll contact you when it's "
                "reviewed.")  # fmt: skip
    for card in c360.get("holdings", []):
        if card["id"] == subject_id:
            return f"The card is {str(card['status']).lower()}."
    return "It's still open with us; how would you like to proceed?"
