"""The bank vertical's business numbers (``vertical.settings`` in a bank's ``tenant.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RetentionOfferSpec(BaseModel):
    """What one retention offer id means.

    Attributes:
        kind: ``fee_waiver`` (the card's annual fee waived for ``waiver_days``), ``downgrade``
            (to the segment's no-annual-fee card) or ``statement_credit`` (by card tier).
        waiver_days: length of a fee waiver, days.
        credit_by_card_tier: statement credit per card tier (``entry``, ``mid``, ``premium``), USD.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["fee_waiver", "downgrade", "statement_credit"]
    waiver_days: int = Field(365, gt=0)
    credit_by_card_tier: dict[str, float] = {}


class ReplacementDelivery(BaseModel):
    """How long a replacement card takes to arrive ("What Happens When You Order a Replacement")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    standard: str = "7-10 business days"
    expedited: str = "2-3 business days"


class BankSettings(BaseModel):
    """Bank business numbers.

    Attributes:
        fee_intents: intents about a fee (a fee-like transaction is then the likely target).
        retention_offers: what each retention offer id of the policy means.
        replacement_delivery: replacement card delivery times.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fee_intents: tuple[str, ...] = ()
    retention_offers: dict[str, RetentionOfferSpec] = {}
    replacement_delivery: ReplacementDelivery = ReplacementDelivery()

    def statement_credits(self) -> dict[str, float]:
        """The statement credit per card tier (USD) of the statement-credit offer, if any."""
        for spec in self.retention_offers.values():
            if spec.kind == "statement_credit":
                return dict(spec.credit_by_card_tier)
        return {}
