"""A third line of business, written in the test tree: a lending library's book loans.

It proves the vertical protocol is the whole contract: its tenant pack (``tests/packs/library``)
names it by import path (``vertical.name: tests.library_vertical:LibraryVertical``) and the
graph, the policy engine and the action ledger serve it with no change under ``src/``. Loans are
``holdings`` rows of kind ``book_loan`` (``product`` the title, ``details.due`` the ISO due date,
``details.renewals`` how often renewed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from support_agent.actions.ledger import ActionCall, Conn, idempotent, lock_one, require
from support_agent.errors import NeedsHumanError
from support_agent.policy.config import ActionRule
from support_agent.state import Customer360, Holding, Issue, PolicyDecision, Target
from support_agent.verticals.protocol import Proposal, Turn, Vertical


class LibrarySettings(BaseModel):
    """The library's business numbers: days a renewal adds, renewals allowed per loan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    renewal_days: int = Field(14, gt=0)
    max_renewals: int = Field(2, ge=0)


def _loans(c360: Customer360) -> list[Holding]:
    return [h for h in c360.get("holdings", []) if h["kind"] == "book_loan"]


class LibraryVertical(Vertical):
    """Book loans: renew one, once confirmed, at most ``max_renewals`` times."""

    name: ClassVar[str] = "library"
    settings_model: ClassVar[type[BaseModel]] = LibrarySettings
    settings: LibrarySettings

    def entities(self, text: str, c360: Customer360) -> dict[str, Any]:
        lowered = text.lower()
        named = [h["product"] for h in _loans(c360)
                 if re.search(rf"\b{re.escape(h['product'].lower())}\b", lowered)]  # fmt: skip
        return {"titles": named}

    def names_subject(self, entities: dict[str, Any]) -> bool:
        return bool(entities.get("titles"))

    async def resolve_targets(
        self, rules: Mapping[str, ActionRule], turn: Turn
    ) -> dict[str, Target]:
        return {name: self._target(name, rule, turn) for name, rule in rules.items()}

    def _target(self, action: str, rule: ActionRule, turn: Turn) -> Target:
        if rule.target != "loan":
            return {"kind": None, "id": None, "source": "none", "candidates": [], "args": {}}
        pending = turn.pending
        if pending and pending.get("action") == action and turn.signals.get("confirmation"):
            return {**(pending.get("target") or {}), "source": "pending_action"}
        loans = _loans(turn.c360)
        titles = turn.entities.get("titles") or []
        pool = [h for h in loans if h["product"] in titles] or loans
        active = [h for h in pool if h["status"] == "ACTIVE"]
        pool = active if len(pool) > 1 and active else pool
        loan = pool[0] if len(pool) == 1 else None
        return {
            "kind": "loan",
            "id": loan["id"] if loan else None,
            "label": f'"{loan["product"]}"' if loan else None,
            "status": str(loan["status"]).lower() if loan else None,
            "source": "message" if titles else "inferred",
            "candidates": [h["product"] for h in pool] if loan is None else [],
            "args": {"due": (loan.get("details") or {}).get("due")} if loan else {},
        }

    def propose(self, decision: PolicyDecision, turn: Turn) -> Proposal:
        target = decision.get("target") or {}
        days = self.settings.renewal_days
        return Proposal(
            reply=f"To confirm: renew {target.get('label')} for {days} more days. "
            "Reply yes to go ahead.",
            pending={"action": decision["action"], "intent": turn.intent, "target": target,
                     "awaiting": None},
            proposed=True,
        )  # fmt: skip

    async def execute(self, call: ActionCall, target: Target, turn: Turn) -> dict[str, Any]:
        if call.action != "renew_loan":
            raise NeedsHumanError(f"{call.action} needs a librarian")
        loan_id = str(target.get("id"))

        async def body(conn: Conn) -> tuple[dict[str, Any], dict[str, Any]]:
            loan = await lock_one(
                conn,
                "SELECT status, details FROM holdings WHERE tenant_id = %s AND id = %s"
                " AND customer_id = %s AND kind = 'book_loan' FOR UPDATE",
                (call.tenant_id, loan_id, call.customer_id),
                missing="loan not found for this reader",
            )
            details = dict(loan["details"] or {})
            require(loan["status"] == "ACTIVE", "only a loan still out can be renewed")
            renewals = int(details.get("renewals", 0))
            require(renewals < self.settings.max_renewals, "this loan cannot be renewed again")
            due = date.fromisoformat(details["due"]) + timedelta(days=self.settings.renewal_days)
            details.update(due=due.isoformat(), renewals=renewals + 1)
            await conn.execute(
                "UPDATE holdings SET details = %s WHERE tenant_id = %s AND id = %s",
                (json.dumps(details), call.tenant_id, loan_id),
            )
            return {"loan_id": loan_id}, {"loan_id": loan_id, "due": due.isoformat(),
                                          "renewals": renewals + 1}  # fmt: skip

        return await idempotent(turn.deps.services, call, body)

    def word_result(self, action: str, target: Target, result: dict[str, Any], turn: Turn) -> str:
        return f"Done: {target.get('label')} is now due on {result['due']}."

    def subject_status(self, issue: Issue, turn: Turn) -> str:
        loan = next((h for h in _loans(turn.c360) if h["id"] == issue.get("subject_id")), None)
        return f"The loan is {str(loan['status']).lower()}." if loan else "It's still open."
