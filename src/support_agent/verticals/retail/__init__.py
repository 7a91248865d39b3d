"""The retail vertical: an online store's orders, returns, exchanges and changes.

Implements ``verticals.protocol.Vertical`` for the tau2-bench retail policy: targets are orders
(with items and details, ``targets``), writes are cancel, return, exchange, item/address/payment
changes and the default address (``actions``), every word the customer hears is in
``templates``, and the data set loads with ``loader``. Business numbers (cancellation reasons,
refund timing, which intents open an issue) come from the tenant's ``vertical.settings``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from support_agent.actions.ledger import ActionCall
from support_agent.errors import NeedsHumanError
from support_agent.policy.config import ActionRule
from support_agent.services import Services
from support_agent.state import Issue, PolicyDecision, Target
from support_agent.verticals.protocol import Proposal, Refusal, Turn, Vertical
from support_agent.verticals.retail import actions, facts, targets, templates
from support_agent.verticals.retail.loader import load_retail

#: Alternatives a refusal may offer, when the policy allows them.
_ALTERNATIVES = ("return_items", "exchange_items", "order_status")
_WHOLE_ORDER = re.compile(r"\b(whole|entire|full|complete)\s+order\b|\ball of it\b", re.I)
#: Writes that need a new address (or payment method) before they can be confirmed.
_NEEDS_DETAIL = ("modify_order", "update_default_address")


class RefundTiming(BaseModel):
    """When a refund reaches the customer, by payment method kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gift_card: str = "immediately"
    other: str = "in 5 to 7 business days"


class RetailSettings(BaseModel):
    """Retail business numbers (``vertical.settings`` in ``tenant.yaml``).

    Attributes:
        cancellation_reasons: the reasons a cancellation accepts (tau2 retail policy).
        refund_timing: when refunds arrive, by payment method kind.
        problem_intents: intents under which a proposal opens an issue about the items.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cancellation_reasons: tuple[str, ...] = ("no longer needed", "ordered by mistake")
    refund_timing: RefundTiming = RefundTiming()
    problem_intents: tuple[str, ...] = ("return", "exchange", "complaint")


class RetailVertical(Vertical):
    """Orders, items and their changes (see the module docstring)."""

    name: ClassVar[str] = "retail"
    settings_model: ClassVar[type[BaseModel]] = RetailSettings
    settings: RetailSettings

    # --- reading the message -----------------------------------------------------------------

    def entities(self, text: str, c360: Any) -> dict[str, Any]:
        """Order ids, products of the customer's orders, a cancellation reason, an address."""
        return targets.entities(text, c360)

    def answers_pending(self, turn: Turn, entities: dict[str, Any]) -> bool:
        """The new address, or an option of the new variant, the agent asked for."""
        pending = turn.pending or {}
        if pending.get("awaiting") == "new_address":
            return bool(entities.get("address"))
        return pending.get("awaiting") == "new_item" and targets.names_option(turn.text, pending)

    def names_subject(self, entities: dict[str, Any]) -> bool:
        """An order id or a product of the customer's orders is named."""
        return bool(entities.get("order_ids") or entities.get("products"))

    def prior(self, action: str, turn: Turn) -> float | None:
        """Which address change is meant: the default address on file, or one order's."""
        if turn.intent != "modify_address" or not targets.wants_default_address(turn.text):
            return None
        return {"update_default_address": 1.0, "modify_order": 0.4}.get(action)

    # --- targets -----------------------------------------------------------------------------

    async def resolve_targets(
        self, rules: Mapping[str, ActionRule], turn: Turn
    ) -> dict[str, Target]:
        """Orders, items and details of every candidate (one variants query per turn)."""
        orders = turn.c360.get("orders", [])
        variants: dict[str, list[dict[str, Any]]] = {}
        if {"exchange_items", "modify_order"} & set(rules) and orders:
            products = sorted({i["product_id"] for o in orders for i in o["items"]})
            variants = await actions.available_variants(
                turn.deps.services, turn.tenant_id, products
            )
        resolved = {name: targets.resolve(name, rule, turn, variants)
                    for name, rule in rules.items()}  # fmt: skip
        if turn.state.get("authenticated") and facts.asks_facts(turn.text):
            said = await self._facts(turn)
            for name, rule in rules.items():
                if rule.kind == "inform" and said:
                    resolved[name] = {**resolved[name],
                                      "args": {**(resolved[name].get("args") or {}),
                                               "facts": said}}  # fmt: skip
        return resolved

    async def _facts(self, turn: Turn) -> list[str]:
        """The facts the message asks for (orders, catalog, this conversation's refunds).

        The catalog and the action ledger are read only when the question needs them.
        """
        services, tenant_id, text = turn.deps.services, turn.tenant_id, turn.text
        results: list[dict[str, Any]] = []
        if facts.needs_session(text):
            results = await actions.session_results(services, tenant_id, turn.session_id)
        recent = next((str(r["order_id"]) for r in reversed(results) if r.get("order_id")), None)
        returned: dict[str, float] = {}
        for r in results:
            if r.get("status") == "return requested":
                returned[str(r["order_id"])] = returned.get(str(r["order_id"]), 0.0) + r["refund"]
        said = facts.order_facts(turn, turn.c360, recent, returned)
        if facts.asks_catalog(text):
            catalog = await actions.available_variants(services, tenant_id, key="name")
            said += facts.catalog_facts(text, catalog)
        if facts.asks_session_money(text):
            said += facts.session_money(results)
        return said

    def eligible(self, action: str, rule: ActionRule, target: Target) -> bool:
        """An order action's status rule; the goal then ranks its allowed sibling first."""
        if rule.status_in is None or rule.target != "order" or target.get("id") is None:
            return True
        return target.get("status") in rule.status_in

    # --- proposing and acting ----------------------------------------------------------------

    def propose(self, decision: PolicyDecision, turn: Turn) -> Proposal:
        """Ask for a missing variant or address, else list exactly what a "yes" will do."""
        action = decision["action"]
        target = decision.get("target") or {}
        if targets.needs_variant(action, target):
            return self._ask_variant(action, target, turn)
        if action in _NEEDS_DETAIL and not targets.detail_given(target):
            args = target.get("args") or {}
            return Proposal(
                reply=templates.ask_new_detail(
                    str(args.get("change", "address")), target.get("id")
                ),
                decision="respond",
                pending={
                    "action": action,
                    "intent": turn.intent,
                    "target": target,
                    "awaiting": "new_address",
                },  # fmt: skip
            )
        partial = self._partial_cancel(action, target, turn)
        if partial is not None:
            return partial
        offered = [action] if action in _NEEDS_DETAIL else self._offered(action, target, turn)
        problem = action not in _NEEDS_DETAIL and turn.intent in self.settings.problem_intents
        lead = ""
        if problem:
            items = templates.items_phrase((target.get("args") or {}).get("item_names") or [])
            lead = templates.sorry_about(
                items, str(target.get("id")), target.get("status"), offered
            )
        reply = lead + templates.confirm(action, target.get("args") or {}, target.get("id"),
                                         turn.c360, self.settings.cancellation_reasons)  # fmt: skip
        return Proposal(
            reply=reply,
            pending={"action": action, "intent": turn.intent, "target": target, "awaiting": None},
            issue=self._issue(target, offered, turn) if problem else None,
            proposed=True,
        )

    def _partial_cancel(self, action: str, target: Target, turn: Turn) -> Proposal | None:
        """'Cancel just the X': explain that an order is cancelled whole, and the alternatives."""
        if action != "cancel_order" or turn.pending:
            return None
        order = next((o for o in turn.c360.get("orders", [])
                      if o["order_id"] == target.get("id")), None)  # fmt: skip
        if order is None or _WHOLE_ORDER.search(turn.text):
            return None
        held = {i["name"] for i in order["items"]}
        named = [n for n in turn.entities.get("products") or [] if n in held]
        if not named or set(named) >= held:
            return None
        refund = order.get("paid", 0.0) - order.get("refunded", 0.0)
        return Proposal(reply=templates.partial_cancel(order, named, refund), decision="respond")

    def _ask_variant(self, action: str, target: Target, turn: Turn) -> Proposal:
        args = target.get("args") or {}
        asked = (turn.pending or {}).get("awaiting") == "new_item"
        if asked or not args.get("variant_options"):  # asked once, or nothing else available
            return Proposal(
                reply=templates.variant_handoff(),
                decision="escalate",
                handoff_reason="a human agent must help choose the new options",
            )
        problem = turn.intent in self.settings.problem_intents and action == "exchange_items"
        items = templates.items_phrase(args.get("item_names") or [])
        return Proposal(
            reply=templates.ask_variant(items, str(target.get("id")), args["variant_options"],
                                        exchange=action == "exchange_items", problem=problem),
            decision="respond",
            pending={"action": action, "intent": turn.intent, "target": target,
                     "awaiting": "new_item"},
            issue=self._issue(target, ["exchange_items", "return_items"], turn)
            if problem else None,
        )  # fmt: skip

    def _offered(self, action: str, target: Target, turn: Turn) -> list[str]:
        """The action and its allowed item-level siblings on the same order."""
        siblings = [
            a["action"]
            for a in (turn.state.get("policy") or {}).get("alternatives", [])
            if a["action"] in ("return_items", "exchange_items")
            and a["action"] != action
            and (a.get("target") or {}).get("id") == target.get("id")
        ]
        return [action, *siblings]

    def _issue(self, target: Target, proposed: list[str], turn: Turn) -> Issue:
        """The issue about the order's items: the open one for this order, or a new one."""
        order_id = str(target.get("id"))
        base: Issue = next(
            (c for c in (turn.state.get("issue"), turn.open_issue)
             if c and c.get("order_id") == order_id), Issue(),
        )  # fmt: skip
        args = target.get("args") or {}
        return {
            "id": base.get("id") or f"iss-{turn.session_id}-{order_id.lstrip('#')}",
            "customer_id": turn.state.get("customer_id"),
            "subject_kind": "order",
            "subject_id": order_id,
            "subject_label": f"order {order_id}",
            "order_id": order_id,
            "item_ids": args.get("item_ids") or base.get("item_ids") or [],
            "item_names": args.get("item_names") or base.get("item_names") or [],
            "kind": base.get("kind") or turn.intent,
            "description": base.get("description") or turn.text[:200].strip().rstrip(".!?"),
            "proposed_actions": proposed,
            "opened_in": base.get("opened_in") or turn.session_id,
            "status": "open",
        }

    async def execute(self, call: ActionCall, target: Target, turn: Turn) -> dict[str, Any]:
        """Run a confirmed retail write (``actions``); a change with no tool goes to a human."""
        services, args, order_id = (
            turn.deps.services,
            target.get("args") or {},
            str(target.get("id")),
        )
        if call.action == "cancel_order":
            return await actions.cancel_order(
                services, call, order_id, str(args.get("reason") or ""),
                reasons=self.settings.cancellation_reasons,
                refund_timing=self.settings.refund_timing.model_dump(),
            )  # fmt: skip
        if call.action == "return_items":
            method = str(args.get("payment_method_id") or "")
            return await actions.request_return(
                services, call, order_id, list(args["item_ids"]), method
            )
        if call.action == "exchange_items" or args.get("change") == "items":
            kind: Literal["exchange", "modify"] = (
                "exchange" if call.action == "exchange_items" else "modify"
            )
            method = str(args.get("payment_method_id") or "")
            return await actions.swap_items(
                services, call, order_id, list(args.get("item_ids") or []),
                list(args.get("new_item_ids") or []), method, kind,
            )  # fmt: skip
        if call.action == "modify_order":
            change = ({"address": args.get("new_address")} if args.get("change") == "address"
                      else {"payment_method_id": args.get("new_payment_method_id")})  # fmt: skip
            return await actions.modify_order(services, call, order_id, change)
        if call.action == "update_default_address":
            return await actions.update_default_address(
                services, call, args.get("new_address") or {}
            )
        raise NeedsHumanError(f"{call.action} needs a human agent")

    def word_result(self, action: str, target: Target, result: dict[str, Any], turn: Turn) -> str:
        """The result in the customer's words (every fact from ``result``)."""
        return templates.done(action, result, turn.c360)

    def clarify(self, decision: PolicyDecision, turn: Turn) -> str:
        """Which item of the order (only the real choices, each once), or which order."""
        target = decision.get("target") or {}
        orders = turn.c360.get("orders", [])
        order = next((o for o in orders if o["order_id"] == target.get("id")), None)
        if order is None:
            return templates.which_order(orders)
        return templates.which_item(order, list(target.get("candidates") or []))

    def refuse(self, decision: PolicyDecision, turn: Turn) -> Refusal:
        """The policy's reason, and an allowed return, exchange or status check instead."""
        alternative = next(
            (a["action"] for a in (turn.state.get("policy") or {}).get("alternatives", [])
             if a["action"] in _ALTERNATIVES), None,
        )  # fmt: skip
        return Refusal(templates.refused(decision["action"], dict(decision.get("target") or {}),
                                         decision.get("reason"), alternative))  # fmt: skip

    # --- informing ---------------------------------------------------------------------------

    def inform(self, action: str, target: Target, turn: Turn) -> str | None:
        """Order status, refunds and complaints, from the 360."""
        said = (target.get("args") or {}).get("facts")
        if said:
            return " ".join(said)
        orders = {o["order_id"]: o for o in turn.c360.get("orders", [])}
        if action in ("order_status", "refund_status") and target.get("id") in orders:
            order = orders[str(target["id"])]
            if action == "refund_status":
                return templates.refund_status(order, self.settings.refund_timing.model_dump())
            return templates.order_status(order)
        if action in ("order_status", "refund_status") and orders:
            return " ".join(templates.order_status(o) for o in orders.values())
        if action == "log_complaint" and turn.state.get("authenticated"):
            return templates.complaint_noted()
        return None

    def subject_status(self, issue: Issue, turn: Turn) -> str:
        """The order's status now, and the next step offered."""
        order_id = issue.get("order_id") or issue.get("subject_id")
        order = next((o for o in turn.c360.get("orders", []) if o["order_id"] == order_id), None)
        return templates.issue_status(str(order_id), (order or {}).get("status"),
                                      issue.get("proposed_actions") or [])  # fmt: skip

    def describe_subject(self, issue: Issue) -> str:
        """``"the Water Bottle from order #W1234567"``."""
        return templates.describe_subject(issue)

    def action_words(self, actions_: list[str]) -> str:
        """``"a return or an exchange"``."""
        return templates.action_words(actions_)

    # --- data --------------------------------------------------------------------------------

    async def load(self, services: Services, tenant_id: str) -> dict[str, int]:
        """Load tau2-bench retail into the tenant's systems of record."""
        return (await load_retail(services, tenant_id)).inserted
