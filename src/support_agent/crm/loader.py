"""What every data loader shares: idempotent bulk inserts, identity normalisers, statistics.

The loaders themselves belong to the verticals (``verticals.retail.loader``,
``verticals.bank.loader``). Every insert is ``ON CONFLICT DO NOTHING`` on the natural key, so
loading twice changes nothing, and rows changed since (an order the agent cancelled) are never
reverted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from support_agent.services import Services

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """Rows inserted per table by one load (0 everywhere on a repeated load)."""

    inserted: dict[str, int]

    @property
    def total(self) -> int:
        """Rows inserted across all tables."""
        return sum(self.inserted.values())


def normalize_email(email: str) -> str:
    """Lower-case and strip an email address (the identity key)."""
    return email.strip().lower()


def normalize_phone(phone: str) -> str:
    """Keep digits only, with a leading ``+`` dropped (``+1 (555) 010-0000`` → ``15550100000``)."""
    return "".join(ch for ch in phone if ch.isdigit())


async def insert_rows(
    services: Services, table: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> int:
    """Insert rows with ON CONFLICT DO NOTHING; returns how many were new."""
    if not rows:
        return 0
    placeholders = ", ".join(["%s"] * len(columns))
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
    )
    async with services.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.executemany(sql, rows)
        # psycopg >= 3.1: rowcount after executemany is the sum over all statements.
        return max(cur.rowcount, 0)


async def ensure_tenant(services: Services, tenant_id: str, name: str) -> None:
    """Create the tenant row if missing."""
    async with services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (tenant_id, name),
        )


async def analyze(services: Services, inserted: dict[str, int]) -> None:
    """Refresh the planner statistics of the tables a load filled (``inserted``: rows per table).

    Without them a freshly loaded tenant is planned as if its tables were empty until autovacuum
    catches up.
    """
    tables = [t for t, n in inserted.items() if n > 0]
    if not tables:
        return
    async with services.pool.connection() as conn:
        for table in tables:
            await conn.execute(f"ANALYZE {table}")  # names are this module's own, not input
