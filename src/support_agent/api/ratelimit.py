"""Rate limiting per API key, counted in Redis with the ``limits`` library.

Each authenticated request counts against its API key (identified by a prefix of the key's
SHA-256 hash, never the key) under its tenant's limit: the pack's ``rate_limit`` or the
``RATE_LIMIT`` setting, in the ``limits`` notation (``"600/minute"``, ``"10/second;600/hour"``).
Counting is a fixed window per key and limit (``limits.aio.strategies.FixedWindowRateLimiter``):
one Redis counter per window, shared by every API process on the same Redis, so the limit holds
across a scaled-out deployment. A request over the limit gets 429 ``RATE_LIMITED`` with
``Retry-After`` (whole seconds until the window resets).

When Redis is unavailable requests are let through (logged): the limiter protects capacity and
must not take the service down with the cache.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from support_agent.errors import RateLimitedError
from support_agent.services import Services

logger = logging.getLogger(__name__)


class RateLimiter:
    """Requests per API key, per the tenant's limit.

    Args:
        services: the open services (their Redis connection pool is reused).
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        settings = services.settings
        storage: RedisStorage | RedisClusterStorage
        if settings.redis_cluster and settings.redis_url:  # its own cluster client
            node = settings.redis_url.split("://", 1)[1]
            storage = RedisClusterStorage(
                f"async+redis+cluster://{node}", implementation="redispy", key_prefix="sa:ratelimit"
            )
        else:
            storage = RedisStorage(
                "async+redis://localhost:6379",  # placeholder: the client uses the pool below
                implementation="redispy",
                connection_pool=services.redis.connection_pool,  # type: ignore[arg-type]  # documented
                key_prefix="sa:ratelimit",
            )
        self._limiter = FixedWindowRateLimiter(storage)
        self._limits: dict[str, list[RateLimitItem]] = {}

    def limits_for(self, tenant_id: str) -> list[RateLimitItem]:
        """The tenant's limits (its pack's ``rate_limit``, else ``RATE_LIMIT``), parsed once."""
        if tenant_id not in self._limits:
            own = self._services.tenants.config(tenant_id).rate_limit
            self._limits[tenant_id] = parse_many(own or self._services.settings.rate_limit)
        return self._limits[tenant_id]

    async def hit(self, tenant_id: str, key_hash: str) -> None:
        """Count one request of an API key.

        Args:
            tenant_id: the key's tenant.
            key_hash: the key's SHA-256 hex digest (its first 16 characters name the counter).

        Raises:
            RateLimitedError: (429) a limit of the tenant is exhausted for this key.
        """
        who = key_hash[:16]
        for item in self.limits_for(tenant_id):
            try:
                allowed = await self._limiter.hit(item, tenant_id, who)
                if allowed:
                    continue
                reset_at, _ = await self._limiter.get_window_stats(item, tenant_id, who)
            except (RedisError, StorageError) as exc:
                logger.warning("rate_limit_unavailable", extra={"error": type(exc).__name__})
                return
            raise RateLimitedError(
                f"rate limit exceeded for this API key ({item}); retry later",
                retry_after_s=math.ceil(reset_at - time.time()),
            )
