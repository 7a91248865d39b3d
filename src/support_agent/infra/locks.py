"""One turn at a time per session, across processes: PostgreSQL advisory locks.

A session's turns, its end and an erasure of its customer each change the same thread (its
checkpoint, its transcript rows, its pending consent). Run concurrently they lose messages (the
checkpoint is last-writer-wins) or let a "yes" and a "no" both take effect. :class:`ThreadLocks`
serializes them:

- **within a process**, an ``asyncio.Lock`` per key queues callers in arrival order;
- **across processes** (several API workers on one database), the holder of the local lock then
  takes a PostgreSQL session-level advisory lock on ``hashtextextended(key, 0)`` through one
  dedicated connection (``pg_try_advisory_lock``, polled with backoff, so one connection serves
  every key and never blocks the others).

A caller that cannot get the lock within ``wait_s`` seconds gets
:class:`~support_agent.errors.TurnInProgressError` (409 ``TURN_IN_PROGRESS`` with ``Retry-After``);
nothing was read or written. PostgreSQL is the lock service on purpose: it is the one dependency a
turn cannot do without (Redis may be down and turns still run). When the lock connection breaks,
PostgreSQL releases its locks; a turn holding one then finishes unfenced, which is the case only
while PostgreSQL itself is failing (its writes fail too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg

from support_agent.errors import InfrastructureError, TurnInProgressError

logger = logging.getLogger(__name__)

_BUSY = "another message of this session is still being answered; retry shortly"

#: Polling interval bounds while another process holds the advisory lock (seconds).
_POLL_MIN_S, _POLL_MAX_S = 0.005, 0.05


async def open_lock_connection(
    conninfo: str, connect_timeout_s: float
) -> psycopg.AsyncConnection[tuple[object, ...]]:
    """A dedicated autocommit connection for session-level advisory locks.

    Used by these locks and the leader lease (:mod:`support_agent.infra.leader`); no prepared
    statements.

    Raises:
        psycopg.OperationalError: PostgreSQL is unreachable.
    """
    return await psycopg.AsyncConnection.connect(
        conninfo,
        autocommit=True,
        prepare_threshold=None,
        connect_timeout=max(1, int(connect_timeout_s)),
    )


@dataclass
class _Local:
    lock: asyncio.Lock
    users: int = 0


class ThreadLocks:
    """Per-key mutual exclusion for this process and every process on the same database.

    Args:
        conninfo: libpq URL of the database whose advisory locks are used.
        wait_s: how long :meth:`hold` waits for a busy key before giving up (seconds).
        connect_timeout_s: how long opening the lock connection may take (seconds).
    """

    def __init__(self, conninfo: str, *, wait_s: float, connect_timeout_s: float = 2.0) -> None:
        self._conninfo = conninfo
        self.wait_s = wait_s
        self._connect_timeout_s = connect_timeout_s
        self._local: dict[str, _Local] = {}
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._connecting = asyncio.Lock()

    async def close(self) -> None:
        """Close the lock connection (PostgreSQL releases any lock still held)."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connection(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        async with self._connecting:
            if self._conn is None or self._conn.closed or self._conn.broken:
                try:
                    self._conn = await open_lock_connection(self._conninfo, self._connect_timeout_s)
                except psycopg.OperationalError as exc:
                    raise InfrastructureError("the database is unavailable; retry shortly") from exc
            return self._conn

    async def _call(self, sql: str, key: str) -> bool:
        conn = await self._connection()
        try:
            row = await (await conn.execute(sql, (key,))).fetchone()
        except psycopg.OperationalError as exc:
            await conn.close()  # the server released whatever this connection held
            raise InfrastructureError("the database is unavailable; retry shortly") from exc
        return bool(row and row[0])

    async def _acquire_remote(self, key: str, deadline: float) -> None:
        pause = _POLL_MIN_S
        while not await self._call("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", key):
            if time.monotonic() + pause > deadline:
                raise TurnInProgressError(_BUSY)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_S)

    async def _release_remote(self, key: str) -> None:
        try:
            await self._call("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", key)
        except InfrastructureError:
            logger.warning("thread_unlock_failed")  # the broken connection released it anyway

    @contextlib.asynccontextmanager
    async def hold(self, *keys: str, wait_s: float | None = None) -> AsyncIterator[None]:
        """Hold the locks of ``keys`` (taken in sorted order, so two holders never deadlock).

        Args:
            keys: lock names, e.g. thread ids ``"{tenant_id}:{session_id}"``.
            wait_s: override of the instance's waiting bound (seconds).

        Raises:
            TurnInProgressError: a key stayed busy for ``wait_s`` seconds (nothing was held).
            InfrastructureError: PostgreSQL is unreachable.
        """
        deadline = time.monotonic() + (self.wait_s if wait_s is None else wait_s)
        async with contextlib.AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self._hold_one(key, deadline))
            yield

    @contextlib.asynccontextmanager
    async def _hold_one(self, key: str, deadline: float) -> AsyncIterator[None]:
        local = self._local.setdefault(key, _Local(asyncio.Lock()))
        local.users += 1
        try:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await local.lock.acquire()
            except TimeoutError as exc:
                raise TurnInProgressError(_BUSY) from exc
            try:
                await self._acquire_remote(key, deadline)
                try:
                    yield
                finally:
                    await self._release_remote(key)
            finally:
                local.lock.release()
        finally:
            local.users -= 1
            if local.users == 0:
                del self._local[key]
