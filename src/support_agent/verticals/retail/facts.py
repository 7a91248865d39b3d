"""Facts on request: what customers ask about their orders, the catalog and this conversation.

Every fact comes from the Customer 360 (orders, items, prices, payments, tracking numbers,
gift card balances), the catalog (available variants and prices) or this session's own action
results (refund amounts), never from a model. A question is read with plain patterns; each
kind of fact answers only when the question names what it is about (an order, a product, a
payment method), so an unrelated message gets no facts.
"""

from __future__ import annotations

import re
from typing import Any

from support_agent.state import Customer360, Order
from support_agent.templates import money
from support_agent.verticals.protocol import Turn
from support_agent.verticals.retail.targets import _normalise, names_value, options_text
from support_agent.verticals.retail.templates import payment_phrase

_QUESTION = re.compile(
    r"\b(how many|how much|what|which|cheapest|least expensive|most expensive|price|prices|"
    r"cost|costs|total|tracking|balance|options?|available|paid|get back|refund)\b|\?",
    re.I,
)
_CATALOG = re.compile(r"\b(how many|cheapest|least expensive|options?|available|prices)\b", re.I)
_SESSION_REFUND = re.compile(
    r"\b(total|in total|altogether|overall|all together)\b[^.?!]{0,200}\b(refund|back)\b|"
    r"\bhow much\b[^.?!]{0,200}\b(get back|refund(ed)?|back)\b",
    re.I,
)


def _squash(text: str) -> str:
    """Compare product names loosely: "T-Shirt", "t shirt" and "tshirt" are one."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _named_products(text: str, names: list[str]) -> list[str]:
    """Catalog product names the message names (whole name, loosely; or its plural)."""
    squashed = _squash(text)
    out = []
    for name in names:
        key = _squash(name)
        if key and (key in squashed or key + "s" in squashed):
            out.append(name)
    return out


def asks_facts(text: str) -> bool:
    """Whether the message asks for information at all (cheap test before any query)."""
    return _QUESTION.search(text) is not None


def catalog_facts(text: str, catalog: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Available variants of the products the message names.

    Args:
        text: the customer's message.
        catalog: ``{product name: [{"item_id", "options", "price"}]}``, available variants only.

    Returns:
        Sentences: how many options, the cheapest (or most expensive) one, or the options with
        their prices (narrowed to the option values the message names).
    """
    if not _CATALOG.search(text):
        return []
    out = []
    norm = _normalise(text)
    for name in _named_products(text, sorted(catalog)):
        variants = catalog[name]
        named = [v for v in variants if any(names_value(norm, x) for x in v["options"].values())]
        pool = named or variants
        if re.search(r"\bhow many\b", text, re.I):
            out.append(f"There are {len(variants)} {name} options available right now.")
        if re.search(r"\b(cheapest|least expensive|lowest price)\b", text, re.I):
            best = min(pool, key=lambda v: v["price"])
            out.append(
                f"The cheapest available {name} is {money(best['price'])} "
                f"({options_text(best['options'])})."
            )
        elif re.search(r"\bmost expensive\b", text, re.I):
            best = max(pool, key=lambda v: v["price"])
            out.append(
                f"The most expensive available {name} is {money(best['price'])} "
                f"({options_text(best['options'])})."
            )
        elif not re.search(r"\bhow many\b", text, re.I) or named:
            listed = "; ".join(
                f"{options_text(v['options'])}: {money(v['price'])}"
                for v in sorted(pool, key=lambda v: v["price"])[:12]
            )
            out.append(f"Available {name} options: {listed}.")
    return out


_STATUS_WORDS = ("cancelled", "delivered", "pending", "processed")


def _order_of(
    turn: Turn, orders: list[Order], products: list[str], recent: str | None
) -> Order | None:
    """The order a question is about.

    Named; else the only one with a named status or product; else the session's issue, or the
    order this conversation last changed.
    """
    ids = turn.entities.get("order_ids") or []
    by_id = {o["order_id"]: o for o in orders}
    if ids and ids[0] in by_id:
        return by_id[ids[0]]
    status = next((s for s in _STATUS_WORDS if re.search(rf"\b{s}\b", turn.text, re.I)), None)
    if status is not None:
        same = [o for o in orders if o["status"] == status]
        if len(same) == 1:
            return same[0]
    holding = [o for o in orders if any(i["name"] in products for i in o["items"])]
    if len(holding) == 1:
        return holding[0]
    issue = turn.state.get("issue") or {}
    return by_id.get(str(issue.get("order_id") or recent or ""))


def order_facts(
    turn: Turn,
    c360: Customer360,
    recent: str | None = None,
    returned: dict[str, float] | None = None,
) -> list[str]:
    """Facts about the customer's own orders the message asks for.

    Item prices and options, the most expensive item, an order's total and what was paid,
    tracking numbers, the total of one product across orders, gift card balances.

    Args:
        turn: the turn (its message, entities and session issue).
        c360: the customer's 360.
        recent: the order this conversation last changed ("my new order").
        returned: ``{order id: refund}`` of the returns requested in this conversation (what
            "the remaining items" leave out).
    """
    text = turn.text
    orders = c360.get("orders", [])
    held = sorted({i["name"] for o in orders for i in o["items"]})
    products = _named_products(text, held)
    order = _order_of(turn, orders, products, recent)
    out: list[str] = []
    if re.search(r"\bgift card\b", text, re.I) and re.search(r"\bbalance\b", text, re.I):
        for m in c360.get("payment_methods", []):
            if m.get("kind") == "gift_card":
                out.append(f"Your gift card balance is {money(float(m.get('balance') or 0))}.")
    if re.search(r"\btracking\b", text, re.I):
        shown = [order] if order is not None else [o for o in orders if o.get("tracking_ids")]
        for o in shown:
            if o.get("tracking_ids"):
                out.append(
                    f"The tracking number of order {o['order_id']} is "
                    f"{', '.join(o['tracking_ids'])} (status: {o['status']})."
                )
            else:
                out.append(
                    f"Order {o['order_id']} is {o['status']} and has no tracking number yet."
                )
    if order is not None and re.search(r"\bmost expensive\b", text, re.I):
        top = max(order["items"], key=lambda i: i["price"])
        out.append(
            f"The most expensive item in order {order['order_id']} is the {top['name']} "
            f"({options_text(top['options'])}) at {money(top['price'])}."
        )
    asks_item = re.search(
        r"\b(price|cost|costs|how much|paid|material|options?|what)\b", text, re.I
    )
    if products and asks_item and not re.search(r"\btotal\b", text, re.I):
        scope = [order] if order is not None else orders
        for o in scope:
            for i in o["items"]:
                if i["name"] in products:
                    out.append(
                        f"The {i['name']} in order {o['order_id']} "
                        f"({options_text(i['options'])}) costs {money(i['price'])}."
                    )
    if re.search(r"\btotal\b", text, re.I) and not asks_session_money(text):
        if products and (order is None or re.search(r"\b(all|orders)\b", text, re.I)):
            lines = [i for o in orders for i in o["items"] if i["name"] in products]
            out.append(
                f"The {', '.join(products)} across your orders total "
                f"{money(sum(i['price'] for i in lines))} ({len(lines)} items)."
            )
        elif order is not None and re.search(r"\bremaining\b", text, re.I):
            back = (returned or {}).get(order["order_id"], 0.0)
            left = round(order.get("paid", 0.0) - order.get("refunded", 0.0) - back, 2)
            out.append(
                f"For the remaining items of order {order['order_id']} you paid "
                f"{money(left)} (after the {money(back)} refund of the returned items)."
            )
        elif order is not None:
            out.append(order_total(order, c360))
    return list(dict.fromkeys(out))


def order_total(order: Order, c360: Customer360) -> str:
    """An order's total, what was paid and with what, and any refund."""
    methods = " and ".join(payment_phrase(c360, m) for m in order.get("payment_method_ids") or [])
    text = f"Order {order['order_id']} totals {money(order.get('total', 0.0))}"
    if order.get("paid"):
        text += f"; {money(order['paid'])} was paid" + (f" with {methods}" if methods else "")
    if order.get("refunded"):
        text += f" and {money(order['refunded'])} refunded"
    return text + "."


def session_money(results: list[dict[str, Any]]) -> list[str]:
    """What this conversation's actions refund and charge, and the totals.

    Args:
        results: the results of this session's completed actions (``refund`` for a cancellation
            or a return; ``price_difference`` for an exchange or an item change, positive when
            the customer pays it).
    """
    back, pay = [], []
    for r in results:
        if r.get("refund"):
            back.append((r.get("order_id"), float(r["refund"])))
        elif (diff := float(r.get("price_difference") or 0)) < 0:
            back.append((r.get("order_id"), -diff))
        elif diff > 0:
            pay.append((r.get("order_id"), diff))
    if not back and not pay:
        return ["Nothing has been refunded or charged in this conversation so far."]
    out = []
    if back:
        parts = ", ".join(f"{money(a)} for order {o}" for o, a in back)
        out.append(
            f"In total you'll get back {money(round(sum(a for _, a in back), 2))} ({parts})."
        )
    if pay:
        parts = ", ".join(f"{money(a)} for order {o}" for o, a in pay)
        out.append(
            f"The price differences to pay come to {money(round(sum(a for _, a in pay), 2))}"
            f" ({parts})."
        )
    if back and pay:
        net = round(sum(a for _, a in pay) - sum(a for _, a in back), 2)
        out.append(f"Net, that is {money(abs(net))} {'to pay' if net > 0 else 'back to you'}.")
    return out


_SESSION_PAY = re.compile(
    r"\b(pay|owe)\b[^.?!]{0,200}\btotal\b|\btotal\b[^.?!]{0,200}\b(pay|owe)\b", re.I
)


def asks_catalog(text: str) -> bool:
    """The question is about the catalog ("how many … options", "the cheapest …")."""
    return _CATALOG.search(text) is not None


_SESSION_WORDS = re.compile(r"\b(new order|remaining|this order|that order|the order)\b", re.I)


def needs_session(text: str) -> bool:
    """The answer needs this conversation's action results (totals, "my new order")."""
    return asks_session_money(text) or _SESSION_WORDS.search(text) is not None


def asks_session_money(text: str) -> bool:
    """The message asks how much the customer gets back or pays in total."""
    return _SESSION_REFUND.search(text) is not None or _SESSION_PAY.search(text) is not None
