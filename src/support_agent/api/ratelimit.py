"""Rate limits, counted in Redis with the ``limits`` library: per key, per visitor, per address.

Three kinds of counter, all fixed windows (``limits.aio.strategies.FixedWindowRateLimiter``)
shared by every API process on the same Redis, so the limits hold across a scaled-out
deployment:

- **per API key** (the tenant's ceiling): each authenticated request counts against its key
  (named by a prefix of the key's SHA-256, never the key) under its tenant's limit: the pack's
  ``rate_limit`` or ``RATE_LIMIT``, in the ``limits`` notation (``"600/minute"``,
  ``"10/second;600/hour"``);
- **per visitor** (publishable widget keys, which every visitor of a site shares): the client
  address (``VISITOR_RATE_LIMIT``), counted *before* the key's ceiling, so a refused request
  costs the tenant nothing and one visitor's flood cannot use up everybody's budget; then, once
  known, the session and the verified customer (``SESSION_RATE_LIMIT``, each apart);
- **failed authentication** per client address (``AUTH_FAILURE_RATE_LIMIT``): a request with no
  valid key counts once it failed, and an address over the limit is refused before its key is
  looked up in PostgreSQL. The API's routes count in ``api.deps.get_principal_dep``; a mounted
  app that checks keys itself (``/mcp``, the MCP SDK's bearer middleware) is wrapped in
  :class:`AuthFailureGuard`, which counts its 401s in the same counter: one budget per address.

The client address is the socket peer, unless the peer is one of ``TRUSTED_PROXIES``: then it is
the right-most address of ``X-Forwarded-For`` that is not a trusted proxy (:func:`client_address`;
addresses to the left of it are the client's own claims). Counters name addresses, sessions and
customers by a prefix of their SHA-256, never in clear. A request over a limit gets 429
``RATE_LIMITED`` with ``Retry-After`` (whole seconds until the window resets).

When Redis is unavailable requests are let through (logged): the limiter protects capacity and
must not take the service down with the cache.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Literal

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from support_agent.errors import RateLimitedError
from support_agent.services import Services
from support_agent.settings import Settings

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: What a visitor counter counts: a client address, a widget session, a verified customer.
VisitorScope = Literal["address", "session", "customer"]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address (``[::1]`` brackets and an IPv4-mapped IPv6 unwrapped)."""
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(text: str, proxies: Sequence[Network]) -> bool:
    ip = _ip(text)
    return ip is not None and any(ip in net for net in proxies)


def client_address(request: Request, proxies: Sequence[Network]) -> str:
    """The address of the client that sent ``request``.

    Args:
        request: the request.
        proxies: the trusted reverse proxies (``TRUSTED_PROXIES``).

    Returns:
        The socket peer's address when it is not a trusted proxy (or none are configured);
        otherwise the right-most ``X-Forwarded-For`` entry that is not a trusted proxy (the
        left-most entry when every one is). An IP address is normalised (``::ffff:1.2.3.4`` is
        ``1.2.3.4``); anything else is returned as found, at most 64 characters. ``""`` when the
        server does not know the peer.
    """
    peer = request.client.host if request.client else ""
    if not proxies or not _trusted(peer, proxies):
        return _normal(peer)
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return _normal(hop)
    return _normal(hops[0] if hops else peer)


def _normal(address: str) -> str:
    ip = _ip(address)
    return str(ip) if ip is not None else address[:64]


def _name(value: str) -> str:
    """A counter's name for an address, session or customer: 16 hex digits of its SHA-256."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


class RateLimiter:
    """Requests per API key, per visitor and per address of failed authentication.

    Args:
        services: the open services (their Redis connection pool is reused).
        settings: the limits in force (default: the services' settings).
    """

    def __init__(self, services: Services, settings: Settings | None = None) -> None:
        self._services = services
        self._settings = settings = settings or services.settings
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
        self._visitor = {
            "address": parse_many(settings.visitor_rate_limit),
            "session": parse_many(settings.session_rate_limit),
            "customer": parse_many(settings.session_rate_limit),
        }
        self._auth_failures = parse_many(settings.auth_failure_rate_limit)
        self.proxies: list[Network] = [
            ipaddress.ip_network(str(net), strict=False) for net in settings.trusted_proxies
        ]

    def client_address(self, request: Request) -> str:
        """The request's client address behind the trusted proxies (:func:`client_address`)."""
        return client_address(request, self.proxies)

    def limits_for(self, tenant_id: str) -> list[RateLimitItem]:
        """The tenant's limits (its pack's ``rate_limit``, else ``RATE_LIMIT``), parsed once."""
        if tenant_id not in self._limits:
            own = self._services.tenants.config(tenant_id).rate_limit
            self._limits[tenant_id] = parse_many(own or self._settings.rate_limit)
        return self._limits[tenant_id]

    async def _count(self, items: list[RateLimitItem], what: str, *names: str) -> None:
        """Count one request against every item; the first exhausted one raises.

        Raises:
            RateLimitedError: (429) naming ``what`` was exceeded.
        """
        for item in items:
            try:
                allowed = await self._limiter.hit(item, *names)
                if allowed:
                    continue
                reset_at, _ = await self._limiter.get_window_stats(item, *names)
            except (RedisError, StorageError) as exc:
                logger.warning("rate_limit_unavailable", extra={"error": type(exc).__name__})
                return
            raise RateLimitedError(
                f"rate limit exceeded for {what} ({item}); retry later",
                retry_after_s=math.ceil(reset_at - time.time()),
            )

    async def hit(self, tenant_id: str, key_hash: str) -> None:
        """Count one request of an API key against its tenant's limit.

        Args:
            tenant_id: the key's tenant.
            key_hash: the key's SHA-256 hex digest (its first 16 characters name the counter).

        Raises:
            RateLimitedError: (429) a limit of the tenant is exhausted for this key.
        """
        await self._count(self.limits_for(tenant_id), "this API key", tenant_id, key_hash[:16])

    async def hit_visitor(self, tenant_id: str, scope: VisitorScope, who: str) -> None:
        """Count one request of a widget visitor: its address, session or verified customer.

        Args:
            tenant_id: the widget key's tenant.
            scope: ``address`` (``VISITOR_RATE_LIMIT``), ``session`` or ``customer``
                (``SESSION_RATE_LIMIT``).
            who: the client address, session id or customer id (hashed into the counter's name).

        Raises:
            RateLimitedError: (429) the visitor's limit of that scope is exhausted.
        """
        what = {"address": "this client address", "session": "this session",
                "customer": "this customer"}[scope]  # fmt: skip
        await self._count(self._visitor[scope], what, "visitor", tenant_id, scope, _name(who))

    async def check_auth_failures(self, address: str) -> None:
        """Refuse an address that used up its failed authentications (nothing is counted).

        Raises:
            RateLimitedError: (429) the address is over ``AUTH_FAILURE_RATE_LIMIT``.
        """
        name = _name(address)
        for item in self._auth_failures:
            try:
                if await self._limiter.test(item, "authfail", name):
                    continue
                reset_at, _ = await self._limiter.get_window_stats(item, "authfail", name)
            except (RedisError, StorageError) as exc:
                logger.warning("rate_limit_unavailable", extra={"error": type(exc).__name__})
                return
            raise RateLimitedError(
                "too many requests without a valid API key from this address; retry later",
                retry_after_s=math.ceil(reset_at - time.time()),
            )

    async def auth_failed(self, address: str) -> None:
        """Count one failed authentication of an address (over the limit: nothing more)."""
        name = _name(address)
        for item in self._auth_failures:
            try:
                await self._limiter.hit(item, "authfail", name)
            except (RedisError, StorageError) as exc:
                logger.warning("rate_limit_unavailable", extra={"error": type(exc).__name__})
                return


class AuthFailureGuard:
    """ASGI wrapper of a mounted app that authenticates by itself: failed keys count per address.

    The MCP server (``/mcp``) checks bearer keys in the SDK's own middleware, out of reach of
    ``api.deps.get_principal_dep``. Wrapped in this, it follows the same rule as the other routes:
    an address over ``AUTH_FAILURE_RATE_LIMIT`` gets 429 ``RATE_LIMITED`` (with ``Retry-After``)
    before the app runs, so before any key lookup; every 401 the app answers (no key, an unknown
    or revoked one) counts one failure of the address, in the counter the other routes use,
    before the 401 reaches the client. The address is resolved as everywhere else
    (:meth:`RateLimiter.client_address`, behind ``TRUSTED_PROXIES``).

    Args:
        app: the wrapped ASGI app.
        state: the FastAPI app's ``state``; its ``limiter`` (set by the lifespan) is read on each
            request, and nothing is limited while it is absent.
    """

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an address over the limit (429), else run the app, counting its 401s."""
        limiter: RateLimiter | None = getattr(self._state, "limiter", None)
        if scope["type"] != "http" or limiter is None:
            await self.app(scope, receive, send)
            return
        address = limiter.client_address(Request(scope))
        try:
            await limiter.check_auth_failures(address)
        except RateLimitedError as exc:
            body = {"error": {"code": exc.code, "message": exc.message}}
            headers = {"Retry-After": str(exc.retry_after_s)}
            await JSONResponse(body, status_code=exc.status, headers=headers)(scope, receive, send)
            return

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                await limiter.auth_failed(address)
            await send(message)

        await self.app(scope, receive, counting)
