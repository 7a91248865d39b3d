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
from support_agent.state import Customer360, Order, PendingAction, Target
from support_agent.verticals.protocol import Turn
from support_agent.verticals.retail.actions import choose_variant

#: What a modify_order changes, from the intent that asked for it.
CHANGE_BY_INTENT = {"modify_address": "address", "modify_payment": "payment",
                    "modify_items": "items", "exchange": "items"}  # fmt: skip
_DEFAULT_ADDRESS_RE = re.compile(
    r"\b(default|profile|on file|account address|future orders)\b", re.I
)


def mentioned_products(text: str, c360: Customer360) -> list[str]:
    """Product names from the customer's orders that the message mentions (case-insensitive)."""
    names = {item["name"] for order in c360.get("orders", []) for item in order["items"]}
    lowered = text.lower()
    return sorted(n for n in names if re.search(rf"\b{re.escape(n.lower())}s?\b", lowered))


def entities(text: str, c360: Customer360) -> dict[str, Any]:
    """``{"order_ids", "products", "reason", "address"}`` named in a retail message."""
    return {
        "order_ids": extract_order_ids(text),
        "products": mentioned_products(text, c360),
        "reason": cancel_reason(text),
        "address": parse_address(text),
    }


def names_option(text: str, pending: PendingAction) -> bool:
    """The message names an option value a pending exchange or item change asked about."""
    lowered = text.lower()
    values = ((pending.get("target") or {}).get("args") or {}).get("variant_values") or []
    return any(re.search(rf"\b{re.escape(v)}\b", lowered) for v in values)


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


def _items(rule: ActionRule, order: Order, source: str, turn: Turn) -> list[dict[str, Any]]:
    """The order's items the action is about."""
    products: list[str] = turn.entities.get("products") or []
    chosen = [dict(i) for i in order["items"] if i["name"] in products] if products else []
    if not chosen and source in ("session_issue", "memory", "pending_action"):
        keep = set(
            pending_args(turn).get("item_ids")
            or (turn.state.get("issue") or {}).get("item_ids")
            or (turn.open_issue or {}).get("item_ids")
            or []
        )
        chosen = [dict(i) for i in order["items"] if i["item_id"] in keep]
    if not chosen and rule.target == "order" and len(order["items"]) == 1:
        chosen = [dict(order["items"][0])]
    return chosen


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
        status, ``None`` if it is not the customer's) with ``args``: ``item_ids``,
        ``item_names``, ``payment_method_id`` (the order's), ``reason``, and per action
        ``swaps`` / ``new_options`` / ``variant_options`` / ``variant_values`` or ``change`` /
        ``new_address`` / ``new_payment_method_id``.
    """
    order_id, source = _order_id(action, rule, turn)
    if action == "update_default_address":
        order_id = None
    orders = {o["order_id"]: o for o in turn.c360.get("orders", [])}
    order = orders.get(order_id or "")
    items = _items(rule, order, source, turn) if order is not None else []
    args: dict[str, Any] = {
        "item_ids": [i["item_id"] for i in items],
        "item_names": [i["name"] for i in items],
        "payment_method_id": next(iter((order or {}).get("payment_method_ids") or []), None),
        "reason": turn.entities.get("reason") or pending_args(turn).get("reason"),
    }
    if action == "exchange_items" or (action == "modify_order" and change_of(turn) == "items"):
        args.update(swap_args(action, turn, order, args["item_ids"], variants))
    if action in ("modify_order", "update_default_address"):
        args.update(detail_args(action, turn, order))
    return {
        "kind": "order" if order_id else rule.target,
        "id": order_id,
        "label": f"order {order_id}" if order_id else None,
        "status": order["status"] if order is not None else None,
        "source": source,
        "candidates": [],
        "args": args,
    }


def swap_args(
    action: str,
    turn: Turn,
    order: Order | None,
    item_ids: list[str],
    variants: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The new variant of each item to exchange or change (``actions.choose_variant``).

    Returns:
        ``{"swaps": {old item id: new item id}, "new_options": [str], "variant_options": [str],
        "variant_values": [str]}``; ``swaps`` is empty unless every item's new variant is known
        (from the pending proposal or this message); ``variant_options`` lists what is available
        to ask about, ``variant_values`` the option values an answer may name.
    """
    pending = pending_args(turn, action)
    if pending.get("swaps"):
        keep = ("swaps", "new_options", "variant_options", "variant_values")
        return {k: pending[k] for k in keep if k in pending}
    swaps: dict[str, str] = {}
    new_options: list[str] = []
    available: list[str] = []
    values: set[str] = set()
    for item in (order or {}).get("items", []):
        if item["item_id"] not in item_ids:
            continue
        chosen, others = choose_variant(dict(item), variants.get(item["product_id"], []), turn.text)
        available += [options_text(v["options"]) for v in others[:5]]
        values |= {str(v).lower() for o in others for v in o["options"].values()}
        if chosen is not None:
            swaps[item["item_id"]] = chosen["item_id"]
            new_options.append(f"{item['name']} ({options_text(chosen['options'])})")
    complete = bool(item_ids) and len(swaps) == len(item_ids)
    return {
        "swaps": swaps if complete else {},
        "new_options": new_options if complete else [],
        "variant_options": available,
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
        "new_payment_method_id": named_payment_method(turn, current)
        or pending.get("new_payment_method_id"),
    }


def named_payment_method(turn: Turn, current: list[str]) -> str | None:
    """A payment method on file, other than the order's, that the message names by kind."""
    text = turn.text.lower()
    for method in turn.c360.get("payment_methods", []):
        if method["id"] in current:
            continue
        kind = method["kind"].replace("_", " ")
        four = method.get("last_four")
        if kind in text or (four and four in text):
            return str(method["id"])
    return None


def needs_variant(action: str, target: Target) -> bool:
    """An exchange or item change whose new variants are not known yet."""
    args = target.get("args") or {}
    changes_items = action == "exchange_items" or (
        action == "modify_order" and args.get("change") == "items"
    )
    return changes_items and not args.get("swaps")


def detail_given(target: Target) -> bool:
    """A modify/update-address action has the new address (or payment method) it needs."""
    args = target.get("args") or {}
    if args.get("change") == "items":
        return bool(args.get("swaps"))
    if args.get("change") == "payment":
        return bool(args.get("new_payment_method_id"))
    return bool(args.get("new_address"))
