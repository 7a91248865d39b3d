"""Grounded reply templates: every fact in a reply comes from the Customer 360 or memory.

Replies name orders, items, statuses and amounts from the systems of record, never personal
contact data (emails, phone numbers are not echoed; cards appear as brand + last four digits).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

_ACTION_WORDS = {
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
    line = (
        f"you told us{via} {when_phrase(issue.get('created_at'))} that {items} from order "
        f"{issue['order_id']} had a problem ({issue['description']})"
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
    return (
        f"I'm connecting you with a colleague now{about}. They can see everything we've "
        "discussed, so you won't need to repeat yourself."
    )
