"""Everything the retail vertical says, in one place: grounded templates.

Every fact in a reply comes from the Customer 360 or from an action's result: orders, items,
statuses, amounts. Personal contact data is never echoed; a card appears as brand + last four.
"""

from __future__ import annotations

from typing import Any

from support_agent import templates as generic
from support_agent.state import Customer360, Issue, Order
from support_agent.templates import money

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


#: Card brands as customers write them.
_BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express",
           "discover": "Discover"}  # fmt: skip


def payment_phrase(c360: Customer360, method_id: str | None) -> str:
    """A payment method as a customer calls it (never a full card number).

    ``"your Mastercard ending in 9212"``, ``"your PayPal account"``, ``"your gift card"``.
    """
    for method in c360.get("payment_methods", []):
        if method["id"] == method_id:
            if method["kind"] == "credit_card":
                brand = str(method.get("brand") or "card")
                name = _BRANDS.get(brand.lower(), brand.title())
                return f"your {name} ending in {method['last_four']}"
            if method["kind"] == "gift_card":
                return "your gift card"
            if method["kind"] == "paypal":
                return "your PayPal account"
            return f"your {method['kind'].replace('_', ' ')}"
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
        + f" Refunded so far: {money(order.get('refunded', 0.0))}. Refunds to a gift card arrive "
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


def _order(c360: Customer360, order_id: str | None) -> Order | None:
    return next((o for o in c360.get("orders", []) if o["order_id"] == order_id), None)


def lines_phrase(c360: Customer360, order_id: str | None, item_ids: list[str]) -> str:
    """The order lines meant, by name and options.

    ``"the Water Bottle (capacity 1000ml, color blue)"``; an item meant twice is counted
    (``"2 × Tea Kettle (...)"``).
    """
    order = _order(c360, order_id)
    if order is None or not item_ids:
        return "the items"
    by_id = {i["item_id"]: i for i in order["items"]}
    named = []
    for item_id in dict.fromkeys(item_ids):
        item = by_id.get(item_id)
        if item is None:
            continue
        count = item_ids.count(item_id)
        options = ", ".join(f"{k} {v}" for k, v in item.get("options", {}).items())
        named.append((f"{count} × " if count > 1 else "the ") + f"{item['name']} ({options})")
    return " and ".join(named) or "the items"


def _refund_of(c360: Customer360, order_id: str | None, item_ids: list[str]) -> float:
    """What returning the lines refunds: their prices."""
    order = _order(c360, order_id)
    prices = [i["price"] for i in (order or {}).get("items", [])]
    ids = [i["item_id"] for i in (order or {}).get("items", [])]
    total, left = 0.0, list(zip(ids, prices, strict=True))
    for item_id in item_ids:
        hit = next((p for p in left if p[0] == item_id), None)
        if hit is not None:
            total += hit[1]
            left.remove(hit)
    return round(total, 2)


def _difference(diff: float, method: str, *, now: bool) -> str:
    """The price difference and where it goes."""
    if not diff:
        return "there is no price difference"
    when = "" if now else " when we receive the returned items"
    if diff > 0:
        return f"the price difference of {money(diff)} will be charged to {method}{when}"
    return f"the price difference of {money(-diff)} will be refunded to {method}{when}"


def confirm(
    action: str,
    args: dict[str, Any],
    order_id: str | None,
    c360: Customer360,
    reasons: tuple[str, ...],
) -> str:
    """The confirmation question for a retail write: exactly what will happen, with amounts.

    ``reasons`` are the cancellation reasons the tenant accepts (asked for when missing).
    """
    item_ids = list(args.get("item_ids") or [])
    items = lines_phrase(c360, order_id, item_ids)
    method = payment_phrase(c360, args.get("payment_method_id"))
    diff = float(args.get("price_difference") or 0.0)
    if action == "return_items":
        refund = _refund_of(c360, order_id, item_ids)
        text = (f"To confirm: return {items} from order {order_id}; {money(refund)} will be "
                f"refunded to {method}.")  # fmt: skip
    elif action == "cancel_order":
        why = args.get("reason")
        order = _order(c360, order_id)
        paid = float((order or {}).get("paid") or 0.0)
        text = (f"To confirm: cancel order {order_id}" + (f" (reason: {why})" if why else "")
                + (f"; {money(paid)} will be refunded to the original payment method" if paid
                   else "") + ".")  # fmt: skip
    elif action == "exchange_items":
        new = " and ".join(args.get("new_options") or ["another option"])
        text = (f"To confirm: exchange {items} from order {order_id} for {new}; "
                f"{_difference(diff, method, now=False)}. Is that every item you want to "
                "exchange?")  # fmt: skip
    elif action == "update_default_address":
        text = f"To confirm: make {address_line(args.get('new_address'))} your default address."
    elif args.get("change") == "items":
        new = " and ".join(args.get("new_options") or [])
        text = (f"To confirm: change {items} in order {order_id} to {new}; "
                f"{_difference(diff, method, now=True)}. Items can be changed only once, so "
                "please check every item you want to change is listed.")  # fmt: skip
    elif args.get("change") == "payment":
        new_method = payment_phrase(c360, args.get("new_payment_method_id"))
        text = f"To confirm: pay order {order_id} with {new_method} instead."
    elif action == "modify_order":
        text = f"To confirm: ship order {order_id} to {address_line(args.get('new_address'))}."
    else:
        text = f"To confirm: {action_words([action])} for order {order_id}."
    text += " Reply yes to go ahead."
    if action == "cancel_order" and not args.get("reason"):
        text += " Please also tell me why: " + ", or ".join(reasons) + "?"
    return text


def done(action: str, result: dict[str, Any], c360: Customer360) -> str:
    """What the customer hears after a retail write changed the systems of record.

    Every fact comes from the write's result.
    """
    order_id = result.get("order_id")
    if "new_item_ids" in result:
        diff = float(result["price_difference"])
        method = payment_phrase(c360, result["payment_method_id"])
        if action == "exchange_items":
            settle = _difference(diff, method, now=False)
            return (f"Done: order {order_id} is now {result['status']}. You'll get an email "
                    f"with return instructions; {settle}.")  # fmt: skip
        settled = _difference(diff, method, now=True).replace("will be", "has been", 1)
        return f"Done: order {order_id} is now {result['status']}; {settled}."
    if action == "update_default_address":
        return f"Done: your default address is now {address_line(result['address'])}."
    if action == "modify_order":
        if result["changed"] == "address":
            return f"Done: order {order_id} now ships to {address_line(result['address'])}."
        return (f"Done: order {order_id} is now paid with "
                f"{payment_phrase(c360, result['payment_method_id'])}; {money(result['amount'])} "
                f"will be refunded to {payment_phrase(c360, result['refunded_to'])}.")  # fmt: skip
    if action == "cancel_order":
        methods = (_order(c360, order_id) or {}).get("payment_method_ids") or []
        to = payment_phrase(c360, methods[0]) if len(set(methods)) == 1 else "the original methods"
        return (f"Done: order {order_id} is cancelled. {money(result['refund'])} will be "
                f"refunded to {to} {result['refund_timing']}.")  # fmt: skip
    return (
        f"Done: the return for order {order_id} is requested. You'll get an email with "
        f"return instructions; {money(result['refund'])} will be refunded to "
        f"{payment_phrase(c360, result['payment_method_id'])}."
    )


#: What each write needs of an order's status, in the customer's words (tau2 retail policy).
_STATUS_RULE = {
    "cancel_order": "only orders that have not shipped yet (pending) can be cancelled",
    "modify_order": "an order can be changed only while it is pending, before it ships",
    "return_items": "items can be returned once the order has been delivered",
    "exchange_items": "items can be exchanged once the order has been delivered",
}


def refused(
    action: str, target: dict[str, Any], reason: str | None, alternative: str | None
) -> str:
    """A refusal in the customer's terms, and an allowed alternative when there is one.

    A status rule becomes "Order #W… is delivered, and only orders that have not shipped yet
    (pending) can be cancelled"; other reasons are the policy's own words.
    """
    status, order_id = target.get("status"), target.get("id")
    if status and order_id and action in _STATUS_RULE and "requires" in (reason or ""):
        if status == "pending (item modified)" and action == "modify_order":
            why = f"the items of order {order_id} have already been changed once (the limit)"
        else:
            why = f"order {order_id} is {status}, and {_STATUS_RULE[action]}"
        text = f"I'm sorry, I can't do that: {why}."
    else:
        text = generic.refused(reason)
    if alternative is not None:
        text += f" I can offer {action_words([alternative])} instead."
    return text


def partial_cancel(order: Order, names: list[str], refund: float) -> str:
    """Why single items cannot be cancelled, and what can be done instead.

    tau2 retail policy: a pending order is cancelled whole; its items can be changed, or
    returned once delivered.
    """
    return (
        f"Single items can't be cancelled from an order: order {order['order_id']} can only be "
        f"cancelled as a whole ({money(refund)} refunded). Instead, I can change "
        f"{items_phrase(names)} to another option while the order is pending, or you can return "
        "it once it's delivered. Would you like to cancel the whole order?"
    )


def which_item(order: Order, choices: list[str]) -> str:
    """Ask which item of an order is meant.

    Lists the tied choices, else the order's items (each named once, with its options when two
    lines share a name).
    """
    if not choices:
        names = [i["name"] for i in order["items"]]
        choices = sorted({
            i["name"] + (f" ({', '.join(f'{k} {v}' for k, v in i['options'].items())})"
                         if names.count(i["name"]) > 1 else "")
            for i in order["items"]
        })  # fmt: skip
    return f"Which item of order {order['order_id']} do you mean: {'; or '.join(choices)}?"


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
