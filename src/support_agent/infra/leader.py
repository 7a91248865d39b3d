"""One process per cluster for the background duties: a leader lease on PostgreSQL.

Every API and worker process can run the idle-session sweep and the memory jobs' outbox relay,
but they must run once per cluster, not once per process: N sweepers would end the same sessions
N times (harmless, the end is idempotent, but N times the queries), N relays would publish the
same pending job N times. :class:`LeaderLease` elects one holder per duty name with a
PostgreSQL session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated
connection:

- the holder keeps the lock as long as its connection lives; a process that exits, crashes or
  loses its connection loses the lock at once (PostgreSQL releases a dead session's locks), and
  the next process that asks becomes the holder;
- :meth:`LeaderLease.is_leader` is asked before each run of a duty. A holder checks that its
  connection is still alive (one ``SELECT 1``); the others try the lock (one query).

PostgreSQL, not Redis, because the duties write PostgreSQL and a turn cannot run without it
(same reasoning as :mod:`support_agent.infra.locks`).
"""

from __future__ import annotations

import asyncio
import logging

import psycopg

from support_agent.infra.locks import open_lock_connection

logger = logging.getLogger(__name__)


class LeaderLease:
    """A named lease one process of the cluster holds at a time.

    Args:
        conninfo: libpq URL of the shared database.
        name: the duty's name (e.g. ``"support-agent:background"``); every process asking for
            the same name competes for the same lock.
        connect_timeout_s: how long opening the lease's connection may take (seconds).
    """

    def __init__(self, conninfo: str, name: str, *, connect_timeout_s: float = 2.0) -> None:
        self._conninfo = conninfo
        self.name = name
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._held = False
        self._mutex = asyncio.Lock()

    async def is_leader(self) -> bool:
        """Whether this process holds the lease now (taking it when free).

        Never raises: when PostgreSQL is unreachable the answer is ``False`` (a duty skipped
        for one round), and the connection is reopened on the next call.
        """
        async with self._mutex:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._held = False
                    self._conn = await open_lock_connection(self._conninfo, self._connect_timeout_s)
                if self._held:
                    await self._conn.execute("SELECT 1")  # alive: the session still holds it
                else:
                    cur = await self._conn.execute(
                        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.name,)
                    )
                    row = await cur.fetchone()
                    self._held = bool(row and row[0])
                    if self._held:
                        logger.info("leader_lease_taken", extra={"lease": self.name})
            except psycopg.OperationalError as exc:
                if self._held:
                    logger.warning("leader_lease_lost", extra={"error": type(exc).__name__})
                self._held = False
                if self._conn is not None:
                    await self._conn.close()
                self._conn = None
            return self._held

    async def close(self) -> None:
        """Give the lease up (closing the connection releases the lock)."""
        async with self._mutex:
            self._held = False
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
