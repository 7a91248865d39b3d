"""Declarative per-tenant policy: ``tenants/<tenant>/policy.yaml``, validated on load.

Sections:

- ``compliance``: switches for the hard rules (authentication before account access,
  confirmation before any write, one customer per conversation, personal data masked in replies,
  no offer while a complaint is open);
- ``actions``: per action, its kind (``inform`` | ``write`` | ``handoff`` | ``identify``), whether
  it needs authentication, its target (an order, card, transaction or offer), specific items,
  and which target statuses allow it;
- ``retention``: the maximum discount, the minimum days between two retention offers, and the
  rules saying who may get which offer (tiers, minimum tenure, churn bands, discount, whether a
  disclosure of the promotional terms is required).

A malformed file fails loudly at start-up (:class:`pydantic.ValidationError` wrapped in
``InvalidRequestError``) rather than silently weakening a rule.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from support_agent.errors import InvalidRequestError
from support_agent.tenants import load_tenant_config


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
    requires_auth: bool = False
    #: what the action is about: an ``order`` (retail), a ``card`` or a ``transaction`` (bank),
    #: or a retention ``offer``; ``None`` for actions about no particular record
    target: Literal["order", "card", "transaction", "offer"] | None = None
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
    churn_bands: list[Literal["low", "medium", "high"]]
    discount_pct: float = Field(ge=0, le=100)
    requires_disclosure: bool = True
    #: the customer must hold a credit card (``credit_card``), one with an annual fee
    #: (``annual_fee_card``), or nothing in particular (``None``)
    requires_holding: Literal["credit_card", "annual_fee_card"] | None = None


class Retention(BaseModel):
    """Retention policy: limits and eligibility rules."""

    model_config = ConfigDict(extra="forbid")

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


@lru_cache(maxsize=16)
def load_policy(tenant_id: str) -> Policy:
    """The tenant's validated policy.

    Raises:
        NotFoundError: unknown tenant.
        InvalidRequestError: the policy file is missing or invalid.
    """
    return read_policy(load_tenant_config(tenant_id).pack_dir / "policy.yaml")


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
