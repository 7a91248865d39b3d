"""Everything the retail vertical says, in one place: grounded templates.

Every fact in a reply comes from the Customer 360 or from an action's result: orders, items,
statuses, amounts. Personal contact data is never echoed; a card appears as brand + last four.
"""

from __future__ import annotations

from typing import Any

from support_agent import templates as generic
from support_agent.state import Customer360, Issue, Order

#: Actions in the customer's words.
ACTION_WORDS = {
    "return_items": "a return",
    "exchange_items": "an exchange",
    "cancel_order": "a cancellation",
    "modify_order": "a change to the order",
    "update_default_address": "an update of your default address",
    "order_status": "a status check",
}


def action_words(actions: list[str]) -> str:
    """``["return_items", "exchange_items"]`` → ``"a return or an exchange"``."""
    return " or ".join(ACTION_WORDS.get(a, a.replace("_", " ")) for a in actions)


def items_phrase(names: list[str]) -> str:
    """``["Water Bottle"]`` → ``"the Water Bottle"``; several joined with "and"."""
    if not names:
        return "the items"
    return "the " + " and the ".join(names)


def describe_subject(issue: Issue) -> str:
    """What an issue is about: ``"the Water Bottle from order #W1234567"``."""
    if issue.get("order_id"):
        return f"{items_phrase(issue.get('item_names') or [])} from order {issue['order_id']}"
    return f"the {issue.get('subject_label') or 'item'}"


def payment_phrase(c360: Customer360, method_id: str | None) -> str:
    """A payment method without personal data: ``"your mastercard ending 9212"``."""
    for method in c360.get("payment_methods", []):
        if method["id"] == method_id:
            if method["kind"] == "credit_card":
                return f"your {method['brand']} card ending {method['last_four']}"
            if method["kind"] == "gift_card":
                return "your gift card"
            return f"your {method['kind']} account"
    return "the original payment method"


def address_line(address: dict[str, Any] | None) -> str:
    """``"12 Main Street, Apt 4, Springfield, IL 62704"`` (an address the customer gave us)."""
    if not address:
        return "the new address"
    parts = [address.get("address1"), address.get("address2"), address.get("city")]
    line = ", ".join(p for p in parts if p)
    return f"{line}, {address.get('state', '')} {address.get('zip', '')}".strip()


def order_status(order: Order) -> str:
    """Status line of one order with its tracking ids."""
    names = ", ".join(sorted({i["name"] for i in order["items"]}))
    text = f"Order {order['order_id']} ({names}) is {order['status']}"
    if order.get("tracking_ids"):
        text += f"; tracking: {', '.join(order['tracking_ids'])}"
    return text + "."


def refund_status(order: Order, timing: dict[str, str]) -> str:
    """An order's status and what was refunded, with when refunds arrive."""
    return (
        order_status(order)
        + f" Refunded so far: {order.get('refunded', 0.0):.2f}. Refunds to a gift card arrive "
        f"{timing['gift_card']}; to a card or PayPal {timing['other']}."
    )


def complaint_noted() -> str:
    """The complaint acknowledgement."""
    return (
        "I'm sorry about this experience; I've noted your complaint. Tell me which order it "
        "concerns and I'll see what I can do."
    )


def sorry_about(items: str, order_id: str, status: str | None, offered: list[str]) -> str:
    """The apology that opens a proposal for a problem with items."""
    return (
        f"I'm sorry about {items} from order {order_id}. The order was {status}, so I can offer "
        f"{action_words(offered)}. "
    )


def ask_variant(items: str, order_id: str, options: list[str], *, exchange: bool,
                problem: bool) -> str:  # fmt: skip
    """Which new option the customer wants (listing what is available)."""
    lead = (
        f"I'm sorry about {items} from order {order_id}. I can offer an exchange or a return. "
        if problem
        else ""
    )
    tail = " Or say 'return' for a refund." if exchange else ""
    return (
        lead
        + f"Which option would you like instead of {items}? Available: "
        + "; ".join(options)
        + "."
        + tail
    )


def variant_handoff() -> str:
    """When only a colleague can help choose the new option."""
    return (
        "To pick the new option, I'm connecting you with a colleague who can see this whole "
        "conversation, so you won't need to repeat anything."
    )


def ask_new_detail(change: str, order_id: str | None) -> str:
    """Ask for the new address (or payment method) a change needs."""
    if change != "address":
        return "Which payment method on your account should the order use instead?"
    what = f"order {order_id}" if order_id else "your account"
    return (
        f"What's the new address for {what}? Please send it in one message: street, city, "
        "state and zip."
    )


def confirm(
    action: str,
    args: dict[str, Any],
    order_id: str | None,
    c360: Customer360,
    reasons: tuple[str, ...],
) -> str:
    """The confirmation question for a retail write: exactly what will happen.

    ``reasons`` are the cancellation reasons the tenant accepts (asked for when missing).
    """
    items = items_phrase(args.get("item_names") or [])
    method = payment_phrase(c360, args.get("payment_method_id"))
    settle = f"any price difference is settled with {method}"
    if action == "return_items":
        refund = payment_phrase(c360, args.get("payment_method_id"))
        text = f"To confirm: return {items} from order {order_id}, refund to {refund}."
    elif action == "cancel_order":
        why = args.get("reason")
        text = f"To confirm: cancel order {order_id}" + (f" (reason: {why})" if why else "") + "."
    elif action == "exchange_items":
        new = " and ".join(args.get("new_options") or ["another option"])
        text = f"To confirm: exchange {items} from order {order_id} for {new}; {settle}."
    elif action == "update_default_address":
        text = f"To confirm: make {address_line(args.get('new_address'))} your default address."
    elif args.get("change") == "items":
        new = " and ".join(args.get("new_options") or [])
        text = (f"To confirm: change order {order_id} to {new}; {settle}. Items can be changed "
                "only once, so please check every item is listed.")  # fmt: skip
    elif args.get("change") == "payment":
        method = payment_phrase(c360, args.get("new_payment_method_id"))
        text = f"To confirm: pay order {order_id} with {method} instead."
    elif action == "modify_order":
        text = f"To confirm: ship order {order_id} to {address_line(args.get('new_address'))}."
    else:
        text = f"To confirm: {action_words([action])} for order {order_id}."
    text += " Reply yes to go ahead."
    if action == "cancel_order" and not args.get("reason"):
        text += " Please also tell me why: " + ", or ".join(reasons) + "?"
    return text


def done(action: str, result: dict[str, Any], c360: Customer360) -> str:
    """What the customer hears after a retail write succeeded (facts from its result)."""
    if "swaps" in result:
        diff = float(result["price_difference"])
        method = payment_phrase(c360, result["payment_method_id"])
        settle = (f" {abs(diff):.2f} will be {'charged to' if diff > 0 else 'refunded to'} "
                  f"{method}." if diff else "")  # fmt: skip
        instructions = (" You'll get an email with return instructions."
                        if action == "exchange_items" else "")  # fmt: skip
        return (
            f"Done: order {result['order_id']} is now {result['status']}." + instructions + settle
        )
    if action == "update_default_address":
        return f"Done: your default address is now {address_line(result['address'])}."
    if action == "modify_order":
        return f"Done: order {result['order_id']} now " + (
            f"ships to {address_line(result['address'])}."
            if result["changed"] == "address"
            else f"is paid with {payment_phrase(c360, result['payment_method_id'])}."
        )
    if action == "cancel_order":
        return (f"Done: order {result['order_id']} is cancelled. {result['refund']:.2f} will be "
                f"refunded {result['refund_timing']}.")  # fmt: skip
    return (
        f"Done: the return for order {result['order_id']} is requested. You'll get an email with "
        f"return instructions; {result['refund']:.2f} will be refunded to "
        f"{payment_phrase(c360, result['payment_method_id'])}."
    )


def refused(reason: str | None, alternative: str | None) -> str:
    """A refusal with the policy's reason, and an allowed alternative when there is one."""
    text = generic.refused(reason)
    if alternative is not None:
        text += f" I can offer {action_words([alternative])} instead."
    return text


def which_item(order: Order) -> str:
    """Ask which item of an order is meant."""
    names = ", ".join(sorted({i["name"] for i in order["items"]}))
    return f"Which item of order {order['order_id']} do you mean: {names}?"


def which_order(orders: list[Order]) -> str:
    """Ask which order is meant, listing the customer's orders with their status."""
    listed = ", ".join(f"{o['order_id']} ({o['status']})" for o in sorted(orders,
                       key=lambda o: o["order_id"]))  # fmt: skip
    return f"Which order do you mean? I can see {listed}."


def issue_status(order_id: str, status: str | None, proposed: list[str]) -> str:
    """Where an open order issue stands, and the next step to offer."""
    ask = (f"Shall I start {action_words(proposed[:1])}?" if proposed
           else "How would you like to proceed?")  # fmt: skip
    return (
        f"Order {order_id} is currently {status or 'unknown'} and the issue is still open, "
        "waiting for your go-ahead. " + ask
    )
