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
from support_agent.actions.retail import cancel_order, request_return
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


def _continue_issue(open_issue: dict[str, Any], state: State) -> dict[str, Any]:
    """An open issue from the CRM/memory, as this session's issue (same id: one issue)."""
    issue = {k: v for k, v in open_issue.items() if not k.startswith("episode_")}
    return {**issue, "customer_id": state.get("customer_id"), "status": "open"}


async def _execute(
    services: Services, state: State, ctx: Context, action: str, target: dict[str, Any]
) -> dict[str, Any]:
    """Run a confirmed account action; returns its result with ``action``."""
    key = f"{ctx.tenant_id}:{ctx.session_id}:{action}:{target['order_id']}"
    customer_id = str(state.get("customer_id"))
    if action == "cancel_order":
        result = await cancel_order(
            services,
            ctx.tenant_id,
            customer_id,
            ctx.session_id,
            target["order_id"],
            target.get("reason") or "",
            key,
        )
    elif action == "return_items":
        result = await request_return(
            services,
            ctx.tenant_id,
            customer_id,
            ctx.session_id,
            target["order_id"],
            target["item_ids"],
            target.get("payment_method_id") or "",
            key,
        )
    else:
        raise InvalidRequestError(f"{action} needs a human agent to choose the new options")
    return {"action": action, **result}


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
    handoff = None
    decision = "respond"
    greeting = ""
    if identification.get("new") and first:
        greeting = f"Thanks, {first}, you're verified. "

    reason = escalation_reason(state, config, ctx.session_id)
    if reason is None and signals.get("human_request"):
        reply = (
            greeting + "I can help with that right here: orders, returns, exchanges, refunds and "
            "account questions. If you'd still prefer a person, just say so and I'll connect you."
        )
    elif reason is not None:
        decision = "escalate"
        handoff = build_panel(state, ctx, reason)
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
                f"To confirm: exchange {items} from order {target['order_id']} for another "
                "option of the same product. Reply yes to go ahead."
            )
        else:
            reply += (
                f"To confirm: {replies.action_words([action])} for order "
                f"{target['order_id']}. Reply yes to go ahead."
            )
    elif outcome == "execute":
        try:
            result = await _execute(services, state, ctx, action, target)
        except (InvalidRequestError, NotFoundError) as exc:
            if action in ("exchange_items", "modify_order"):
                decision = "escalate"
                handoff = build_panel(state, ctx, exc.message)
                reply = (
                    "To pick the new option, I'm connecting you with a colleague who can see "
                    "this whole conversation, so you won't need to repeat anything."
                )
            else:
                decision = "deny"
                reply = f"I'm sorry, I couldn't do that: {exc.message}."
        else:
            decision = "execute"
            pending = None
            actions.append({**result, "status": "done"})
            if issue and issue.get("order_id") == target["order_id"]:
                issue = {**issue, "status": "resolved"}
            elif (memory.get("open_issue") or {}).get("order_id") == target["order_id"]:
                issue = {**_continue_issue(memory["open_issue"], state), "status": "resolved"}
            if action == "cancel_order":
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
        reply = (greeting + "That's outside what I can help with here. I can help with orders, "
                 "returns, exchanges, refunds and your account.")  # fmt: skip
    else:
        reply = "Hello! I can help with orders, returns, exchanges and refunds."
        if not state.get("authenticated"):
            reply += (
                " " + replies.ask_identification("missing", config.auth_methods).split(". ", 1)[-1]
            )
            decision = "ask_identification"

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
