"""Everything the bank vertical says, in one place: grounded templates.

Facts come from the Customer 360 or an action's result: transactions, cards, disputes, offer
terms. Cards appear by product name or as "debit card ending 4821", never by number.
"""

from __future__ import annotations

from typing import Any

from support_agent.state import Customer360, Offer
from support_agent.templates import money, refused

__all__ = ["refused"]  # the generic refusal, reused as is

#: Actions in the customer's words.
ACTION_WORDS = {
    "dispute_transaction": "a dispute",
    "freeze_card": "freezing the card",
    "order_replacement_card": "a replacement card",
    "apply_retention_offer": "the offer",
}


def action_words(actions: list[str]) -> str:
    """``["dispute_transaction"]`` → ``"a dispute"``; several joined with "or"."""
    return " or ".join(ACTION_WORDS.get(a, a.replace("_", " ")) for a in actions)


def confirm(action: str, label: str | None, delivery: str) -> str:
    """The confirmation question for a bank write (what exactly will happen)."""
    label = label or "it"
    if action == "freeze_card":
        return (f"To confirm: freeze your {label} now. Payments and withdrawals with it will be "
                "declined until it is unfrozen. Reply yes to go ahead.")  # fmt: skip
    if action == "order_replacement_card":
        return (f"To confirm: order a replacement for your {label}, sent to the address on file "
                f"({delivery.replace('-', ' to ')}). Reply yes to go ahead.")  # fmt: skip
    if action == "dispute_transaction":
        return f"To confirm: open a dispute on the {label}. Reply yes to go ahead."
    return f"To confirm: {action.replace('_', ' ')} for {label}. Reply yes to go ahead."


def done(action: str, label: str | None, result: dict[str, Any]) -> str:
    """What the customer hears after a bank write succeeded (facts from its result)."""
    label = label or "your card"
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
            return f"Done: your annual fee is waived until {result['annual_fee_waived_until']}."
        if result.get("product"):
            return (f"Done: your card is now the {result['product']}, with no annual fee; your "
                    "credit limit, account number, history and rewards are kept.")  # fmt: skip
        return f"Done: a {money(result['credit'])} statement credit is on your card."
    return "Done."


def offer_text(offer: Offer, kind: str | None) -> str:
    """A retention offer with its terms, and the disclosure when the policy requires one.

    ``kind`` is what the offer means (``fee_waiver``, ``downgrade``, ``statement_credit``).
    """
    terms = offer.get("terms") or {}
    card = terms.get("card", "your card")
    fee = float(terms.get("annual_fee") or 0.0)
    if kind == "fee_waiver":
        days = int(terms.get("waiver_days", 365))
        text = (f"As a thank-you for your loyalty, I can waive the {money(fee)} annual fee on your "
                f"{card} for the next {_period(days)}.")  # fmt: skip
        terms_text = (f"Terms: a one-time loyalty benefit for {_period(days)}; the standard "
                      f"{money(fee)} annual fee applies again after that.")  # fmt: skip
    elif kind == "downgrade":
        text = (f"I can move your {card} to the {terms.get('downgrade_to')}, which has no annual "
                f"fee (you pay {money(fee)} a year today).")  # fmt: skip
        terms_text = (
            "Terms: your credit limit, account number, history and unredeemed rewards are kept; "
            "the rewards rate and benefits change to the new card's."
        )
    else:
        text = (
            f"I can add a {money(float(terms.get('credit', 0.0)))} statement credit to your {card}."
        )
        terms_text = "Terms: a one-time credit; one retention offer per year."
    if offer.get("disclosure_required"):
        text += " " + terms_text
    return text + " Reply yes if you'd like it."


def _period(days: int) -> str:
    """``365`` → ``"12 months"``; other lengths in days."""
    return "12 months" if days == 365 else f"{days} days"


def account_activity(c360: Customer360, limit: int = 3) -> str:
    """The latest transactions and the cards' status, from the 360."""
    parts = [
        f"{t['date']}: {t['description']} {'+' if t['amount'] > 0 else '-'}"
        f"{money(float(t['amount']))} ({str(t['status']).lower()})"
        for t in c360.get("transactions", [])[:limit]
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


def subject_status(c360: Customer360, subject_id: str | None) -> str:
    """Where a card or transaction stands now, from the 360 (its dispute or its status)."""
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


def no_second_dispute(status: str) -> str:
    """The refusal to dispute a transaction again, with where its dispute stands."""
    return "I'm sorry, I can't open another dispute on that transaction. " + status


def which(kind: str, options: list[str]) -> str:
    """Which card or transaction is meant (or how to find it when none matched)."""
    if options:
        return f"Which {kind} do you mean: " + "; or ".join(options) + "?"
    return (f"I couldn't find that {kind} on your account. Could you tell me the date and amount, "
            "or the card's last four digits?")  # fmt: skip
