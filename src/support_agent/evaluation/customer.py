"""A scripted customer (no LLM) for τ²-bench retail tasks.

It speaks from the task, as a customer would: it identifies with what the task says it knows
(email, or name and zip, or user id and zip; when the agent sends a one-time code to the email
on file, it reads the code from its mailbox, the development sender's outbox), states each
request the task expects in plain English (order id, product names, the options it wants, the
payment method by its everyday name, the reason), answers the agent's questions from the same
facts, asks the questions the task's reason for calling contains, and says "yes" only when the
agent proposes exactly the next expected write ("no" otherwise). It never sees the agent's
internals beyond what a chat client gets: the reply and the pending approval's action and
arguments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REASONS = {
    "no longer needed": "I no longer need it",
    "ordered by mistake": "I ordered it by mistake",
}
#: Our action name for each τ² write tool (``modify_order`` covers address, payment and items).
ACTION_OF = {
    "cancel_pending_order": "cancel_order",
    "return_delivered_order_items": "return_items",
    "exchange_delivered_order_items": "exchange_items",
    "modify_pending_order_items": "modify_order",
    "modify_pending_order_address": "modify_order",
    "modify_pending_order_payment": "modify_order",
    "modify_user_address": "update_default_address",
}
_INFO_CUES = re.compile(
    r"\b(know|how much|how many|what is|what are|which|tracking number|ask the agent|"
    r"get back|confirm the total|balance)\b",
    re.I,
)


def payment_phrase(method: dict[str, Any]) -> str:
    """How a customer names a payment method.

    "my Visa card ending in 6791", "my Mastercard ending in 1037", "my PayPal account",
    "my gift card".
    """
    if method["source"] == "gift_card":
        return "my gift card"
    if method["source"] == "paypal":
        return "my PayPal account"
    brand = str(method.get("brand") or "credit").title()
    noun = "" if brand.lower() in ("mastercard", "amex") else " card"  # never "Mastercard card"
    return f"my {brand}{noun} ending in {method['last_four']}"


def options_phrase(options: dict[str, Any]) -> str:
    """``{"color": "blue", "size": "M"}`` → ``"color blue, size M"``."""
    return ", ".join(f"{k} {v}" for k, v in options.items())


def address_phrase(args: dict[str, Any]) -> str:
    """A postal address as a customer writes it."""
    street = ", ".join(p for p in (args.get("address1"), args.get("address2")) if p)
    return f"{street}, {args['city']}, {args['state']} {args['zip']}, {args['country']}"


_FIRST_PERSON = (
    (r"\b(ask|asks|asked|help|helps|tell|tells|give|gives|send|sends|let|lets|for|to|with|"
     r"call|calls|provide|provides|show|shows|offer|offers) you\b", r"\1 me"),
    (r"\byou are\b", "I am"), (r"\byou were\b", "I was"), (r"\byou're\b", "I'm"),
    (r"\byou've\b", "I've"), (r"\byou'd\b", "I'd"), (r"\byou'll\b", "I'll"),
    (r"\byourself\b", "myself"), (r"\byours\b", "mine"), (r"\byour\b", "my"),
    (r"\byou\b", "I"),
)  # fmt: skip
_AGENT = re.compile(r"\bthe (?:customer service |support |human )?agent\b(?: (\w+?)s\b)?", re.I)
#: Sentences that instruct the simulated customer rather than say something to the agent.
_STAGE_DIRECTIONS = ("be ", "do not", "don't", "make sure", "mention", "if ", "when ",
                     "your name", "note", "never", "try ", "say ")  # fmt: skip


def to_first_person(sentence: str) -> str:
    """A task's second-person sentence as the customer says it.

    "You want to know the tracking number, and if the agent asks you to confirm" → "I want to
    know the tracking number, and if you ask me to confirm"; "Ask the agent how much..." →
    "Can you tell me how much...".
    """
    s = re.sub(r"\bAsk the agent\b", "Can \x00 tell me", sentence)
    s = re.sub(r"\bask the agent\b", "ask \x00", s)
    s = _AGENT.sub(lambda m: "\x00" + (f" {m.group(1)}" if m.group(1) else ""), s)
    for pattern, repl in _FIRST_PERSON:
        s = re.sub(pattern, repl, s)
        s = re.sub(pattern.replace(r"\byou", r"\bYou", 1), repl, s)
    return s.replace("\x00", "you")


@dataclass
class ScriptedCustomer:
    """The customer of one task.

    Attributes:
        task: the τ² task (``user_scenario``, ``evaluation_criteria``).
        db: the τ² retail database before the task.
        user_id: the task's customer.
        mailbox: the one-time code sender's outbox (``CODE_SENDER=file``): the customer's
            inbox, where codes sent to their email arrive.
    """

    task: dict[str, Any]
    db: dict[str, Any]
    user_id: str
    mailbox: Path | None = None

    @property
    def user(self) -> dict[str, Any]:
        """The customer's τ² user record."""
        return dict(self.db["users"][self.user_id])

    def identify(self) -> str:
        """The opening line: who the customer is, from the task's known info."""
        known = self.task["user_scenario"]["instructions"].get("known_info") or ""
        user = self.user
        first, last = user["name"]["first_name"], user["name"]["last_name"]
        zip_code = user["address"]["zip"]
        if user["email"].lower() in known.lower():
            return f"Hi, my email is {user['email']}."
        if self.user_id in known:
            return f"Hi, my user id is {self.user_id} and my zip code is {zip_code}."
        return f"Hi, I'm {first} {last}, zip code {zip_code}."

    def code(self) -> str | None:
        """The newest one-time code in the customer's mailbox (sent to their email), if any."""
        if self.mailbox is None or not self.mailbox.exists():
            return None
        email = str(self.user["email"]).lower()
        codes = [
            str(m["code"])
            for line in self.mailbox.read_text(encoding="utf-8").splitlines()
            if line and (m := json.loads(line))["to"] == email
        ]
        return codes[-1] if codes else None

    def _line_name(self, order: dict[str, Any], item_id: str, detailed: bool) -> str:
        line = next(i for i in order["items"] if i["item_id"] == item_id)
        name = line["name"].lower()
        same = [i for i in order["items"] if i["product_id"] == line["product_id"]]
        if detailed or len({i["item_id"] for i in same}) > 1:
            return f"the {name} ({options_phrase(line['options'])})"
        return f"the {name}"

    def _new_options(self, item_id: str) -> dict[str, Any]:
        for product in self.db["products"].values():
            if item_id in product["variants"]:
                return dict(product["variants"][item_id]["options"])
        raise KeyError(item_id)

    def _method(self, method_id: str) -> str:
        return payment_phrase(self.user["payment_methods"][method_id])

    def request(self, call: dict[str, Any], detailed: bool = False) -> str:
        """The plain-English request for one expected write call.

        Args:
            call: ``{"name": τ² tool, "arguments": {...}}``.
            detailed: name every item with its current options (after "which one?").
        """
        name, args = call["name"], call["arguments"]
        if name == "modify_user_address":
            return f"Please update my default address to {address_phrase(args)}."
        order_id = args["order_id"]
        order = self.db["orders"][order_id]
        if name == "cancel_pending_order":
            reason = _REASONS.get(args["reason"], args["reason"])
            return f"Please cancel my order {order_id}, {reason}."
        if name == "modify_pending_order_address":
            return (
                f"Please change the shipping address of my order {order_id} to "
                f"{address_phrase(args)}."
            )
        if name == "modify_pending_order_payment":
            return (
                f"For my order {order_id}, please switch the payment to "
                f"{self._method(args['payment_method_id'])}."
            )
        items = [self._line_name(order, i, detailed) for i in args["item_ids"]]
        method = self._method(args["payment_method_id"])
        if name == "return_delivered_order_items":
            listed = ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]
            return f"I'd like to return {listed} from order {order_id}; please refund {method}."
        swaps = [
            f"{old} for one with {options_phrase(self._new_options(new))}"
            for old, new in zip(items, args["new_item_ids"], strict=True)
        ]
        verb = "exchange" if name == "exchange_delivered_order_items" else "change"
        where = "from" if verb == "exchange" else "in my pending order"
        return (
            f"I'd like to {verb} {' and '.join(swaps)}, {where} {order_id}. "
            f"Please use {method} for any price difference."
        )

    def answer(self, reply: str, call: dict[str, Any] | None, asked_before: int) -> str | None:
        """The answer to an agent's question about the current request, or ``None`` to move on.

        Args:
            reply: the agent's last message.
            call: the expected write being discussed (``None`` when none is left).
            asked_before: how many questions this request has had already.
        """
        text = reply.lower()
        if "?" not in reply or asked_before >= 3:
            return None
        if "6-digit code" in text and (code := self.code()) is not None:
            return f"The code is {code}."
        if re.search(r"\b(email|zip|verify|identify|who you are)\b", text):
            return self.identify()
        if call is None:
            return None
        args = call["arguments"]
        if re.search(r"\breason\b", text) and "reason" in args:
            return str(_REASONS.get(args["reason"], args["reason"])).capitalize() + "."
        if re.search(r"\b(payment method|which card|refund to|pay (for )?the|charge)\b", text):
            if "payment_method_id" in args:
                return f"Please use {self._method(args['payment_method_id'])}."
        if re.search(r"\border (number|id)\b|which order", text) and "order_id" in args:
            return f"It's order {args['order_id']}."
        if re.search(r"\baddress\b", text) and "address1" in args:
            return f"The address is {address_phrase(args)}."
        return self.request(call, detailed=True)

    def questions(self, everything: bool = False) -> list[str]:
        """The information questions in the task's reason for calling, in the first person.

        Args:
            everything: every sentence of the reason for calling (a task that expects no
                write: what the customer says is all there is).
        """
        reason = self.task["user_scenario"]["instructions"].get("reason_for_call") or ""
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", reason.strip()) if len(s) > 3]
        return [
            to_first_person(s)
            for s in sentences
            if not s.lower().startswith(_STAGE_DIRECTIONS) and (everything or _INFO_CUES.search(s))
        ]

    def consents_to(self, approval: dict[str, Any], call: dict[str, Any] | None) -> bool:
        """Whether the proposed write is exactly the expected one (then the answer is "yes").

        The pending approval's action and arguments (order, items, replacements, payment
        method, reason, address) must all agree with the expected call's.
        """
        if call is None:
            return False
        requests = approval.get("action_requests") or []
        if len(requests) != 1:
            return False
        got, args = requests[0], call["arguments"]
        if got.get("name") != ACTION_OF.get(call["name"]):
            return False
        have = got.get("args") or {}
        if "order_id" in args and have.get("target_id") != args["order_id"]:
            return False
        for key in ("item_ids", "new_item_ids"):
            if key in args and sorted(have.get(key) or []) != sorted(args[key]):
                return False
        if "payment_method_id" in args:
            chosen = have.get("payment_method_id") or have.get("new_payment_method_id")
            if chosen != args["payment_method_id"]:
                return False
        if "reason" in args and have.get("reason") != args["reason"]:
            return False
        if "address1" in args:
            new = have.get("new_address") or {}
            for key in ("address1", "address2", "city", "state", "zip", "country"):
                if str(new.get(key) or "").strip().lower() != str(args[key]).strip().lower():
                    return False
        return True
