"""What a retail message names and what a retail action is about: an order, its items, details.

The order comes from, in this order: an order id in the message; the pending proposal the customer
is answering; the session's issue; the open issue in memory (for a follow-up, or when the message
names no product); or the only order that fits the products named and the action's allowed
statuses. When several orders could be meant, the target is left empty and the agent asks.

Items are the order's items the message names, else those of the proposal or issue being
continued, else the order's only item. An exchange or item change also needs the new variant of
each item (:func:`swap_args`); an address or payment change the new address or a payment method on
file the message names (:func:`detail_args`).
"""

from __future__ import annotations

import re
from typing import Any

from support_agent.intents.signals import cancel_reason, extract_order_ids, parse_address
from support_agent.policy.config import ActionRule
from support_agent.state import (
    Customer360,
    Order,
    OrderItem,
    PaymentMethod,
    PendingAction,
    Target,
)
from support_agent.verticals.protocol import Turn

#: What a modify_order changes, from the intent that asked for it.
CHANGE_BY_INTENT = {"modify_address": "address", "modify_payment": "payment",
                    "modify_items": "items", "exchange": "items"}  # fmt: skip
_DEFAULT_ADDRESS_RE = re.compile(
    r"\b(default|profile|on file|account address|future orders)\b", re.I
)


def mentioned_products(text: str, c360: Customer360) -> list[str]:
    """Products of the customer's orders the message mentions.

    By full name or, when only one of them ends so, by the name's last word ("the keyboard");
    case-insensitive, plural allowed.
    """
    names = sorted({item["name"] for order in c360.get("orders", []) for item in order["items"]})
    norm = _normalise(text)
    return [n for n in names if re.search(_name_pattern(n, names), norm)]


def entities(text: str, c360: Customer360) -> dict[str, Any]:
    """``{"order_ids", "products", "reason", "address", "payment_method_id"}`` of a message."""
    return {
        "order_ids": extract_order_ids(text),
        "products": mentioned_products(text, c360),
        "reason": cancel_reason(text),
        "address": parse_address(text),
        "payment_method_id": payment_method_named(text, c360.get("payment_methods", [])),
    }


def names_option(text: str, pending: PendingAction) -> bool:
    """The message names an option value a pending exchange or item change asked about."""
    norm = _normalise(text)
    values = ((pending.get("target") or {}).get("args") or {}).get("variant_values") or []
    return any(names_value(norm, v) for v in values)


def wants_default_address(text: str) -> bool:
    """The message is about the default address on file, not one order's."""
    return bool(_DEFAULT_ADDRESS_RE.search(text))


def pending_args(turn: Turn, action: str | None = None) -> dict[str, Any]:
    """The arguments of the pending proposal (of ``action`` when given), else ``{}``."""
    pending = turn.pending or {}
    if action is not None and pending.get("action") != action:
        return {}
    return dict((pending.get("target") or {}).get("args") or {})


def change_of(turn: Turn) -> str:
    """What a modify_order changes: from the pending proposal, else from the intent."""
    change = pending_args(turn, "modify_order").get("change")
    return str(change) if change else CHANGE_BY_INTENT.get(turn.intent, "address")


def _order_id(action: str, rule: ActionRule, turn: Turn) -> tuple[str | None, str]:
    """The order an action is about and where it was found (see the module docstring)."""
    entities_ = turn.entities
    products: list[str] = entities_.get("products") or []
    pending = turn.pending
    issue = turn.state.get("issue")
    open_issue = turn.open_issue
    if entities_.get("order_ids"):
        return entities_["order_ids"][0], "message"
    pending_order = ((pending or {}).get("target") or {}).get("id")
    if pending and pending_order and (turn.signals.get("confirmation") or pending.get("awaiting")):
        return str(pending_order), "pending_action"
    if issue and issue.get("order_id"):
        return issue["order_id"], "session_issue"
    if (open_issue and open_issue.get("order_id")
            and (action == "follow_up_open_issue" or not products)):  # fmt: skip
        return open_issue["order_id"], "memory"
    if rule.target == "order" or action in ("order_status", "refund_status"):
        pool = list(turn.c360.get("orders", []))
        if products:
            pool = [o for o in pool if {i["name"] for i in o["items"]} & set(products)]
        if rule.status_in is not None:
            pool = [o for o in pool if o["status"] in rule.status_in] or pool
        if len(pool) == 1:
            return pool[0]["order_id"], "inferred"
    return None, "none"


def _normalise(text: str) -> str:
    """Lower case, hyphens and underscores as spaces, single spaces: how values are compared."""
    return re.sub(r"\s+", " ", re.sub(r"[-_]", " ", text.lower())).strip()


def names_value(text: str, value: Any) -> bool:
    """``text`` (normalised) names the option value as whole words (``"8 hours"``, ``"IPX4"``)."""
    wanted = _normalise(str(value))
    return bool(wanted) and re.search(rf"(?<![\w.]){re.escape(wanted)}(?![\w])", text) is not None


def _name_pattern(name: str, names: list[str]) -> str:
    """A product's full name or, when no other of ``names`` ends so, its last word."""
    full = _normalise(name)
    word = full.split()[-1]
    unique = [_normalise(n).split()[-1] for n in names].count(word) == 1
    alternatives = [re.escape(full)] + ([re.escape(word)] if unique and word != full else [])
    return rf"\b(?:{'|'.join(alternatives)})(?:e?s)?\b"


def segments(text: str, names: list[str]) -> dict[str, list[str]]:
    """The parts of the message about each product, one per mention.

    A part runs from up to two words before a mention of the product ("both tea kettles") to
    the next mention of any of ``names``; a product named twice ("the skateboard (length 28
    inch) and the skateboard (length 34 inch)") gets two parts.

    Returns:
        ``{product name: [normalised text of each mention]}`` for the products the message names.
    """
    norm = _normalise(text)
    marks: list[tuple[int, int, str]] = []
    for name in names:
        marks += [(m.start(), m.end(), name)
                  for m in re.finditer(_name_pattern(name, names), norm)]  # fmt: skip
    marks.sort()
    out: dict[str, list[str]] = {}
    previous_end = 0
    for n, (start, _, name) in enumerate(marks):
        lead = norm[previous_end:start].split()[-2:]
        stop = marks[n + 1][0] if n + 1 < len(marks) else len(norm)
        out.setdefault(name, []).append((" ".join(lead) + " " + norm[start:stop]).strip())
        previous_end = marks[n][1]
    return out


_ALL_EXCEPT = re.compile(
    r"\b(all|every|everything)\b[^.;?!]{0,200}?\b(except(?: for)?|but not|other than|apart from)\b",
    re.I,
)
_ALL_OF_THEM = re.compile(r"\b(both|all|two|three|each|every)\b")


def pick_lines(order: Order, names: list[str], text: str) -> tuple[list[OrderItem], list[str]]:
    """The order's lines the message names, by product name plus the options it names.

    For each product named: its only line; every line of it when the message says "both" or
    "all"; else, for each mention, the line whose current options that mention names most
    (several lines of one item are one choice). Lines of different items that tie are a real
    choice for the customer.

    Returns:
        ``(lines, ambiguous)``: the chosen lines (an item held twice and meant twice appears
        twice) and, for a tie, the choices in the customer's words (each once).
    """
    parts = segments(text, sorted({i["name"] for i in order["items"]}))
    chosen: list[OrderItem] = []
    ambiguous: list[str] = []
    for name in names:
        lines = [i for i in order["items"] if i["name"] == name]
        mentions = parts.get(name) or [""]
        if len(lines) <= 1 or any(_ALL_OF_THEM.search(part) for part in mentions):
            chosen += lines
            continue
        scored = [(part, [sum(names_value(part, v) for v in ln["options"].values())
                          for ln in lines]) for part in mentions]  # fmt: skip
        if any(max(scores) for _, scores in scored):  # a bare mention adds no choice
            scored = [(part, scores) for part, scores in scored if max(scores)]
        for _, scores in scored:
            best = [ln for ln, score in zip(lines, scores, strict=True) if score == max(scores)]
            if len({line["item_id"] for line in best}) == 1:
                free = [ln for ln in best if not any(ln is c for c in chosen)]
                chosen += free[:1]
            else:
                ambiguous += [f"{line['name']} ({options_text(line['options'])})"
                              for line in best]  # fmt: skip
    return chosen, list(dict.fromkeys(ambiguous))


def _items(
    rule: ActionRule, order: Order, source: str, turn: Turn
) -> tuple[list[OrderItem], list[str]]:
    """The order's lines the action is about, and the real choices when the message is ambiguous."""
    products: list[str] = turn.entities.get("products") or []
    if (but := _ALL_EXCEPT.search(turn.text)) is not None:  # "all items except the pet bed"
        names = sorted({i["name"] for i in order["items"]})
        rest = _normalise(turn.text[but.end() :])
        kept = [n for n in names if not re.search(_name_pattern(n, names), rest)]
        return [OrderItem(**i) for i in order["items"] if i["name"] in kept], []
    chosen, ambiguous = pick_lines(order, products, turn.text) if products else ([], [])
    if not chosen and not ambiguous and source in ("session_issue", "memory", "pending_action"):
        keep = list(
            pending_args(turn).get("item_ids")
            or (turn.state.get("issue") or {}).get("item_ids")
            or (turn.open_issue or {}).get("item_ids")
            or []
        )
        for item_id in keep:
            line = next((i for i in order["items"] if i["item_id"] == item_id), None)
            if line is not None:
                chosen.append(line)
    if not chosen and not ambiguous and rule.target == "order" and len(order["items"]) == 1:
        chosen = [order["items"][0]]
    return [OrderItem(**i) for i in chosen], ambiguous


def resolve(
    action: str, rule: ActionRule, turn: Turn, variants: dict[str, list[dict[str, Any]]]
) -> Target:
    """The order, items and details a retail action is about.

    Args:
        action: the candidate action.
        rule: its policy rule.
        turn: the turn.
        variants: available variants by product id (for exchanges and item changes).

    Returns:
        A target of kind ``order`` (``id`` the order id or ``None``; ``status`` the order's
        status, ``None`` if it is not the customer's; ``candidates`` the real choices when the
        items named are ambiguous) with ``args``: ``item_ids`` (one per line; an item meant
        twice is listed twice), ``item_names``, ``payment_method_id`` (where a refund or a price
        difference goes: the one the customer names, else the order's original method),
        ``reason``, and per action ``new_item_ids`` / ``new_options`` / ``variant_options`` /
        ``variant_values`` or ``change`` / ``new_address`` / ``new_payment_method_id``.
    """
    order_id, source = _order_id(action, rule, turn)
    if action == "update_default_address":
        order_id = None
    orders = {o["order_id"]: o for o in turn.c360.get("orders", [])}
    order = orders.get(order_id or "")
    items, ambiguous = _items(rule, order, source, turn) if order is not None else ([], [])
    original = next(iter((order or {}).get("payment_method_ids") or []), None)
    args: dict[str, Any] = {
        "item_ids": [i["item_id"] for i in items],
        "item_names": [i["name"] for i in items],
        "payment_method_id": turn.entities.get("payment_method_id")
        or pending_args(turn).get("payment_method_id")
        or original,
        "reason": turn.entities.get("reason") or pending_args(turn).get("reason"),
    }
    if action == "exchange_items" or (action == "modify_order" and change_of(turn) == "items"):
        args.update(swap_args(action, turn, items, variants))
    if action in ("modify_order", "update_default_address"):
        args.update(detail_args(action, turn, order))
    return {
        "kind": "order" if order_id else rule.target,
        "id": order_id,
        "label": f"order {order_id}" if order_id else None,
        "status": order["status"] if order is not None else None,
        "source": source,
        "candidates": ambiguous,
        "args": args,
    }


def choose_variant(
    item: OrderItem, variants: list[dict[str, Any]], text: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The variant of ``item``'s product the message asks for, or the real choices.

    A variant fits exactly when each of its option values is either named in the message or the
    item's current value (an option the customer does not mention stays as it is) and at least
    one differs from the item; of those, the one with the most values named wins. When none
    fits exactly, the variant naming the most changed values wins ("the silver one" when silver
    comes only at another brightness). A tie chooses nothing: the agent asks, listing the tied
    variants only.

    Args:
        item: the order line (its ``item_id`` and current ``options``).
        variants: the product's available variants ``{"item_id", "options", "price"}``.
        text: the part of the message about this item.

    Returns:
        ``(variant, [])`` when one is chosen, else ``(None, choices)``: the tied variants, or
        every other available variant when the message names none.
    """
    norm = _normalise(text)
    current = {k: _normalise(str(v)) for k, v in item.get("options", {}).items()}
    others = [v for v in variants if v["item_id"] != item["item_id"]]
    exact: list[tuple[int, dict[str, Any]]] = []
    loose: list[tuple[int, dict[str, Any]]] = []
    for variant in others:
        values = {k: _normalise(str(v)) for k, v in variant["options"].items()}
        named = {k for k, v in values.items() if names_value(norm, v)}
        changed = {k for k, v in values.items() if current.get(k) != v}
        if changed and all(k in named or k not in changed for k in values):
            exact.append((len(named), variant))
        if changed & named:
            loose.append((len(changed & named), variant))
    for fits in (exact, loose):
        if not fits:
            continue
        fits.sort(key=lambda t: (-t[0], t[1]["item_id"]))
        tied = [v for score, v in fits if score == fits[0][0]]
        return (tied[0], []) if len(tied) == 1 else (None, tied)
    return None, others


def swap_args(
    action: str,
    turn: Turn,
    items: list[OrderItem],
    variants: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The new variant of each line to exchange or change (:func:`choose_variant`).

    Returns:
        ``{"new_item_ids": [str], "new_options": [str], "price_difference": float | None,
        "variant_options": [str], "variant_values": [str]}`` (the difference in currency units,
        new prices minus old); ``new_item_ids`` (parallel to ``item_ids``) is empty unless
        every line's new variant is known (from the pending proposal or this message);
        ``variant_options`` lists what is available to ask about (each once),
        ``variant_values`` the option values an answer may name.
    """
    pending = pending_args(turn, action)
    if pending.get("new_item_ids"):
        keep = ("new_item_ids", "new_options", "price_difference", "variant_options",
                "variant_values")  # fmt: skip
        return {k: pending[k] for k in keep if k in pending}
    parts = segments(turn.text, sorted({i["name"] for i in items}))
    new_ids: list[str] = []
    new_options: list[str] = []
    available: list[str] = []
    values: set[str] = set()
    seen: dict[str, int] = {}
    for item in items:  # the n-th line of a product held twice reads the n-th mention of it
        mentions = parts.get(item["name"]) or [turn.text]
        nth = seen[item["name"]] = seen.get(item["name"], -1) + 1
        twice = sum(i["name"] == item["name"] for i in items) > 1
        text = mentions[nth] if twice and nth < len(mentions) else " ".join(mentions)
        everything = [v for v in variants.get(item["product_id"], [])
                      if v["item_id"] != item["item_id"]]  # fmt: skip
        chosen, choices = choose_variant(item, variants.get(item["product_id"], []), text)
        available += [options_text(v["options"]) for v in choices[:8]]
        values |= {_normalise(str(v)) for o in everything for v in o["options"].values()}
        if chosen is not None:
            new_ids.append(chosen["item_id"])
            new_options.append(f"{item['name']} ({options_text(chosen['options'])})")
    complete = bool(items) and len(new_ids) == len(items)
    prices = {v["item_id"]: float(v["price"]) for vs in variants.values() for v in vs}
    diff = sum(prices.get(n, 0.0) - float(i["price"]) for i, n in zip(items, new_ids, strict=False))
    return {
        "new_item_ids": new_ids if complete else [],
        "new_options": new_options if complete else [],
        "price_difference": round(diff, 2) if complete else None,
        "variant_options": list(dict.fromkeys(available)),
        "variant_values": sorted(values),
    }


def options_text(options: dict[str, Any]) -> str:
    """``{"color": "blue", "size": "M"}`` → ``"color blue, size M"``."""
    return ", ".join(f"{k} {v}" for k, v in options.items())


def detail_args(action: str, turn: Turn, order: Order | None) -> dict[str, Any]:
    """What an address or payment change needs, from this message or the pending proposal.

    Returns:
        ``{"change", "new_address", "new_payment_method_id"}``.
    """
    pending = pending_args(turn, action)
    current = (order or {}).get("payment_method_ids") or []
    return {
        "change": change_of(turn),
        "new_address": turn.entities.get("address") or pending.get("new_address"),
        "new_payment_method_id": payment_method_named(
            turn.text, turn.c360.get("payment_methods", []), tuple(current)
        )
        or pending.get("new_payment_method_id"),
    }


_BRANDS = ("visa", "mastercard", "amex", "american express", "discover")


def payment_method_named(
    text: str, methods: list[PaymentMethod], exclude: tuple[str, ...] = ()
) -> str | None:
    """The payment method on file the message names, or ``None`` (none, or not just one).

    A method is named by its last four digits, its brand ("the Visa"), its kind ("PayPal",
    "gift card", "credit card"), in that order of precedence; ``exclude`` drops methods (an
    order's current one, for a change of payment method).
    """
    norm = _normalise(text)
    pool = [m for m in methods if m["id"] not in exclude]
    tests = (
        lambda m: bool(m.get("last_four")) and re.search(rf"\b{m['last_four']}\b", norm),
        lambda m: bool(m.get("brand")) and str(m["brand"]).lower() in norm,
        lambda m: (m["kind"] == "paypal" and "paypal" in norm.replace(" ", ""))
        or (m["kind"] == "gift_card" and re.search(r"\bgift ?card", norm) is not None)
        or (m["kind"] == "credit_card" and re.search(r"\bcredit card", norm) is not None
            and not any(b in norm for b in _BRANDS)),
    )  # fmt: skip
    for test in tests:
        found = [m["id"] for m in pool if test(m)]
        if len(found) == 1:
            return str(found[0])
        if found:
            return None
    return None


def needs_variant(action: str, target: Target) -> bool:
    """An exchange or item change whose new variants are not known yet."""
    args = target.get("args") or {}
    changes_items = action == "exchange_items" or (
        action == "modify_order" and args.get("change") == "items"
    )
    return changes_items and not args.get("new_item_ids")


def detail_given(target: Target) -> bool:
    """A modify/update-address action has the new address (or payment method) it needs."""
    args = target.get("args") or {}
    if args.get("change") == "items":
        return bool(args.get("new_item_ids"))
    if args.get("change") == "payment":
        return bool(args.get("new_payment_method_id"))
    return bool(args.get("new_address"))
