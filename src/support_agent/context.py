"""Per-run values of the support graph (``context_schema=Context``), read as ``runtime.context``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    """Values fixed for one run (one customer message) of the graph.

    Attributes:
        tenant_id: the tenant whose customers and policy apply; tenants never see each other's
            data.
        channel: the contact channel of this session (``chat``, ``phone``, ``email``, ``app``...).
        session_id: the conversation session; the checkpointed thread id is
            ``"{tenant_id}:{session_id}"``.
    """

    tenant_id: str = "retail"
    channel: str = "chat"
    session_id: str = "studio"
