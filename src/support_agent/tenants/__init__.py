"""Tenant packs: per-tenant data and configuration (intent utterances, resolutions, settings).

A pack is a folder ``<packs dir>/<tenant_id>/`` holding ``tenant.yaml`` (configuration),
``intents.csv`` (labelled utterances, columns ``text,category``) and ``resolutions.yaml`` (seed
resolution records). The built-in packs live in this package; operators can add packs in a
directory of their own (``TENANT_PACKS_DIR``), searched first. :func:`load_tenant_config` reads a
pack's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from support_agent.errors import NotFoundError

PACKS_DIR = Path(__file__).resolve().parent
_extra_dirs: list[Path] = []


def register_pack_dir(path: Path) -> None:
    """Search ``path`` for tenant packs before the built-in ones (``TENANT_PACKS_DIR``)."""
    if path not in _extra_dirs:
        _extra_dirs.insert(0, path)
        load_tenant_config.cache_clear()


def _pack_dir(tenant_id: str) -> Path | None:
    for root in (*_extra_dirs, PACKS_DIR):
        if (root / tenant_id / "tenant.yaml").is_file():
            return root / tenant_id
    return None


@dataclass(frozen=True)
class MemoryConfig:
    """Per-tenant memory settings (``memory:`` in ``tenant.yaml``).

    Attributes:
        base_trust: ``base_score`` of the trust formula (default 0.5: a new customer is neither
            trusted nor distrusted).
        base_churn: ``base_risk`` of the churn formula (default 0.1).
        episodes_top_k: episodes relevant to the message loaded per turn (default 3).
        context_budget_chars: most characters of episode summaries loaded per turn (default 2400,
            about 600 tokens).
    """

    base_trust: float = 0.5
    base_churn: float = 0.1
    episodes_top_k: int = 3
    context_budget_chars: int = 2400


@dataclass(frozen=True)
class HandoffConfig:
    """Per-tenant warm-handoff settings (``handoff:`` in ``tenant.yaml``).

    Attributes:
        offer_help_before_human: times the agent offers its own help before transferring a
            customer who asks for a person (0: transfer at once).
        billing_dispute_intents: intents that count as a billing dispute.
        high_value_tiers: tiers whose billing disputes go straight to a human.
    """

    offer_help_before_human: int = 0
    billing_dispute_intents: tuple[str, ...] = ()
    high_value_tiers: tuple[str, ...] = ("gold",)


@dataclass(frozen=True)
class TenantConfig:
    """Configuration of one tenant, from ``tenants/<id>/tenant.yaml``.

    Attributes:
        tenant_id: the tenant's id.
        name: display name.
        auth_methods: identification methods that authenticate (``email``, ``name_zip``,
            ``phone``); ``customer_id`` alone only identifies.
        tier_thresholds: ``{tier: minimum net lifetime spend in currency units}``, checked from the
            highest threshold down.
        frustration_escalation: frustration score (0..1) at or above which the agent hands off.
        intent_min_confidence: below this classifier probability the intent is treated as
            ``other``.
        pack_dir: the pack folder.
        tier_basis: the 360 value the tiers are computed from: ``net_spend`` (retail: payments
            minus refunds) or ``balances`` (bank: deposits held).
        clv_margin_rate / clv_discount_rate: CLV constants (``features.store``): the share of the
            value basis earned per year, and the annual discount rate.
        memory: memory settings (:class:`MemoryConfig`).
        handoff: warm-handoff settings (:class:`HandoffConfig`).
        intents_file: the labelled utterances the tenant's intent model is trained on: a path in
            the pack, or ``shared:<path>`` inside ``SHARED_DATA_DIR``, or a list of them (the bank
            trains on ``shared:banking77/train.csv`` plus its own ``intents_extra.csv``); see
            :meth:`intents_paths`.
    """

    tenant_id: str
    name: str
    auth_methods: tuple[str, ...]
    tier_thresholds: dict[str, float]
    frustration_escalation: float
    intent_min_confidence: float
    pack_dir: Path
    tier_basis: str = "net_spend"
    clv_margin_rate: float = 0.25
    clv_discount_rate: float = 0.10
    memory: MemoryConfig = field(default_factory=lambda: MemoryConfig())
    handoff: HandoffConfig = field(default_factory=lambda: HandoffConfig())
    intents_file: str | tuple[str, ...] = "intents.csv"
    extra: dict[str, Any] = field(default_factory=dict)

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

    def tier_for(self, net_spend: float) -> str:
        """Return the relationship tier for a net lifetime spend (currency units)."""
        for tier, minimum in sorted(self.tier_thresholds.items(), key=lambda kv: -kv[1]):
            if net_spend >= minimum:
                return tier
        return "standard"


def _names(value: str | list[str]) -> str | tuple[str, ...]:
    return value if isinstance(value, str) else tuple(str(v) for v in value)


def _handoff_config(raw: dict[str, Any]) -> HandoffConfig:
    return HandoffConfig(
        offer_help_before_human=int(raw.get("offer_help_before_human", 0)),
        billing_dispute_intents=tuple(raw.get("billing_dispute_intents", ())),
        high_value_tiers=tuple(raw.get("high_value_tiers", ("gold",))),
    )


@lru_cache(maxsize=16)
def load_tenant_config(tenant_id: str) -> TenantConfig:
    """Read a tenant pack's configuration.

    Raises:
        NotFoundError: no pack with that id.
    """
    pack = _pack_dir(tenant_id) if tenant_id.isidentifier() else None
    if pack is None:
        raise NotFoundError(f"unknown tenant {tenant_id!r}")
    path = pack / "tenant.yaml"
    raw = yaml.safe_load(path.read_text())
    return TenantConfig(
        tenant_id=tenant_id,
        name=raw["name"],
        auth_methods=tuple(raw["auth_methods"]),
        tier_thresholds={k: float(v) for k, v in raw["tier_thresholds"].items()},
        frustration_escalation=float(raw["frustration_escalation"]),
        intent_min_confidence=float(raw["intent_min_confidence"]),
        pack_dir=pack,
        tier_basis=str(raw.get("tier_basis", "net_spend")),
        clv_margin_rate=float(raw.get("clv", {}).get("margin_rate", 0.25)),
        clv_discount_rate=float(raw.get("clv", {}).get("discount_rate", 0.10)),
        memory=MemoryConfig(**raw.get("memory", {})),
        handoff=_handoff_config(raw.get("handoff", {})),
        intents_file=_names(raw.get("intents_file", "intents.csv")),
        extra={k: v for k, v in raw.items() if k not in _KNOWN},
    )


_KNOWN = {
    "name",
    "auth_methods",
    "tier_thresholds",
    "frustration_escalation",
    "intent_min_confidence",
    "memory",
    "handoff",
    "tier_basis",
    "clv",
    "intents_file",
}


def preload_tenant_configs() -> list[str]:
    """Read every pack's configuration into the cache (so nodes never block on file I/O)."""
    ids = sorted(
        {p.parent.name for root in (*_extra_dirs, PACKS_DIR) for p in root.glob("*/tenant.yaml")}
    )
    for tenant_id in ids:
        load_tenant_config(tenant_id)
    return ids
