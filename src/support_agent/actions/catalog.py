"""The catalogue of candidate actions the next-best-action ranker chooses from.

Each action declares what the policy engine needs to judge it: whether it discloses or changes
account data (``requires_auth``), whether it writes (``write``: needs explicit confirmation), and
which order statuses it applies to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActionKind = Literal["inform", "write", "handoff", "identify"]


@dataclass(frozen=True)
class ActionSpec:
    """One candidate action.

    Attributes:
        name: stable id (used in audit records and API responses).
        kind: ``inform`` (answer), ``write`` (changes the systems of record), ``handoff``
            (escalation) or ``identify`` (ask for identification).
        requires_auth: discloses or changes account-specific data.
        needs_order: targets one order.
        needs_items: targets specific items of that order.
        order_statuses: statuses the target order must have (``None``: any).
        label: human wording used in replies.
    """

    name: str
    kind: ActionKind
    requires_auth: bool
    needs_order: bool = False
    needs_items: bool = False
    order_statuses: frozenset[str] | None = None
    label: str = ""

    @property
    def is_write(self) -> bool:
        """True for actions that change the systems of record."""
        return self.kind == "write"


_PENDING = frozenset({"pending"})
_DELIVERED = frozenset({"delivered"})

ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in [
        ActionSpec(
            "ask_identification", "identify", requires_auth=False, label="verify your identity"
        ),
        ActionSpec("general_help", "inform", requires_auth=False, label="help"),
        ActionSpec(
            "order_status",
            "inform",
            requires_auth=True,
            needs_order=False,
            label="check the order status",
        ),
        ActionSpec("refund_status", "inform", requires_auth=True, label="check the refund"),
        ActionSpec(
            "follow_up_open_issue",
            "inform",
            requires_auth=True,
            label="follow up on your open issue",
        ),
        ActionSpec("log_complaint", "inform", requires_auth=True, label="record your complaint"),
        ActionSpec(
            "cancel_order",
            "write",
            requires_auth=True,
            needs_order=True,
            order_statuses=_PENDING,
            label="cancel the order",
        ),
        ActionSpec(
            "modify_order",
            "write",
            requires_auth=True,
            needs_order=True,
            order_statuses=_PENDING,
            label="modify the order",
        ),
        ActionSpec(
            "return_items",
            "write",
            requires_auth=True,
            needs_order=True,
            needs_items=True,
            order_statuses=_DELIVERED,
            label="return the items",
        ),
        ActionSpec(
            "exchange_items",
            "write",
            requires_auth=True,
            needs_order=True,
            needs_items=True,
            order_statuses=_DELIVERED,
            label="exchange the items",
        ),
        ActionSpec(
            "escalate_to_human",
            "handoff",
            requires_auth=False,
            label="connect you with a colleague",
        ),
    ]
}

#: Affinity of each intent for each action, in [0, 1] (the ``fit`` term's prior).
INTENT_AFFINITY: dict[str, dict[str, float]] = {
    "order_status": {"order_status": 1.0, "follow_up_open_issue": 0.6},
    "cancel": {"cancel_order": 1.0},
    "return": {"return_items": 1.0, "exchange_items": 0.6},
    "exchange": {"exchange_items": 1.0, "return_items": 0.6},
    "modify_address": {"modify_order": 1.0},
    "modify_payment": {"modify_order": 1.0},
    "modify_items": {"modify_order": 1.0},
    "refund_status": {"refund_status": 1.0, "follow_up_open_issue": 0.5},
    "complaint": {"log_complaint": 1.0, "return_items": 0.4, "escalate_to_human": 0.3},
    "human_agent": {"escalate_to_human": 1.0},
    "other": {"general_help": 1.0, "follow_up_open_issue": 0.3},
    "out_of_scope": {"general_help": 1.0},
}
