"""The bank vertical: Rho-Bank's cards, transactions, disputes and retention offers.

Implements ``verticals.protocol.Vertical`` for the tau2-bench banking policy: targets are cards,
transactions and the retention offer made in the session (``targets``), writes are freeze card,
replacement card, dispute and apply the offer (``actions``), offers follow the bank's retention
protocol (``retention``), every word the customer hears is in ``templates``, and the data set
(customers, holdings, transactions, 698 documents, the offers catalog) loads with ``loader``.
Business numbers (fee intents, what each retention offer means, delivery times) come from the
tenant's ``vertical.settings`` (``settings.BankSettings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from support_agent.actions.ledger import ActionCall
from support_agent.errors import NeedsHumanError
from support_agent.policy.config import ActionRule
from support_agent.policy.engine import PolicyDecision as Verdict
from support_agent.policy.retention import OfferFacts
from support_agent.services import Services
from support_agent.state import Customer360, Issue, Offer, PolicyDecision, Target
from support_agent.verticals.bank import actions, retention, targets, templates
from support_agent.verticals.bank.loader import load_bank
from support_agent.verticals.bank.settings import BankSettings
from support_agent.verticals.protocol import Proposal, Refusal, Turn, Vertical

_SUBJECT_KINDS = ("card", "transaction")


class BankVertical(Vertical):
    """Cards, transactions and retention offers (see the module docstring)."""

    name: ClassVar[str] = "bank"
    settings_model: ClassVar[type[BaseModel]] = BankSettings
    settings: BankSettings

    # --- reading the message -----------------------------------------------------------------

    def entities(self, text: str, c360: Customer360) -> dict[str, Any]:
        """Amounts, a card's last four digits, debit or credit, description words."""
        return targets.bank_entities(text) if c360.get("holdings") else {}

    def names_subject(self, entities: dict[str, Any]) -> bool:
        """An amount or a card's last four digits is named."""
        return bool(entities.get("amounts") or entities.get("last_four"))

    # --- targets -----------------------------------------------------------------------------

    async def resolve_targets(
        self, rules: Mapping[str, ActionRule], turn: Turn
    ) -> dict[str, Target]:
        """The card, transaction or offer of every candidate, with its status."""
        return {
            name: targets.resolve(name, rule, turn, fee_intents=self.settings.fee_intents)
            for name, rule in rules.items()
        }

    # --- proposing and acting ----------------------------------------------------------------

    def propose(self, decision: PolicyDecision, turn: Turn) -> Proposal:
        """List exactly what a "yes" will do to the card, transaction or offer."""
        action = decision["action"]
        target = decision.get("target") or {}
        pending = {"action": action, "intent": turn.intent, "target": target, "awaiting": None}
        if target.get("kind") == "offer":
            reply = self.word_offer(turn.state.get("offer") or {})
            return Proposal(reply=reply, pending=pending, proposed=True)  # type: ignore[arg-type]
        reply = templates.confirm(action, target.get("label"),
                                  self.settings.replacement_delivery.standard)  # fmt: skip
        issue = (
            self._issue(target, [action], turn) if target.get("kind") in _SUBJECT_KINDS else None
        )
        return Proposal(reply=reply, pending=pending, issue=issue, proposed=True)  # type: ignore[arg-type]

    def _issue(self, target: Target, proposed: list[str], turn: Turn) -> Issue:
        """The issue about a card or transaction: continue the open one, or open a new one."""
        subject = target.get("id")
        for cand in (turn.state.get("issue"), turn.open_issue):
            if cand and cand.get("subject_id") == subject:
                kept: Issue = {k: v for k, v in cand.items() if not k.startswith("episode_")}  # type: ignore[assignment]
                return {**kept, "customer_id": turn.state.get("customer_id"), "status": "open",
                        "proposed_actions": proposed}  # fmt: skip
        return {
            "id": f"iss-{turn.session_id}-{subject}",
            "customer_id": turn.state.get("customer_id"),
            "subject_kind": target.get("kind"),
            "subject_id": subject,
            "subject_label": target.get("label"),
            "order_id": None,
            "item_ids": [],
            "item_names": [],
            "kind": turn.intent,
            "description": turn.text[:200].strip().rstrip(".!?"),
            "proposed_actions": proposed,
            "opened_in": turn.session_id,
            "status": "open",
        }

    async def execute(self, call: ActionCall, target: Target, turn: Turn) -> dict[str, Any]:
        """Run a confirmed bank write (``actions``); anything else goes to a human."""
        services, record = turn.deps.services, str(target.get("id"))
        reason = str((target.get("args") or {}).get("reason") or call.action)
        if call.action == "freeze_card":
            return await actions.freeze_card(services, call, record)
        if call.action == "order_replacement_card":
            delivery = self.settings.replacement_delivery.standard
            return await actions.order_replacement_card(services, call, record, reason, delivery)
        if call.action == "dispute_transaction":
            return await actions.dispute_transaction(services, call, record, reason)
        if call.action == turn.deps.policy.retention.apply_action:
            offer = turn.state.get("offer") or {}
            spec = self.settings.retention_offers.get(str(offer.get("offer_id")))
            if spec is None:
                raise NeedsHumanError("this offer needs a human agent")
            return await actions.apply_retention_offer(services, call, offer, spec.kind)
        raise NeedsHumanError(f"{call.action} needs a human agent")

    def word_result(self, action: str, target: Target, result: dict[str, Any], turn: Turn) -> str:
        """The result in the customer's words (every fact from ``result``)."""
        return templates.done(action, target.get("label"), result)

    def clarify(self, decision: PolicyDecision, turn: Turn) -> str:
        """Which card or transaction is meant, listing the candidates."""
        target = decision.get("target") or {}
        return templates.which(str(target.get("kind") or "card"), target.get("candidates") or [])

    def refuse(self, decision: PolicyDecision, turn: Turn) -> Refusal:
        """The policy's reason; for a transaction, where its dispute stands.

        The customer's concern about the card or transaction stays an open issue.
        """
        target = decision.get("target") or {}
        if target.get("kind") not in _SUBJECT_KINDS or not target.get("id"):
            return super().refuse(decision, turn)
        reply = templates.refused(decision.get("reason"))
        if target.get("kind") == "transaction":
            reply = templates.no_second_dispute(
                templates.subject_status(turn.c360, target.get("id"))
            )
        return Refusal(reply, issue=self._issue(target, [], turn))

    def issue_on_handoff(self, decision: PolicyDecision, turn: Turn) -> Issue | None:
        """The card or transaction the handed-over conversation is about."""
        target = decision.get("target") or {}
        if target.get("kind") in _SUBJECT_KINDS and target.get("id"):
            return self._issue(target, [decision["action"]], turn)
        return None

    # --- informing ---------------------------------------------------------------------------

    def inform(self, action: str, target: Target, turn: Turn) -> str | None:
        """Account activity from the 360."""
        if action == "account_activity" and turn.state.get("authenticated"):
            return templates.account_activity(turn.c360)
        return None

    def subject_status(self, issue: Issue, turn: Turn) -> str:
        """The card's status or the transaction's dispute, from the 360."""
        return templates.subject_status(turn.c360, issue.get("subject_id"))

    def action_words(self, actions_: list[str]) -> str:
        """``"a dispute"``."""
        return templates.action_words(actions_)

    # --- retention ---------------------------------------------------------------------------

    async def choose_retention_offer(
        self, turn: Turn, facts: OfferFacts
    ) -> tuple[Offer | None, list[Verdict]]:
        """The first card offer of the retention protocol the policy allows."""
        c360 = turn.c360
        if not any(h["kind"] == "credit_card" for h in c360.get("holdings", [])):
            return None, []
        async with turn.deps.services.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT terms FROM offers WHERE tenant_id = %s AND kind = 'card_product'",
                    (turn.tenant_id,),
                )
            ).fetchall()
        catalog = {r["terms"]["product"]: r["terms"] for r in rows}
        specs = {k: v.model_dump() for k, v in self.settings.retention_offers.items()}
        offer, decisions = retention.choose_offer(turn.deps.policy, c360, catalog, facts, specs)
        return offer, list(decisions)

    def word_offer(self, offer: Offer) -> str:
        """The offer, its terms and its disclosure."""
        spec = self.settings.retention_offers.get(str(offer.get("offer_id")))
        return templates.offer_text(offer, spec.kind if spec else None)

    # --- data --------------------------------------------------------------------------------

    async def load(self, services: Services, tenant_id: str) -> dict[str, int]:
        """Load Rho-Bank into the tenant's systems of record, knowledge base and offers."""
        return (await load_bank(services, tenant_id)).inserted
