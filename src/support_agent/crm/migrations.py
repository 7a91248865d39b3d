"""Schema migrations of the systems of record: ordered ``.sql`` files, applied at start-up.

Each migration is a file ``crm/schema/NNNN_name.sql`` (``NNNN`` its version). :func:`migrate`
applies the missing ones in version order, each in its own transaction (a failing script leaves
the versions before it applied and nothing of itself), under a session-level PostgreSQL advisory
lock so that concurrent starts never race. Running it again changes nothing. Every table is keyed
by ``tenant_id`` first: tenants never share rows.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from importlib import resources

from psycopg import AsyncConnection
from psycopg.rows import DictRow

logger = logging.getLogger(__name__)

#: Arbitrary constant for ``pg_advisory_lock`` (ASCII "sa-mig").
_LOCK_KEY = 0x73612D6D6967
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One schema migration: ``version`` (from the file name), ``name`` and its SQL text."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration file of ``crm/schema``, in version order.

    Raises:
        ValueError: a file in ``crm/schema`` is not named ``NNNN_name.sql``, or two files share a
            version.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files("support_agent.crm").joinpath("schema").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migration files have version {version}")
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(conn: AsyncConnection[DictRow]) -> list[int]:
    """Apply missing migrations in order; idempotent and safe under concurrent starts.

    Args:
        conn: an autocommit connection with ``dict_row`` rows (it holds the advisory lock for the
            duration; each script runs in a transaction of its own).

    Returns:
        The versions applied by this call (empty when the schema is current).

    Raises:
        psycopg.Error: a script failed (its transaction is rolled back; earlier ones stay).
    """
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row["version"] for row in await cur.fetchall()}
        for migration in await asyncio.to_thread(migrations):  # file reads off the event loop
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql.encode(), prepare=False)  # several statements
                await conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,)
                )
            applied.append(migration.version)
            logger.info(
                "schema_migrated", extra={"version": migration.version, "migration": migration.name}
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
