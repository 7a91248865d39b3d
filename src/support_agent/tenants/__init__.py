"""Tenant packs: each tenant's configuration, policy and data, validated at start-up.

A pack is a folder ``<packs dir>/<tenant_id>/`` holding:

- ``tenant.yaml``: the tenant's configuration and business numbers (:class:`TenantConfig`): the
  vertical that serves it and that vertical's settings, its verification policy, tiers, CLV
  constants, memory and handoff settings, and the next-best-action ranking (weights,
  intent→action affinities);
- ``policy.yaml``: the tenant's hard rules (``policy.config.Policy``);
- the intent training data (``intents_file``) and seed resolution records (``resolutions.yaml``).

Both YAML files are validated by pydantic models with ``extra="forbid"``: a misspelt key or a
value out of range fails at start-up (:class:`InvalidRequestError`), never silently weakens a
rule. The built-in packs live in this package; operators add packs of their own in a directory
(``TENANT_PACKS_DIR``), searched first. :class:`TenantPacks` is the registry a process opens once
(``services.Services``); nothing here is global.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from limits import parse_many
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.policy.config import Policy, read_policy
from support_agent.tenants.verification import VerificationPolicy

PACKS_DIR = Path(__file__).resolve().parent


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemoryConfig(_Strict):
    """Per-tenant memory settings (``memory:``).

    Attributes:
        base_trust: ``base_score`` of the trust formula (0.5: a new customer is neither trusted
            nor distrusted).
        base_churn: ``base_risk`` of the churn formula.
        episodes_top_k: episodes relevant to the message loaded per turn.
        context_budget_chars: most characters of episode summaries loaded per turn (2,400 ≈ 600
            tokens).
    """

    base_trust: float = Field(0.5, ge=0, le=1)
    base_churn: float = Field(0.1, ge=0, le=1)
    episodes_top_k: int = Field(3, ge=0, le=50)
    context_budget_chars: int = Field(2400, ge=0)


class HandoffConfig(_Strict):
    """Per-tenant warm-handoff settings (``handoff:``).

    Attributes:
        offer_help_before_human: times the agent offers its own help before transferring a
            customer who asks for a person (0: transfer at once).
        billing_dispute_intents: intents that count as a billing dispute (also a complaint for
            the retention rule ``no_offer_while_complaint_open``).
        high_value_tiers: tiers whose billing disputes go straight to a human.
        vip_tiers: tiers flagged VIP on the human agent's panel.
    """

    offer_help_before_human: int = Field(0, ge=0)
    billing_dispute_intents: tuple[str, ...] = ()
    high_value_tiers: tuple[str, ...] = ("gold",)
    vip_tiers: tuple[str, ...] = ("gold",)


class ClvConfig(_Strict):
    """CLV constants (``clv:``, ``features.store``).

    Attributes:
        margin_rate: share of the value basis earned per year.
        discount_rate: annual discount rate.
    """

    margin_rate: float = Field(0.25, gt=0, le=1)
    discount_rate: float = Field(0.10, ge=0, le=1)


class RankingWeights(_Strict):
    """Weights of the next-best-action formula (``ranking``); they sum to 1."""

    fit: float = Field(ge=0, le=1)
    evidence: float = Field(ge=0, le=1)
    memory: float = Field(ge=0, le=1)
    urgency: float = Field(ge=0, le=1)
    retention: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> RankingWeights:
        total = self.fit + self.evidence + self.memory + self.urgency + self.retention
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"ranking weights must sum to 1 (got {total:.4f})")
        return self

    def as_dict(self) -> dict[str, float]:
        """``{term: weight}`` in the formula's order."""
        return self.model_dump()


class RankingConfig(_Strict):
    """Next-best-action ranking (``ranking:``, ``ranking.score_candidate``).

    Attributes:
        weights: the formula's weights.
        affinities: ``{intent: {action: affinity in [0, 1]}}``, the ``fit`` term's prior.
        knowledge_action: the action answered from public help articles; it fits every in-scope
            intent (one not in ``non_questions``) at ``knowledge_affinity`` unless the table
            says otherwise.
        non_questions: intents that are not questions a help article answers.
        always: actions scored on every turn (a human, general help).
        follow_up_intents: intents under which a message naming no particular record continues
            the customer's open issue.
        ineligible_factor: the ``eligibility`` factor of an action its target's status rules
            out (so an allowed related action ranks first).
    """

    weights: RankingWeights
    affinities: dict[str, dict[str, float]]
    knowledge_action: str = "answer_from_knowledge"
    knowledge_affinity: float = Field(0.8, ge=0, le=1)
    non_questions: tuple[str, ...] = ("other", "out_of_scope", "human_agent")
    always: tuple[str, ...] = ("escalate_to_human", "general_help")
    follow_up_intents: tuple[str, ...] = ()
    ineligible_factor: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _affinities_in_range(self) -> RankingConfig:
        for intent, row in self.affinities.items():
            for action, value in row.items():
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"affinity {intent} → {action} must be in [0, 1]")
        return self

    def affinity(self, intent: str, action: str) -> float:
        """Affinity of ``intent`` for ``action`` in [0, 1] (see the class docstring)."""
        row = self.affinities.get(intent, {})
        if action == self.knowledge_action and intent not in self.non_questions:
            return row.get(action, self.knowledge_affinity)
        return row.get(action, 0.0)

    def candidates(self, intent: str) -> set[str]:
        """Actions worth scoring for ``intent`` (the policy then keeps those it declares)."""
        extra = {self.knowledge_action} if intent not in self.non_questions else set()
        return set(self.affinities.get(intent, {})) | extra | set(self.always)


class VerticalRef(_Strict):
    """The vertical that serves a tenant (``vertical:``).

    Attributes:
        name: a built-in vertical (``retail``, ``bank``) or an import path
            ``package.module:Class`` of a vertical of one's own.
        settings: the vertical's business numbers, validated by its own settings model.
    """

    name: str
    settings: dict[str, Any] = {}


_NEGATED = re.compile(r"\b(not|never|no)\b|n't\b", re.I)


class IntentCue(_Strict):
    r"""An explicit request verb that names the intent (``intent_cues:``).

    Attributes:
        intent: the intent the cue stands for.
        pattern: a case-insensitive regular expression (e.g. ``\bcancel\b``).
    """

    intent: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class WidgetConfig(_Strict):
    """The chat widget of a tenant (``widget:`` in ``tenant.yaml``).

    Attributes:
        allowed_origins: web origins (``https://shop.example``) whose pages may embed the widget
            and call the graph endpoint with the tenant's publishable key (CORS); none: no
            browser origin may.
        identity_secret_env: the environment variable holding the HMAC secret the tenant's site
            signs logged-in customers' tokens with (HS256 JWT, ``sub`` = customer id); unset:
            widget visitors identify in the conversation.
        title: the widget's heading.
    """

    allowed_origins: tuple[str, ...] = ()
    identity_secret_env: str | None = None
    title: str = "Support"

    @property
    def origins(self) -> frozenset[str]:
        """The allowed origins as browsers send them (no trailing ``/``)."""
        return frozenset(o.rstrip("/") for o in self.allowed_origins)


class TenantConfig(_Strict):
    """Configuration of one tenant, from ``tenants/<id>/tenant.yaml``.

    Attributes:
        tenant_id: the tenant's id (the pack folder's name).
        name: display name.
        vertical: the vertical serving the tenant and its settings.
        verification: which facts verify a customer, how many, for what
            (:class:`~support_agent.tenants.verification.VerificationPolicy`).
        tier_basis: the 360 value the tiers are computed from: ``net_spend`` (payments minus
            refunds) or ``balances`` (deposits held).
        tier_thresholds: ``{tier: minimum of the tier basis in currency units}``, checked from
            the highest threshold down; below every threshold the tier is ``standard``.
        frustration_escalation: frustration score (0..1) at or above which the agent hands off.
        intent_min_confidence: below this classifier probability the intent is ``other``.
        intent_cues: explicit request verbs; the one that comes first in a message decides its
            intent over the classifier (a long message stating one request in plain words is
            what classifiers trained on short utterances get wrong); ties go to the earlier cue.
        help_topics: what the agent can help with, in the customer's words.
        intents_file: the labelled utterances the intent model trains on: a path in the pack,
            ``shared:<path>`` inside ``SHARED_DATA_DIR``, or a list of them.
        rate_limit: requests per API key of this tenant in the ``limits`` notation
            (``"120/minute"``, ``"10/second;600/hour"``); ``None`` uses ``RATE_LIMIT``.
        widget: the chat widget's allowed origins and identity secret.
        memory / handoff / clv / ranking: see their models.
        pack_dir: the pack folder (set by the loader).
    """

    tenant_id: str
    name: str
    vertical: VerticalRef
    verification: VerificationPolicy
    tier_basis: Literal["net_spend", "balances"] = "net_spend"
    tier_thresholds: dict[str, float]
    frustration_escalation: float = Field(ge=0, le=1)
    intent_min_confidence: float = Field(ge=0, le=1)
    intent_cues: tuple[IntentCue, ...] = ()
    help_topics: str = "your account"
    intents_file: str | tuple[str, ...] = "intents.csv"
    rate_limit: str | None = None
    widget: WidgetConfig = WidgetConfig()
    memory: MemoryConfig = MemoryConfig()
    handoff: HandoffConfig = HandoffConfig()
    clv: ClvConfig = ClvConfig()
    ranking: RankingConfig
    pack_dir: Path

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_many(value)  # ValueError names what it could not read
        return value

    def intents_paths(self, shared_data_dir: Path) -> list[Path]:
        """The intent training files (``intents_file`` resolved; one name or a list).

        Raises:
            NotFoundError: a file does not exist.
        """
        names = [self.intents_file] if isinstance(self.intents_file, str) else self.intents_file
        paths = []
        for name in names:
            if name.startswith("shared:"):
                path = shared_data_dir / name.removeprefix("shared:")
            else:
                path = self.pack_dir / name
            if not path.is_file():
                raise NotFoundError(
                    f"intent training data for {self.tenant_id!r} not found at {path}"
                )
            paths.append(path)
        return paths

    def cued_intent(self, text: str) -> str | None:
        """The intent of the first request verb in ``text`` (``intent_cues``), or ``None``.

        A verb negated just before it ("I don't want to cancel") is no request.
        """
        best: tuple[int, int, str] | None = None
        for rank, cue in enumerate(self.intent_cues):
            for m in re.finditer(cue.pattern, text, re.I):
                if _NEGATED.search(text[max(0, m.start() - 25) : m.start()]):
                    continue
                if best is None or (m.start(), rank) < best[:2]:
                    best = (m.start(), rank, cue.intent)
                break
        return None if best is None else best[2]

    def tier_for(self, basis: float) -> str:
        """The relationship tier for a value of the tier basis (currency units)."""
        for tier, minimum in sorted(self.tier_thresholds.items(), key=lambda kv: -kv[1]):
            if basis >= minimum:
                return tier
        return "standard"


@dataclass(frozen=True)
class TenantPack:
    """One tenant's validated pack: its configuration and its policy."""

    config: TenantConfig
    policy: Policy

    @property
    def tenant_id(self) -> str:
        """The tenant's id."""
        return self.config.tenant_id


def read_pack(pack_dir: Path) -> TenantPack:
    """Read and validate one pack folder (``tenant.yaml`` and ``policy.yaml``).

    Raises:
        InvalidRequestError: a file is missing, not YAML, or fails validation; the policy names
            an action the ranking never scores or the other way round is allowed.
    """
    path = pack_dir / "tenant.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
        config = TenantConfig.model_validate(
            {**(raw or {}), "tenant_id": pack_dir.name, "pack_dir": pack_dir}
        )
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise InvalidRequestError(
            f"invalid tenant pack {pack_dir.name}/tenant.yaml: {exc}"
        ) from exc
    return TenantPack(config=config, policy=read_policy(pack_dir / "policy.yaml"))


class TenantPacks:
    """The tenant packs a process serves: built-in packs and an operator's directory.

    Args:
        extra_dirs: directories searched before the built-in packs (``TENANT_PACKS_DIR``).

    Packs are read once and cached; :meth:`load_all` validates every pack at start-up.
    """

    def __init__(self, extra_dirs: tuple[Path, ...] = ()) -> None:
        self.roots = (*extra_dirs, PACKS_DIR)
        self._packs: dict[str, TenantPack] = {}
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        """Every tenant id a pack exists for, sorted."""
        return sorted({p.parent.name for root in self.roots for p in root.glob("*/tenant.yaml")})

    def _pack_dir(self, tenant_id: str) -> Path | None:
        if not tenant_id.isidentifier():
            return None
        for root in self.roots:
            if (root / tenant_id / "tenant.yaml").is_file():
                return root / tenant_id
        return None

    def get(self, tenant_id: str) -> TenantPack:
        """The tenant's pack.

        Raises:
            NotFoundError: no pack with that id.
            InvalidRequestError: the pack is invalid.
        """
        pack = self._packs.get(tenant_id)
        if pack is not None:
            return pack
        with self._lock:
            if tenant_id not in self._packs:
                directory = self._pack_dir(tenant_id)
                if directory is None:
                    raise NotFoundError(f"unknown tenant {tenant_id!r}")
                self._packs[tenant_id] = read_pack(directory)
            return self._packs[tenant_id]

    def config(self, tenant_id: str) -> TenantConfig:
        """The tenant's configuration (see :meth:`get`)."""
        return self.get(tenant_id).config

    def policy(self, tenant_id: str) -> Policy:
        """The tenant's policy (see :meth:`get`)."""
        return self.get(tenant_id).policy

    def load_all(self) -> list[str]:
        """Read and validate every pack now (start-up); returns the tenant ids.

        Raises:
            InvalidRequestError: a pack is invalid.
        """
        ids = self.ids()
        for tenant_id in ids:
            self.get(tenant_id)
        return ids
