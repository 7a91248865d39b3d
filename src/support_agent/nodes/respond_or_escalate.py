"""respond_or_escalate: answer with full context, act on a confirmed request, or hand off warmly.

Escalation triggers are checked first (``handoff.escalation_reason``: a human requested after the
tenant's number of offers of help, anger, out-of-scope or low confidence twice, a policy outcome
that needs a human, the third contact about one open issue, a high-value billing dispute). The warm
handoff packet is the human agent's panel (``handoff.build_panel``), so the human agent never asks
the customer to repeat anything.

Otherwise the policy outcome picks a grounded template (``replies``); a confirmed write is executed
on the systems of record (``actions.retail``). With a chat model configured, the template reply is
rephrased by the model under a groundedness check (``llm.polish_reply``).
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from support_agent import replies
from support_agent.actions.bank import (
    apply_retention_offer,
    dispute_transaction,
    freeze_card,
    order_replacement_card,
    record_offer_made,
)
from support_agent.actions.retail import (
    cancel_order,
    modify_order,
    request_return,
    swap_items,
    update_default_address,
)
from support_agent.actions.targets import target_id
from support_agent.context import Context
from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.handoff import build_panel, escalation_reason
from support_agent.llm import polish_reply
from support_agent.nodes._text import last_customer_text
from support_agent.policy.config import load_policy
from support_agent.policy.masking import mask_personal_data
from support_agent.services import Services, get_services
from support_agent.state import State
from support_agent.tenants import load_tenant_config

logger = logging.getLogger(__name__)

_PROBLEM_INTENTS = {"return", "exchange", "complaint"}


def _issue_for(
    state: State, ctx: Context, target: dict[str, Any], proposed: list[str]
) -> dict[str, Any]:
    """The issue under discussion: continue the open one for this order, or open a new one."""
    open_issue = (state.get("memory") or {}).get("open_issue")
    current = state.get("issue")
    base = None
    for cand in (current, open_issue):
        if cand and cand.get("order_id") == target.get("order_id"):
            base = cand
            break
    description = (base or {}).get("description") or last_customer_text(state.get("messages"))[
        :200
    ].strip().rstrip(".!?")
    return {
        "id": (base or {}).get("id")
        or f"iss-{ctx.session_id}-{str(target['order_id']).lstrip('#')}",
        "customer_id": state.get("customer_id"),
        "order_id": target["order_id"],
        "item_ids": target.get("item_ids") or (base or {}).get("item_ids") or [],
        "item_names": target.get("item_names") or (base or {}).get("item_names") or [],
        "kind": (base or {}).get("kind") or state.get("intent", "other"),
        "description": description,
        "proposed_actions": proposed,
        "opened_in": (base or {}).get("opened_in") or ctx.session_id,
        "status": "open",
    }


_NEEDS_ADDRESS = ("modify_order", "update_default_address")


class NeedsHumanError(InvalidRequestError):
    """A confirmed action the agent has no tool for: a human agent completes it."""


def _needs_variant(action: str, target: dict[str, Any]) -> bool:
    """An exchange or item change whose new variants are not known yet."""
    changes_items = action == "exchange_items" or (
        action == "modify_order" and target.get("change") == "items"
    )
    return changes_items and not target.get("swaps")


def _detail_given(target: dict[str, Any]) -> bool:
    """A modify/update-address action has the new address (or payment method) it needs."""
    if target.get("change") == "items":
        return bool(target.get("swaps"))
    if target.get("change") == "payment":
        return bool(target.get("new_payment_method_id"))
    return bool(target.get("new_address"))


def _public_document(state: State) -> dict[str, Any] | None:
    """The best retrieved help article a customer may read (internal procedures never are)."""
    for hit in state.get("resolutions") or []:
        title = str(hit.get("title") or "")
        if hit.get("kind") == "document" and "internal" not in title.lower():
            return hit
    return None


def _subject_issue(
    state: State, ctx: Context, target: dict[str, Any], proposed: list[str]
) -> dict[str, Any]:
    """The issue about a bank card or transaction: continue the open one, or open a new one."""
    subject = target.get("transaction_id") or target.get("card_id")
    for cand in (state.get("issue"), (state.get("memory") or {}).get("open_issue")):
        if cand and cand.get("subject_id") == subject:
            return {**{k: v for k, v in cand.items() if not k.startswith("episode_")},
                    "customer_id": state.get("customer_id"), "status": "open",
                    "proposed_actions": proposed}  # fmt: skip
    return {
        "id": f"iss-{ctx.session_id}-{subject}",
        "customer_id": state.get("customer_id"),
        "order_id": None,
        "subject_id": subject,
        "subject_label": target.get("label"),
        "item_ids": [],
        "item_names": [],
        "kind": state.get("intent", "other"),
        "description": last_customer_text(state.get("messages"))[:200].strip().rstrip(".!?"),
        "proposed_actions": proposed,
        "opened_in": ctx.session_id,
        "status": "open",
    }


def _continue_issue(open_issue: dict[str, Any], state: State) -> dict[str, Any]:
    """An open issue from the CRM/memory, as this session's issue (same id: one issue)."""
    issue = {k: v for k, v in open_issue.items() if not k.startswith("episode_")}
    return {**issue, "customer_id": state.get("customer_id"), "status": "open"}


async def _execute(
    services: Services, state: State, ctx: Context, action: str, target: dict[str, Any]
) -> dict[str, Any]:
    """Run a confirmed account action; returns its result with ``action`` and ``label``.

    The idempotency key is (tenant, session, action, target), so a repeated "yes" or a retried
    turn never acts twice.

    Raises:
        InvalidRequestError: the action cannot be done by the agent (e.g. an item exchange needs a
            human to pick the variant) or a detail is missing; NotFoundError: the target is gone.
    """
    kind = load_policy(ctx.tenant_id).actions[action].target
    subject = target_id(target, kind) if kind else (target.get("order_id") or "customer")
    key = f"{ctx.tenant_id}:{ctx.session_id}:{action}:{subject}"
    customer_id = str(state.get("customer_id"))
    args = (services, ctx.tenant_id, customer_id, ctx.session_id)
    if action == "cancel_order":
        result = await cancel_order(*args, target["order_id"], target.get("reason") or "", key)
    elif action == "return_items":
        result = await request_return(
            *args,
            target["order_id"],
            target["item_ids"],
            target.get("payment_method_id") or "",
            key,
        )
    elif action == "exchange_items" or (
        action == "modify_order" and target.get("change") == "items"
    ):
        how = "exchange" if action == "exchange_items" else "modify"
        result = await swap_items(
            *args, target["order_id"], dict(target.get("swaps") or {}),
            target.get("payment_method_id") or "", how, key,
        )  # fmt: skip
    elif action == "modify_order" and target.get("change") in ("address", "payment"):
        change = (
            {"address": target.get("new_address")}
            if target["change"] == "address"
            else {"payment_method_id": target.get("new_payment_method_id")}
        )
        result = await modify_order(*args, target["order_id"], change, key)
    elif action == "update_default_address":
        result = await update_default_address(*args, target.get("new_address") or {}, key)
    elif action == "freeze_card":
        result = await freeze_card(*args, target["card_id"], key)
    elif action == "order_replacement_card":
        result = await order_replacement_card(
            *args, target["card_id"], str(target.get("reason") or "replacement"), key
        )
    elif action == "dispute_transaction":
        result = await dispute_transaction(
            *args, target["transaction_id"], str(target.get("reason") or "disputed"), key
        )
    elif action == "apply_retention_offer":
        result = await apply_retention_offer(*args, state.get("offer") or {}, key)
    else:
        raise NeedsHumanError(f"{action} needs a human agent")
    return {"action": action, "label": target.get("label"), **result}


async def respond_or_escalate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Produce this turn's reply and decision.

    Returns:
        ``reply``, ``decision``, ``actions``, ``handoff``, ``pending_action``, ``issue`` and the
        agent's message appended to ``messages``.
    """
    ctx = runtime.context
    services = await get_services()
    config = load_tenant_config(ctx.tenant_id)
    c360 = state.get("c360") or {}
    memory = state.get("memory") or {}
    policy = state.get("policy") or {}
    signals = state.get("signals") or {}
    identification = state.get("identification") or {}
    outcome = policy.get("outcome", "respond")
    action = policy.get("action", "general_help")
    target = policy.get("target") or {}
    orders = {o["order_id"]: o for o in c360.get("orders", [])}
    first = (c360.get("profile") or {}).get("first_name")
    pending = state.get("pending_action")
    issue = state.get("issue")
    actions: list[dict[str, Any]] = []
    offer_state = state.get("offer")
    handoff = None
    decision = "respond"
    greeting = ""
    if identification.get("new") and first:
        greeting = f"Thanks, {first}, you're verified. "

    topics = str(config.extra.get("help_topics", "your account"))
    kind = load_policy(ctx.tenant_id).actions.get(action)
    target_kind = kind.target if kind is not None else None
    reason = escalation_reason(state, config, ctx.session_id)
    if reason is None and signals.get("human_request"):
        reply = (
            greeting + f"I can help with that right here: {topics}. If you'd still prefer a "
            "person, just say so and I'll connect you."
        )
    elif reason is not None:
        decision = "escalate"
        if (
            issue is None
            and target_kind in ("card", "transaction")
            and target_id(target, target_kind)
        ):
            issue = _subject_issue(state, ctx, target, [action])
        handoff = build_panel({**state, "issue": issue}, ctx, reason)
        reply = replies.handoff_message(handoff.get("current_issue"))
    elif pending and signals.get("confirmation") == "no":
        pending = None
        reply = "No problem, I won't make that change. Is there anything else I can help with?"
    elif identification.get("status") == "conflict":
        decision = "deny"
        reply = (
            "I can only help with one customer's account in a conversation. "
            "Please start a new conversation for another account."
        )
    elif outcome == "ask_identification":
        decision = "ask_identification"
        reply = replies.ask_identification(
            identification.get("status", "missing"), config.auth_methods
        )
    elif outcome == "clarify" and target_kind in ("card", "transaction"):
        options = target.get("candidates") or []
        reply = greeting + (
            f"Which {target_kind} do you mean: " + "; or ".join(options) + "?"
            if options
            else f"I couldn't find that {target_kind} on your account. Could you tell me the "
            "date and amount, or the card's last four digits?"
        )
    elif outcome == "clarify":
        decision = "respond"
        order = orders.get(target.get("order_id") or "")
        if order is not None:
            reply = (
                greeting
                + f"Which item of order {order['order_id']} do you mean: "
                + ", ".join(sorted({i["name"] for i in order["items"]}))
                + "?"
            )
        else:
            reply = (
                greeting
                + "Which order do you mean? I can see "
                + ", ".join(f"{oid} ({orders[oid]['status']})" for oid in sorted(orders))
                + "."
            )
    elif outcome == "deny":
        decision = "deny"
        reply = f"I'm sorry, I can't do that: {policy.get('reason')}."
        if target_kind == "transaction" and target.get("transaction_id"):
            reply = "I'm sorry, I can't open another dispute on that transaction. " + (
                replies.subject_status(c360, target["transaction_id"])
            )
        if target_kind in ("card", "transaction") and target_id(target, target_kind):
            # the customer's concern about this card or transaction stays an open issue
            issue = _subject_issue(state, ctx, target, [])
        alt = next(
            (
                a
                for a in policy.get("alternatives", [])
                if a["action"] in ("return_items", "exchange_items", "order_status")
            ),
            None,
        )
        if alt is not None:
            reply += f" I can offer {replies.action_words([alt['action']])} instead."
    elif (
        outcome == "confirm"
        and _needs_variant(action, target)
        and ((pending or {}).get("awaiting") == "new_item" or not target.get("variant_options"))
    ):
        # asked once already, or nothing else is available: a colleague helps choose
        decision = "escalate"
        handoff = build_panel(state, ctx, "a human agent must help choose the new options")
        reply = (
            "To pick the new option, I'm connecting you with a colleague who can see "
            "this whole conversation, so you won't need to repeat anything."
        )
    elif outcome == "confirm" and _needs_variant(action, target):
        pending = {"action": action, "intent": state.get("intent", "other"), **target,
                   "awaiting": "new_item"}  # fmt: skip
        items = replies.items_phrase(target.get("item_names") or [])
        reply = greeting
        if state.get("intent") in _PROBLEM_INTENTS and action == "exchange_items":
            issue = _issue_for(state, ctx, target, ["exchange_items", "return_items"])
            reply += (f"I'm sorry about {items} from order {target['order_id']}. I can offer an "
                      "exchange or a return. ")  # fmt: skip
        reply += (
            f"Which option would you like instead of {items}? Available: "
            + "; ".join(target["variant_options"])
            + "."
            + (" Or say 'return' for a refund." if action == "exchange_items" else "")
        )
    elif outcome == "confirm" and action in _NEEDS_ADDRESS and not _detail_given(target):
        pending = {"action": action, "intent": state.get("intent", "other"), **target,
                   "awaiting": "new_address"}  # fmt: skip
        what = f"order {target['order_id']}" if target.get("order_id") else "your account"
        reply = greeting + (
            f"What's the new address for {what}? Please send it in one message: street, city, "
            "state and zip."
            if target.get("change", "address") == "address"
            else "Which payment method on your account should the order use instead?"
        )
    elif outcome == "confirm" and (target_kind in ("card", "transaction", "offer")
                                   or action in _NEEDS_ADDRESS):  # fmt: skip
        decision = "confirm"
        pending = {"action": action, "intent": state.get("intent", "other"), **target}
        actions.append({"action": action, "status": "proposed", **target})
        if target_kind in ("card", "transaction"):
            issue = _subject_issue(state, ctx, target, [action])
            reply = greeting + replies.confirm_bank_action(action, target)
        elif action == "apply_retention_offer":
            reply = greeting + replies.retention_offer_text(state.get("offer") or {})
        elif action == "update_default_address":
            reply = greeting + (
                f"To confirm: make {replies.address_line(target.get('new_address'))} your default "
                "address. Reply yes to go ahead."
            )
        elif target.get("change") == "items":
            reply = greeting + (
                f"To confirm: change order {target['order_id']} to "
                + " and ".join(target.get("new_options") or [])
                + "; any price difference is settled with "
                + f"{replies.payment_phrase(c360, target.get('payment_method_id'))}. Items can "
                "be changed only once, so please check every item is listed. Reply yes to go "
                "ahead."
            )
        elif target.get("change") == "payment":
            reply = greeting + (
                f"To confirm: pay order {target['order_id']} with "
                f"{replies.payment_phrase(c360, target.get('new_payment_method_id'))} instead. "
                "Reply yes to go ahead."
            )
        else:
            reply = greeting + (
                f"To confirm: ship order {target['order_id']} to "
                f"{replies.address_line(target.get('new_address'))}. Reply yes to go ahead."
            )
    elif outcome == "confirm":
        decision = "confirm"
        proposed = [action] + [
            a["action"]
            for a in policy.get("alternatives", [])
            if a["action"] in ("return_items", "exchange_items")
            and a["action"] != action
            and (a.get("target") or {}).get("order_id") == target.get("order_id")
        ]
        pending = {"action": action, "intent": state.get("intent", "other"), **target}
        actions.append({"action": action, "status": "proposed", **target})
        order = orders.get(target["order_id"], {})
        items = replies.items_phrase(target.get("item_names") or [])
        if state.get("intent") in _PROBLEM_INTENTS:
            issue = _issue_for(state, ctx, target, proposed)
            reply = (
                greeting + f"I'm sorry about {items} from order {target['order_id']}. "
                f"The order was {order.get('status')}, so I can offer "
                f"{replies.action_words(proposed)}. "
            )
        else:
            reply = greeting
        if action == "return_items":
            reply += (
                f"To confirm: return {items} from order {target['order_id']}, refund to "
                f"{replies.payment_phrase(c360, target.get('payment_method_id'))}. "
                "Reply yes to go ahead."
            )
        elif action == "cancel_order":
            why = target.get("reason")
            reply += (
                f"To confirm: cancel order {target['order_id']}"
                + (f" (reason: {why})" if why else "")
                + ". Reply yes to go ahead."
            )
            if not why:
                reply += " Please also tell me why: no longer needed, or ordered by mistake?"
        elif action == "exchange_items":
            reply += (
                f"To confirm: exchange {items} from order {target['order_id']} for "
                + " and ".join(target.get("new_options") or ["another option"])
                + "; any price difference is settled with "
                + f"{replies.payment_phrase(c360, target.get('payment_method_id'))}. "
                "Reply yes to go ahead."
            )
        else:
            reply += (
                f"To confirm: {replies.action_words([action])} for order "
                f"{target['order_id']}. Reply yes to go ahead."
            )
    elif outcome == "execute":
        try:
            result = await _execute(services, state, ctx, action, target)
        except NeedsHumanError as exc:
            decision = "escalate"
            handoff = build_panel(state, ctx, exc.message)
            reply = (
                "I'm connecting you with a colleague who can do this and can see this whole "
                "conversation, so you won't need to repeat anything."
            )
        except (InvalidRequestError, NotFoundError) as exc:
            decision = "deny"
            pending = None
            reply = f"I'm sorry, I couldn't do that: {exc.message}."
        else:
            decision = "execute"
            pending = None
            actions.append({**result, "status": "done"})
            if target.get("order_id") and issue and issue.get("order_id") == target["order_id"]:
                issue = {**issue, "status": "resolved"}
            elif (
                target.get("order_id")
                and (memory.get("open_issue") or {}).get("order_id") == target["order_id"]
            ):
                issue = {**_continue_issue(memory["open_issue"], state), "status": "resolved"}
            if target_kind in ("card", "transaction", "offer"):
                reply = replies.bank_action_done(result)
                subject = target_id(target, target_kind)
                if issue and issue.get("subject_id") == subject:
                    issue = {**issue, "status": "resolved", "proposed_actions": [action]}
                if action == "apply_retention_offer":
                    offer_state = {**(state.get("offer") or {}), "status": "applied"}
            elif "swaps" in result:
                diff = float(result["price_difference"])
                settle = (
                    f" {abs(diff):.2f} will be {'charged to' if diff > 0 else 'refunded to'} "
                    f"{replies.payment_phrase(c360, result['payment_method_id'])}."
                    if diff
                    else ""
                )
                reply = (
                    f"Done: order {result['order_id']} is now {result['status']}."
                    + (" You'll get an email with return instructions." if action ==
                       "exchange_items" else "")
                    + settle
                )  # fmt: skip
            elif action == "update_default_address":
                reply = (f"Done: your default address is now "
                         f"{replies.address_line(result['address'])}.")  # fmt: skip
            elif action == "modify_order":
                reply = f"Done: order {result['order_id']} now " + (
                    f"ships to {replies.address_line(result['address'])}."
                    if result["changed"] == "address"
                    else "is paid with "
                    f"{replies.payment_phrase(c360, result['payment_method_id'])}."
                )
            elif action == "cancel_order":
                reply = (
                    f"Done: order {result['order_id']} is cancelled. {result['refund']:.2f} "
                    f"will be refunded {result['refund_timing']}."
                )
            else:
                reply = (
                    f"Done: the return for order {result['order_id']} is requested. You'll "
                    f"get an email with return instructions; {result['refund']:.2f} will be "
                    f"refunded to {replies.payment_phrase(c360, result['payment_method_id'])}."
                )
    elif action == "answer_from_knowledge" and (doc := _public_document(state)) is not None:
        reply = greeting + replies.knowledge_answer(doc, last_customer_text(state.get("messages")))
    elif action == "account_activity" and state.get("authenticated"):
        reply = greeting + replies.account_activity(c360)
    elif action == "follow_up_open_issue" and (memory.get("open_issue") or {}).get("subject_id"):
        open_issue = memory["open_issue"]
        reply = (greeting + "Here's where things stand: " + replies.open_issue_line(open_issue)
                 + ". " + replies.subject_status(c360, open_issue["subject_id"]))  # fmt: skip
        issue = _continue_issue(open_issue, state)
    elif action == "follow_up_open_issue" and memory.get("open_issue"):
        open_issue = memory["open_issue"]
        order = orders.get(open_issue["order_id"], {})
        reply = (
            greeting
            + "Here's where things stand: "
            + replies.open_issue_line(open_issue)
            + f". Order {open_issue['order_id']} is currently {order.get('status', 'unknown')}"
            + " and the issue is still open, waiting for your go-ahead. "
            + (
                f"Shall I start {replies.action_words(open_issue['proposed_actions'][:1])}?"
                if open_issue.get("proposed_actions")
                else "How would you like to proceed?"
            )
        )
        issue = _continue_issue(open_issue, state)
    elif action in ("order_status", "refund_status") and target.get("order_id") in orders:
        order = orders[target["order_id"]]
        reply = greeting + replies.order_status(order)
        if action == "refund_status":
            reply += (
                f" Refunded so far: {order['refunded']:.2f}. Gift card refunds are "
                "immediate; card and PayPal refunds take 5 to 7 business days."
            )
    elif action in ("order_status", "refund_status") and orders:
        reply = greeting + " ".join(replies.order_status(o) for o in orders.values())
    elif action == "log_complaint" and state.get("authenticated"):
        reply = (
            greeting + "I'm sorry about this experience; I've noted your complaint. "
            "Tell me which order it concerns and I'll see what I can do."
        )
    elif greeting:
        open_issue = memory.get("open_issue")
        if open_issue:
            reply = (
                greeting
                + "Welcome back. I can see "
                + replies.open_issue_line(open_issue)
                + ". Would you like to continue with that?"
            )
        else:
            reply = greeting + "How can I help you today?"
    elif state.get("intent") == "out_of_scope":
        reply = greeting + f"That's outside what I can help with here. I can help with {topics}."
    else:
        reply = f"Hello! I can help with {topics}."
        if not state.get("authenticated"):
            reply += (
                " " + replies.ask_identification("missing", config.auth_methods).split(". ", 1)[-1]
            )
            decision = "ask_identification"

    offer = policy.get("retention_offer")
    if offer and decision in ("respond", "execute") and state.get("customer_id"):
        await record_offer_made(services, ctx.tenant_id, str(state["customer_id"]), ctx.session_id,
                                offer)  # fmt: skip
        offer_state = offer
        label = f"{offer['offer_id'].replace('_', ' ')} on your {offer['terms'].get('card')}"
        if pending is None:
            pending = {"action": "apply_retention_offer", "intent": state.get("intent", "other"),
                       "offer_id": offer["offer_id"], "holding_id": offer["holding_id"],
                       "terms": offer["terms"], "label": label}  # fmt: skip
        reply += " " + replies.retention_offer_text(offer)
        actions.append({"action": "apply_retention_offer", "status": "offered",
                        "offer_id": offer["offer_id"], "terms": offer["terms"]})  # fmt: skip

    if services.chat_model is not None and decision not in ("escalate",):
        facts = {
            "customer_first_name": first,
            "decision": decision,
            "action": action,
            "target": target,
            "open_issue": memory.get("open_issue"),
        }
        polished = await polish_reply(
            services.chat_model, reply, facts, last_customer_text(state.get("messages"))
        )
        if polished is not None:
            reply = polished

    if load_policy(ctx.tenant_id).compliance.mask_personal_data_in_replies:
        reply = mask_personal_data(reply)
    logger.info(
        "turn_decided",
        extra={
            "tenant_id": ctx.tenant_id,
            "thread_id": ctx.session_id,
            "node": "respond_or_escalate",
            "decision": decision,
            "action": action,
        },
    )
    return {
        "offer": offer_state,
        "reply": reply,
        "decision": decision,
        "actions": actions,
        "handoff": handoff,
        "pending_action": pending,
        "issue": issue,
        "messages": [AIMessage(reply)],
        "history": [
            {
                "turn": state.get("turn", 0),
                "intent": state.get("intent"),
                "decision": decision,
                "action": action,
                "frustration": float(signals.get("frustration", 0.0)),
                "human_request": bool(signals.get("human_request")),
                "unclear": bool(signals.get("unclear")),
            }
        ],
    }
