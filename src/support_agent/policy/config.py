"""Declarative per-tenant policy: ``tenants/<tenant>/policy.yaml``, validated on load.

Sections:

- ``compliance``: switches for the hard rules (authentication before account access,
  confirmation before any write, one customer per conversation, personal data masked in replies,
  no offer while a complaint is open);
- ``actions``: per action, its kind (``inform`` | ``write`` | ``handoff`` | ``identify``), its
  wording in audit reasons, whether it needs authentication, its target kind (one the tenant's
  vertical resolves: an order, a card, a transaction, an offer...), specific items, and which
  target statuses allow it;
- ``retention``: the action that applies an offer, who counts as at risk (intents, churn bands
  and the band a stated intent to leave counts as), the maximum discount, the minimum days
  between two retention offers, and the rules saying who may get which offer (tiers, minimum
  tenure, churn bands, discount, whether a disclosure of the promotional terms is required).

A malformed file fails loudly at start-up (:class:`pydantic.ValidationError` wrapped in
``InvalidRequestError``) rather than silently weakening a rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from support_agent.errors import InvalidRequestError

ChurnBand = Literal["low", "medium", "high"]


class Compliance(BaseModel):
    """Compliance switches; every one defaults to the strict setting."""

    model_config = ConfigDict(extra="forbid")

    authenticate_before_account_access: bool = True
    confirmation_before_write: bool = True
    one_customer_per_conversation: bool = True
    mask_personal_data_in_replies: bool = True
    no_offer_while_complaint_open: bool = True


class ActionRule(BaseModel):
    """What the policy requires of one action."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["inform", "write", "handoff", "identify"]
    #: how audit reasons and refusals name the action ("cancel the order"); default: its name
    label: str | None = None
    requires_auth: bool = False
    #: what the action is about, a target kind the tenant's vertical resolves (retail:
    #: ``order``; bank: ``card``, ``transaction``, ``offer``); ``None`` for none in particular
    target: str | None = Field(default=None, pattern=r"^[a-z_]+$")
    #: item-level order actions (return, exchange) also need the items
    needs_items: bool = False
    #: statuses of the target that allow the action (``None``: any)
    status_in: list[str] | None = None


class RetentionRule(BaseModel):
    """Who may get one retention offer."""

    model_config = ConfigDict(extra="forbid")

    offer: str
    tiers: list[str]
    min_tenure_days: int = Field(ge=0)
    churn_bands: list[ChurnBand]
    discount_pct: float = Field(ge=0, le=100)
    requires_disclosure: bool = True
    #: a holding the customer must have, in the tenant's vertical's terms (bank:
    #: ``credit_card``, or ``annual_fee_card`` for one with an annual fee); ``None``: nothing
    requires_holding: str | None = None


class ChurnBands(BaseModel):
    """Lower edges of the churn bands: ``low`` < ``medium`` ≤ churn < ``high`` ≤ churn."""

    model_config = ConfigDict(extra="forbid")

    medium: float = Field(0.3, gt=0, lt=1)
    high: float = Field(0.6, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ChurnBands:
        if self.medium >= self.high:
            raise ValueError("churn band edges must satisfy medium < high")
        return self

    def band(self, churn_risk: float) -> ChurnBand:
        """The band of a churn risk in [0, 1]."""
        if churn_risk < self.medium:
            return "low"
        return "medium" if churn_risk < self.high else "high"

    def floor(self, band: ChurnBand) -> float:
        """The lowest churn risk inside ``band``."""
        return {"low": 0.0, "medium": self.medium, "high": self.high}[band]


class Retention(BaseModel):
    """Retention policy: who is at risk, limits and eligibility rules.

    ``apply_action`` is the write that applies an offer made in the session; ``at_risk_intents``
    are intents that put a customer at risk (e.g. closing the account); a customer who says they
    want to leave counts as at least ``stated_threat_band``: enough for offers allowed in that
    band, never for those kept for a higher one, which only the measured propensity reaches.
    """

    model_config = ConfigDict(extra="forbid")

    apply_action: str | None = None
    at_risk_intents: list[str] = []
    band_edges: ChurnBands = ChurnBands()
    stated_threat_band: ChurnBand = "medium"
    max_discount_pct: float = Field(ge=0, le=100)
    min_days_between_offers: int = Field(ge=0)
    rules: list[RetentionRule] = []


class Policy(BaseModel):
    """A tenant's whole policy file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    compliance: Compliance
    actions: dict[str, ActionRule]
    retention: Retention

    @model_validator(mode="after")
    def _apply_action_declared(self) -> Policy:
        apply = self.retention.apply_action
        if apply is not None and apply not in self.actions:
            raise ValueError(f"retention.apply_action {apply!r} is not a declared action")
        if self.retention.rules and apply is None:
            raise ValueError("retention rules need retention.apply_action")
        return self

    def label(self, action: str) -> str:
        """How audit reasons name ``action`` (its declared label, else its name in words)."""
        rule = self.actions.get(action)
        return (rule.label if rule and rule.label else None) or action.replace("_", " ")


def read_policy(path: Path) -> Policy:
    """Read and validate one policy file.

    Raises:
        InvalidRequestError: the file is missing, not YAML, or not a valid policy.
    """
    if not path.is_file():
        raise InvalidRequestError(f"no policy file at {path}")
    try:
        return Policy.model_validate(yaml.safe_load(path.read_text()))
    except (ValidationError, yaml.YAMLError) as exc:
        raise InvalidRequestError(f"invalid policy {path.parent.name}/{path.name}: {exc}") from exc
