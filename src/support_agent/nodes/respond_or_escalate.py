"""respond_or_escalate: answer with full context, act on a confirmed request, or hand off warmly.

A short dispatcher. Escalation triggers come first (``handoff.escalation_reason``); then the
policy outcome picks a handler: ask for identification, clarify, refuse, propose, execute, or
inform. Everything about the tenant's records and words is its vertical's
(``verticals.protocol.Vertical``): the proposal, the write, the result, the refusal, the answer.
A retention offer the policy approved is added to an answer; with a chat model configured, the
reply is rephrased under a groundedness check (``llm.polish_reply``); personal data is masked
when the policy says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from support_agent import recall, templates
from support_agent.actions.ledger import ActionCall, change_key, made_by_proposal
from support_agent.actions.offers import record_offer_made
from support_agent.consent import read_consent
from support_agent.context import Context, turn_of
from support_agent.errors import InvalidRequestError, NeedsHumanError, NotFoundError
from support_agent.failpoints import failpoint
from support_agent.handoff import build_panel, escalation_reason
from support_agent.llm import polish_reply
from support_agent.memory_store.hot import invalidate_360
from support_agent.policy.masking import mask_personal_data
from support_agent.state import (
    ActionRecord,
    Decision,
    Issue,
    Offer,
    PendingAction,
    PolicyOutcome,
    State,
    Target,
    Thread,
)
from support_agent.tenants.verification import facts_in_words
from support_agent.verticals.protocol import Turn

logger = logging.getLogger(__name__)

FOLLOW_UP = "follow_up_open_issue"


@dataclass(frozen=True)
class Draft:
    """The turn's answer as it is built: reply, decision and what changes in the session."""

    reply: str
    decision: Decision
    pending: PendingAction | None
    issue: Issue | None
    offer: Offer | None
    actions: list[ActionRecord] = field(default_factory=list)
    handoff: dict[str, Any] | None = None
    asks_consent: bool = False


def _draft(this: Turn, reply: str, decision: Decision = "respond", **changes: Any) -> Draft:
    """A draft that keeps the session's pending proposal, issue and offer unless changed."""
    base = Draft(reply, decision, this.pending, this.state.get("issue"), this.state.get("offer"))
    return replace(base, **changes)


def _escalate(this: Turn, policy: PolicyOutcome, reason: str) -> Draft:
    issue = this.state.get("issue") or this.deps.vertical.issue_on_handoff(policy, this)
    panel = build_panel(this, reason, issue)
    reply = templates.handoff_message(
        panel.get("current_issue"), this.deps.vertical.describe_subject
    )
    return _draft(this, reply, "escalate", issue=issue, handoff=panel)


def _verification_ask(this: Turn) -> str:
    """What to ask to verify the customer, from this turn's identification and the policy."""
    ident = this.state.get("identification") or {}
    policy = this.deps.config.verification
    asks = [f for f in ident.get("asks") or [] if f != "one_time_code"]
    return templates.ask_identification(
        str(ident.get("status", "missing")), policy.asking(), facts_in_words(asks),
        bool(ident.get("code_offered")),
    )  # fmt: skip


async def _ask_identification(this: Turn, _policy: PolicyOutcome) -> Draft:
    return _draft(this, _verification_ask(this), "ask_identification")


async def _clarify(this: Turn, policy: PolicyOutcome) -> Draft:
    return _draft(this, this.deps.vertical.clarify(policy, this))


async def _deny(this: Turn, policy: PolicyOutcome) -> Draft:
    refusal = this.deps.vertical.refuse(policy, this)
    return _draft(this, refusal.reply, "deny", issue=refusal.issue or this.state.get("issue"))


async def _confirm(this: Turn, policy: PolicyOutcome) -> Draft:
    proposal = this.deps.vertical.propose(policy, this)
    issue = proposal.issue or this.state.get("issue")
    if proposal.decision == "escalate":
        reason = proposal.handoff_reason or "only a human agent can go on"
        return _draft(this, proposal.reply, "escalate", handoff=build_panel(this, reason, issue))
    proposed: list[ActionRecord] = []
    if proposal.proposed:
        proposed.append({"action": policy["action"], "status": "proposed",
                         "target": policy.get("target") or {}})  # fmt: skip
    return _draft(this, proposal.reply, proposal.decision, pending=proposal.pending, issue=issue,
                  actions=proposed)  # fmt: skip


async def _execute(this: Turn, policy: PolicyOutcome) -> Draft:
    action, target = policy["action"], policy.get("target") or {}
    key = change_key(this.tenant_id, this.session_id, action, target.get("id"),
                     target.get("args") or {})  # fmt: skip
    call = ActionCall(this.tenant_id, str(this.state.get("customer_id")), this.session_id,
                      action, key, target.get("id"), target.get("label"))  # fmt: skip
    try:
        result = await this.deps.vertical.execute(call, target, this)
    except NeedsHumanError as exc:
        panel = build_panel(this, exc.message, this.state.get("issue"))
        return _draft(this, templates.colleague_can_do(), "escalate", handoff=panel)
    except (InvalidRequestError, NotFoundError) as exc:
        return _draft(this, templates.cannot_do(exc.message), "deny", pending=None)
    if not result.get("replayed"):  # the 360 shows the change now, even if this process dies
        await invalidate_360(this.deps.services, this.tenant_id, str(this.state.get("customer_id")))
    failpoint("turn_after_action")
    made_now = made_by_proposal(result.get("recorded_at"), (this.pending or {}).get("proposed_at"))
    if result.get("replayed") and not made_now:  # ran earlier in the session: nothing changed now
        again: ActionRecord = {"action": action, "status": "already_done", "target": target}
        words = _proposal_words(this, {"action": action, "intent": this.intent, "target": target})
        return _draft(this, templates.already_done(words), pending=None, actions=[again])
    offer = this.state.get("offer")
    if action == this.deps.policy.retention.apply_action and offer:
        offer = {**offer, "status": "applied"}
    done: ActionRecord = {"action": action, "status": "done", "target": target, "result": result}
    reply = this.deps.vertical.word_result(action, target, result, this)
    return _draft(this, reply, "execute", pending=None, issue=_resolved(this, action, target),
                  offer=offer, actions=[done])  # fmt: skip


def _resolved(this: Turn, action: str, target: Target) -> Issue | None:
    """The session's issue, resolved when the write was about its subject."""
    issue, subject = this.state.get("issue"), target.get("id")
    if subject and issue and issue.get("subject_id") == subject:
        return {**issue, "status": "resolved",
                "proposed_actions": issue.get("proposed_actions") or [action]}  # fmt: skip
    open_issue = this.open_issue
    if subject and open_issue and open_issue.get("subject_id") == subject:
        return {**_without_episode(open_issue), "customer_id": this.state.get("customer_id"),
                "status": "resolved"}  # fmt: skip
    return issue


def _without_episode(issue: Issue) -> Issue:
    """An issue without the episode fields it was loaded with (one issue, same id)."""
    return cast(Issue, {k: v for k, v in issue.items() if not k.startswith("episode_")})


def _public_document(this: Turn) -> dict[str, Any] | None:
    """The best retrieved help article a customer may read (internal procedures never are)."""
    for hit in this.state.get("resolutions") or []:
        if hit.get("kind") == "document" and "internal" not in str(hit.get("title")).lower():
            return hit
    return None


async def _inform(this: Turn, policy: PolicyOutcome) -> Draft:
    action, config, vertical = (
        policy.get("action", "general_help"),
        this.deps.config,
        this.deps.vertical,
    )
    if action == config.ranking.knowledge_action and (doc := _public_document(this)) is not None:
        return _draft(this, templates.knowledge_answer(doc, this.text))
    answer = vertical.inform(action, policy.get("target") or {}, this)
    if answer is not None:
        return _draft(this, answer)
    open_issue = this.open_issue
    line = (templates.open_issue_line(open_issue, vertical.describe_subject, vertical.action_words)
            if open_issue else "")  # fmt: skip
    if action == FOLLOW_UP and open_issue:
        issue: Issue = {
            **_without_episode(open_issue),
            "customer_id": this.state.get("customer_id"),
            "status": "open",
        }
        status = vertical.subject_status(open_issue, this)
        return _draft(this, templates.where_things_stand(line, status), issue=issue)
    if _greeting(this):
        return _draft(this, templates.welcome_back(line) if line else templates.how_can_i_help())
    if this.intent == "out_of_scope":
        return _draft(this, templates.out_of_scope(config.help_topics))
    started = this.state.get("turn", 0) > 1  # no greeting once the conversation has started
    if this.state.get("authenticated"):
        return _draft(
            this, (templates.rephrase if started else templates.hello)(config.help_topics)
        )
    status = (this.state.get("identification") or {}).get("status", "missing")
    if status != "missing":  # details were given: say what became of them
        return _draft(this, _verification_ask(this), "ask_identification")
    ask = _verification_ask(this).split(". ", 1)[-1]
    opening = (templates.rephrase if started else templates.hello)(config.help_topics)
    return _draft(this, opening + " " + ask, "ask_identification")


def _proposal_words(this: Turn, pending: PendingAction) -> str:
    """A proposal in the customer's words: ``"a cancellation for order #W1234567"``."""
    label = (pending.get("target") or {}).get("label")
    words = this.deps.vertical.action_words([pending["action"]])
    return f"{words} for {label}" if label else words


def _unclear(this: Turn, pending: PendingAction) -> Draft:
    """An unclear answer: ask once more, plainly; after a second one, change nothing."""
    what = _proposal_words(this, pending)
    if pending.get("asked_again"):
        return _draft(this, templates.left_as_is(what), pending=None)
    again: PendingAction = {**pending, "asked_again": True}
    return _draft(this, templates.ask_plainly(what), "confirm", pending=again)


_HANDLERS = {
    "ask_identification": _ask_identification,
    "clarify": _clarify,
    "deny": _deny,
    "confirm": _confirm,
    "execute": _execute,
}


async def _dispatch(this: Turn) -> Draft:
    """Pick the handler: escalation first, then the customer's answer, then the policy outcome."""
    policy: PolicyOutcome = this.state.get("policy") or {}
    reason = escalation_reason(this)
    if reason is None and this.signals.get("human_request"):
        return _draft(this, templates.offer_own_help(this.deps.config.help_topics))
    if reason is not None:
        return _escalate(this, policy, reason)
    if this.pending and this.signals.get("confirmation") == "no":
        if this.signals.get("closing"):  # an ending: the proposal stays undone, said so
            words = _proposal_words(this, this.pending)
            return _draft(this, templates.left_undone(words) + " "
                          + templates.closing(_first_name(this)), pending=None)  # fmt: skip
        return _draft(this, templates.declined(), pending=None)
    if (
        this.pending
        and this.pending.get("awaiting")
        and not this.signals.get("answers_pending")
        and this.signals.get("closing")
    ):  # an ending while a question waits: the question is dropped, nothing is proposed
        return _draft(this, templates.closing(_first_name(this)), pending=None)
    if this.pending and this.signals.get("consent") == "unclear":
        return _unclear(this, this.pending)
    if (this.state.get("identification") or {}).get("status") == "conflict":
        return _draft(this, templates.one_customer_only(), "deny")
    if not this.pending and this.state.get("consent") is None and _bare_yes(this.text):
        return _draft(this, templates.nothing_to_confirm())
    if not this.pending and this.signals.get("closing"):
        return _draft(this, templates.closing(_first_name(this)))  # no greeting, no action
    if not this.pending and this.state.get("authenticated"):  # questions about the history
        history = recall.history_answer(
            this.text,
            this.c360.get("threads", []),
            this.c360.get("interactions", []),
            this.session_id,
        )
        if history is not None:
            return _draft(this, history)
    if not this.pending and (recalled := recall.answer(this.text, this.c360.get("threads", []))):
        return _recalled(this, *recalled)  # a follow-up: answered from the threads first
    handler = _HANDLERS.get(str(policy.get("outcome", "respond")), _inform)
    return await handler(this, policy)


def _recalled(this: Turn, reply: str, threads: list[Thread]) -> Draft:
    """A follow-up answered from the threads; one about the open issue continues it (a contact)."""
    open_issue = this.open_issue
    if open_issue and any(t["id"] == f"issue:{open_issue.get('id')}" for t in threads):
        issue: Issue = {**_without_episode(open_issue),
                        "customer_id": this.state.get("customer_id"), "status": "open"}  # fmt: skip
        return _draft(this, reply, issue=issue)
    return _draft(this, reply)


def _bare_yes(text: str) -> bool:
    """A plain "yes" (the consent reader's approve) while no proposal waits for one."""
    return read_consent(text, "").verdict == "approve"


def _first_name(this: Turn) -> str | None:
    """The verified customer's first name, when the 360 has one."""
    return (this.c360.get("profile") or {}).get("first_name")


def _greeting(this: Turn) -> str:
    """The verification greeting, on the turn the customer was verified.

    It carries what a colleague resolved since the customer's last session (told once).
    """
    first = _first_name(this)
    if not ((this.state.get("identification") or {}).get("new") and first):
        return ""
    untold = recall.untold_outcomes(this.c360.get("threads", []),
                                    this.c360.get("interactions", []), this.session_id)  # fmt: skip
    return templates.greeting(first) + (recall.outcome_line(untold[0]) if untold else "")


async def _with_retention_offer(this: Turn, draft: Draft) -> Draft:
    """Add the retention offer the policy approved this turn (recorded in the offers ledger)."""
    offer = (this.state.get("policy") or {}).get("retention_offer")
    customer_id = this.state.get("customer_id")
    apply = this.deps.policy.retention.apply_action
    if (
        not offer
        or apply is None
        or draft.decision not in ("respond", "execute")
        or not customer_id
    ):
        return draft
    await record_offer_made(this.deps.services, this.tenant_id, customer_id, this.session_id, offer)
    label = offer.get("label") or offer["offer_id"].replace("_", " ")
    offer = {**offer, "label": label}
    pending = draft.pending or {
        "action": apply,
        "intent": this.intent,
        "awaiting": None,
        "target": {"kind": this.deps.policy.actions[apply].target, "id": offer["offer_id"],
                   "label": label, "status": "offered", "source": "session_offer",
                   "candidates": [], "args": {"holding_id": offer.get("holding_id"),
                                              "terms": offer.get("terms")}},
    }  # fmt: skip
    record: ActionRecord = {"action": apply, "status": "offered", "offer_id": offer["offer_id"],
                            "terms": offer.get("terms") or {}}  # fmt: skip
    reply = draft.reply + " " + this.deps.vertical.word_offer(offer)
    return replace(draft, reply=reply, pending=pending, offer=offer,
                   actions=[*draft.actions, record], asks_consent=True)  # fmt: skip


async def _polished(this: Turn, draft: Draft) -> Draft:
    """The LLM's rephrasing, when configured and grounded; never for a handoff."""
    model = this.deps.services.chat_model
    if model is None or draft.decision == "escalate":
        return draft
    policy = this.state.get("policy") or {}
    facts = {
        "customer_first_name": (this.c360.get("profile") or {}).get("first_name"),
        "decision": draft.decision,
        "action": policy.get("action"),
        "target": policy.get("target"),
        "open_issue": this.open_issue,
    }
    async with this.deps.services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT DISTINCT lower(name) AS name FROM products WHERE tenant_id = %s",
                (this.tenant_id,),
            )
        ).fetchall()
    products = frozenset(str(r["name"]) for r in rows)
    polished = await polish_reply(model, draft.reply, facts, this.text, products)
    return draft if polished is None else replace(draft, reply=polished)


async def respond_or_escalate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Produce this turn's reply and decision.

    Returns:
        ``reply``, ``decision``, ``actions``, ``handoff``, ``pending_action``, ``issue``,
        ``offer``, the agent's message appended to ``messages`` and this turn's ``history``.
    """
    this = turn_of(state, runtime)
    draft = await _dispatch(this)
    if draft.decision in ("respond", "confirm"):
        draft = replace(draft, reply=_greeting(this) + draft.reply)
    ident = state.get("identification") or {}
    if (
        ident.get("fresh")
        and ident.get("status") in ("partial", "failed", "locked")
        and draft.decision not in ("ask_identification", "escalate")
    ):  # facts given with a general question: both are answered
        draft = replace(draft, reply=draft.reply + " " + _verification_ask(this))
    if (replaced := state.get("superseded")) is not None:
        draft = replace(
            draft, reply=templates.superseded(_proposal_words(this, replaced)) + draft.reply
        )
    draft = await _polished(this, await _with_retention_offer(this, draft))
    reply = draft.reply
    pending = draft.pending
    asks_consent = (
        (draft.asks_consent or draft.decision == "confirm")
        and pending is not None
        and not pending.get("awaiting")
    )
    if asks_consent and pending is not None and not pending.get("proposed_at"):
        pending = {**pending, "proposed_at": datetime.now(UTC).isoformat()}
    if this.deps.policy.compliance.mask_personal_data_in_replies:
        own = frozenset(  # the verified customer's own tracking numbers are theirs to see
            t for o in this.c360.get("orders", []) for t in o.get("tracking_ids") or []
        ) if state.get("authenticated") else frozenset()  # fmt: skip
        reply = mask_personal_data(reply, own)
    policy, signals = state.get("policy") or {}, this.signals
    logger.info("turn_decided", extra={"tenant_id": this.tenant_id, "session_id": this.session_id,
                                       "node": "respond_or_escalate", "decision": draft.decision,
                                       "action": policy.get("action")})  # fmt: skip
    return {
        "offer": draft.offer,
        "reply": reply,
        "decision": draft.decision,
        "actions": draft.actions,
        "handoff": draft.handoff,
        "pending_action": pending,
        "awaiting_consent": asks_consent,
        "issue": draft.issue,
        "messages": [AIMessage(reply)],
        "history": [{"turn": state.get("turn", 0), "intent": state.get("intent"),
                     "decision": draft.decision, "action": policy.get("action"),
                     "frustration": float(signals.get("frustration", 0.0)),
                     "human_request": bool(signals.get("human_request")),
                     "unclear": bool(signals.get("unclear"))}],
    }  # fmt: skip
