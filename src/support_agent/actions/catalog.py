"""The candidate actions the next-best-action ranker chooses from: labels and intent affinities.

What the policy requires of each action (authentication, confirmation, order statuses) is not
here: it is declared per tenant in ``tenants/<tenant>/policy.yaml`` (``policy.config``), and a
tenant offers only the actions its policy declares.
"""

from __future__ import annotations

#: Human wording of each action, used in replies and audit reasons.
ACTION_LABELS: dict[str, str] = {
    "ask_identification": "verify your identity",
    "general_help": "help",
    "order_status": "check the order status",
    "refund_status": "check the refund",
    "follow_up_open_issue": "follow up on your open issue",
    "log_complaint": "record your complaint",
    "cancel_order": "cancel the order",
    "modify_order": "modify the order",
    "return_items": "return the items",
    "exchange_items": "exchange the items",
    "escalate_to_human": "connect you with a colleague",
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
