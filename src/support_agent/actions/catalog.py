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
    "update_default_address": "update your default address",
    "answer_from_knowledge": "answer from our help articles",
    "account_activity": "check your account activity",
    "freeze_card": "freeze the card",
    "order_replacement_card": "order a replacement card",
    "dispute_transaction": "dispute the transaction",
    "apply_retention_offer": "apply the offer",
}

#: Affinity of each intent for each action, in [0, 1] (the ``fit`` term's prior).
INTENT_AFFINITY: dict[str, dict[str, float]] = {
    "order_status": {"order_status": 1.0, "follow_up_open_issue": 0.6},
    "cancel": {"cancel_order": 1.0},
    "return": {"return_items": 1.0, "exchange_items": 0.6},
    "exchange": {"exchange_items": 1.0, "return_items": 0.6, "modify_order": 0.6},
    "modify_address": {"modify_order": 1.0},
    "modify_payment": {"modify_order": 1.0},
    "modify_items": {"modify_order": 1.0},
    "refund_status": {"refund_status": 1.0, "follow_up_open_issue": 0.5},
    "complaint": {"log_complaint": 1.0, "return_items": 0.4, "escalate_to_human": 0.3},
    "human_agent": {"escalate_to_human": 1.0},
    "other": {"general_help": 1.0, "follow_up_open_issue": 0.3},
    "out_of_scope": {"general_help": 1.0},
    "modify_default_address": {"update_default_address": 1.0},
}

#: Banking77 intents (Casanueva et al. 2020) and the bank actions they call for. Every other
#: in-scope Banking77 intent is a question the knowledge base answers (``answer_from_knowledge``,
#: affinity :data:`KNOWLEDGE_AFFINITY`).
BANK_AFFINITY: dict[str, dict[str, float]] = {
    # a charge or fee the customer questions → dispute it
    **{
        intent: {"dispute_transaction": 1.0, "account_activity": 0.4}
        for intent in (
            "card_payment_fee_charged",
            "direct_debit_payment_not_recognised",
            "card_payment_not_recognised",
            "wrong_amount_of_cash_received",
            "cash_withdrawal_charge",
            "extra_charge_on_statement",
            "transaction_charged_twice",
            "cash_withdrawal_not_recognised",
            "transfer_fee_charged",
            "exchange_charge",
            "top_up_by_card_charge",
            "card_payment_wrong_exchange_rate",
            "wrong_exchange_rate_for_cash_withdrawal",
        )
    },  # fmt: skip
    "request_refund": {"dispute_transaction": 0.7, "account_activity": 0.5},
    "lost_or_stolen_card": {"freeze_card": 1.0, "order_replacement_card": 0.7},
    "compromised_card": {"freeze_card": 1.0, "order_replacement_card": 0.6},
    "lost_or_stolen_phone": {"freeze_card": 0.6},
    "card_swallowed": {"order_replacement_card": 0.8, "freeze_card": 0.5},
    "card_not_working": {"order_replacement_card": 1.0},
    "card_about_to_expire": {"order_replacement_card": 1.0},
    "contactless_not_working": {"order_replacement_card": 0.6},
    "terminate_account": {"apply_retention_offer": 1.0},
    **{
        intent: {"account_activity": 1.0}
        for intent in (
            "pending_card_payment",
            "balance_not_updated_after_bank_transfer",
            "balance_not_updated_after_cheque_or_cash_deposit",
            "pending_transfer",
            "pending_cash_withdrawal",
            "transfer_not_received_by_recipient",
            "Refund_not_showing_up",
            "reverted_card_payment?",
            "pending_top_up",
            "declined_card_payment",
            "declined_cash_withdrawal",
            "declined_transfer",
        )
    },  # fmt: skip
}
KNOWLEDGE_AFFINITY = 0.8
_NOT_QUESTIONS = frozenset({"other", "out_of_scope", "human_agent"})


def affinity(intent: str, action: str) -> float:
    """Affinity of ``intent`` for ``action`` in [0, 1] (the ``fit`` term's prior).

    Retail intents and Banking77 intents have their own tables; ``answer_from_knowledge`` fits
    every in-scope intent at :data:`KNOWLEDGE_AFFINITY` (the knowledge base answers questions the
    tables do not route to an account action).
    """
    table = INTENT_AFFINITY.get(intent) or BANK_AFFINITY.get(intent) or {}
    if action == "answer_from_knowledge" and intent not in _NOT_QUESTIONS:
        return table.get(action, KNOWLEDGE_AFFINITY)
    return table.get(action, 0.0)


def candidate_actions(intent: str) -> set[str]:
    """Actions worth scoring for an intent (the tenant's policy then keeps those it declares)."""
    table = INTENT_AFFINITY.get(intent) or BANK_AFFINITY.get(intent) or {}
    extra = {"answer_from_knowledge"} if intent not in _NOT_QUESTIONS else set()
    return set(table) | extra
