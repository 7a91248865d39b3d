"""FastAPI dependencies: the agent, its services, the caller's tenant, and visitor ownership.

**Visitor ownership** (#26): a publishable widget key is public (it sits in a web page), so a
session it starts is bound to the visitor who started it. The server issues the session id
(a graph thread's or a ``/v1/chat`` session's) and a random **visitor token**
(:func:`new_visitor_token`: ``vt_`` + 256 random bits), returned once (the ``X-Visitor-Token``
response header and ``visitor_token`` in the body); only its SHA-256 is stored
(``visitor_bindings``, :func:`bind_visitor`). Every later widget call on the session sends the
token back in the ``X-Visitor-Token`` header; without it, or with another visitor's, the session
does not exist for the caller (404 ``NOT_FOUND``, whether it exists or not:
:func:`owned_session`). A session verified by the site's signed customer token is also bound to
that customer: every later run must carry a token of the same customer (:func:`bind_customer`).
Server keys (``secret``, ``agent``) are not bound: they see every session of their tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection

from support_agent.api.ratelimit import RateLimiter, client_address
from support_agent.api.schemas import ErrorBody
from support_agent.conversation import Agent
from support_agent.errors import (
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from support_agent.services import Services
from support_agent.tenancy import Principal, principal_for_key


def get_agent_dep(request: Request) -> Agent:
    """The agent the application's lifespan opened."""
    agent: Agent = request.app.state.agent
    return agent


AgentDep = Annotated[Agent, Depends(get_agent_dep)]


def get_services_dep(agent: AgentDep) -> Services:
    """The agent's services."""
    return agent.services


ServicesDep = Annotated[Services, Depends(get_services_dep)]


#: ``Authorization: Bearer <API key>`` (the scheme name is case-insensitive: ``bearer`` works
#: too); declared in the OpenAPI document as the ``HTTPBearer`` security scheme.
_BEARER = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer sk_…`")


def allowed_origin(services: Services, tenant_id: str, origin: str, own: str) -> bool:
    """Whether a browser page of ``origin`` may use a widget key of ``tenant_id``.

    ``own`` is the API's own origin: its pages (``/widget/demo``) always may.
    """
    origin = origin.rstrip("/")
    return origin == own or origin in services.tenants.get(tenant_id).config.widget.origins


def own_origin(request: Request) -> str:
    """The origin the API was reached at (``scheme://host[:port]``)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def get_limiter(request: Request) -> RateLimiter | None:
    """The application's rate limiter (``None`` before the lifespan or when turned off)."""
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    return limiter


def request_address(request: Request, services: Services) -> str:
    """The client's address behind ``TRUSTED_PROXIES`` (``api.ratelimit.client_address``)."""
    limiter = get_limiter(request)
    if limiter is not None:
        return limiter.client_address(request)
    trusted = services.settings.trusted_proxies
    return client_address(request, [ipaddress.ip_network(str(n), strict=False) for n in trusted])


async def get_principal_dep(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None,
) -> Principal:
    """The caller: a bearer API key's tenant and kind, after counting the request.

    The key comes as ``Authorization: Bearer <key>`` or, as the ``langgraph-sdk`` clients send
    it, ``X-Api-Key: <key>`` (never in the URL). A widget key used from a browser page must come
    from one of its tenant's ``widget.allowed_origins``.

    Counting (``api.ratelimit``): an address over ``AUTH_FAILURE_RATE_LIMIT`` is refused before
    its key is looked up, and a request without a valid key counts against its address; a
    widget key's request counts against its client address (``VISITOR_RATE_LIMIT``) before the
    key's own limit, so a refused request costs the tenant nothing.

    Raises:
        UnauthorizedError: (401 ``UNAUTHORIZED``) no key, another scheme, or an unknown key.
        ForbiddenError: (403 ``FORBIDDEN``) a widget key from an origin its tenant does not allow.
        RateLimitedError: (429 ``RATE_LIMITED``) the address failed authentication too often,
            the widget visitor's address or the key exceeded its limit.
    """
    key = credentials.credentials if credentials is not None else request.headers.get("x-api-key")
    limiter = get_limiter(request)
    address = limiter.client_address(request) if limiter is not None else ""
    if limiter is not None:
        await limiter.check_auth_failures(address)
    try:
        principal = await principal_for_key(services, key)
    except UnauthorizedError:
        if limiter is not None:
            await limiter.auth_failed(address)
        raise
    if limiter is not None and principal.kind == "widget":  # first: a refusal costs no budget
        await limiter.hit_visitor(principal.tenant_id, "address", address)
    origin = request.headers.get("origin")
    if (
        principal.kind == "widget"
        and origin
        and not allowed_origin(services, principal.tenant_id, origin, own_origin(request))
    ):
        raise ForbiddenError("this widget key may not be used from this origin")
    if limiter is not None:
        await limiter.hit(principal.tenant_id, principal.key_hash)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal_dep)]


def get_tenant_dep(principal: PrincipalDep) -> str:
    """The tenant of a server-side key (``secret`` or ``agent``); widget keys are refused.

    Raises:
        ForbiddenError: (403 ``FORBIDDEN``) a publishable widget key.
    """
    return principal.require("secret", "agent")


#: The tenant of a server-side key (the memory API, handoffs, MCP).
TenantDep = Annotated[str, Depends(get_tenant_dep)]


def get_secret_tenant_dep(principal: PrincipalDep) -> str:
    """The tenant of a ``secret`` key (erasure).

    Raises:
        ForbiddenError: (403 ``FORBIDDEN``) an agent or widget key.
    """
    return principal.require("secret")


SecretTenantDep = Annotated[str, Depends(get_secret_tenant_dep)]


def get_chat_tenant_dep(principal: PrincipalDep) -> str:
    """The tenant of any key, widget keys included (chat and the graph endpoint)."""
    return principal.tenant_id


ChatTenantDep = Annotated[str, Depends(get_chat_tenant_dep)]

#: The header a widget visitor's token travels in (issued in the response that starts a
#: session, sent back with every later call on it).
VISITOR_HEADER = "X-Visitor-Token"
_VISITOR_TOKEN = re.compile(r"^vt_[A-Za-z0-9_-]{43}$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")

#: Where a widget session was started: a graph thread (``POST /threads``) or ``/v1/chat``.
Surface = Literal["thread", "chat"]


def new_visitor_token() -> str:
    """A new visitor token: ``vt_`` + 43 URL-safe characters (256 random bits)."""
    return "vt_" + secrets.token_urlsafe(32)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _customer_digest(tenant_id: str, customer_id: str) -> str:
    return _sha256(f"{tenant_id}:{customer_id}")


@dataclass(frozen=True)
class Binding:
    """The owner of a widget session, as the caller proved it.

    Attributes:
        tenant_id: the session's tenant.
        session_id: the session (= graph thread) id.
        surface: ``thread`` or ``chat``: where it was started.
        customer_hash: SHA-256 of ``"{tenant_id}:{customer id}"`` once a run was verified by
            the site's signed customer token, else ``None``.
    """

    tenant_id: str
    session_id: str
    surface: Surface
    customer_hash: str | None


async def bind_visitor(
    conn: AsyncConnection[Any], tenant_id: str, session_id: str, surface: Surface, token: str
) -> None:
    """Bind a new session to the visitor holding ``token`` (only its SHA-256 is stored).

    Args:
        conn: a connection (the caller's transaction, with the thread's row when there is one).
        tenant_id: the widget key's tenant.
        session_id: the server-issued session id.
        surface: ``thread`` or ``chat``.
        token: the visitor token from :func:`new_visitor_token`.

    Raises:
        psycopg.errors.UniqueViolation: the session is bound already (ids are server-issued
            UUIDs: never in practice).
    """
    await conn.execute(
        "INSERT INTO visitor_bindings (tenant_id, session_id, surface, visitor_hash)"
        " VALUES (%s, %s, %s, %s)",
        (tenant_id, session_id, surface, _sha256(token)),
    )


async def owned_session(
    request: Request,
    services: Services,
    principal: Principal,
    session_id: str,
    not_found: str = "session not found",
) -> Binding | None:
    """Check that a widget caller owns the session, and count the request against it.

    A server key owns every session of its tenant (``None``: no binding applies). A widget key
    must send the session's visitor token (``X-Visitor-Token``); the session then counts one
    request against ``SESSION_RATE_LIMIT``.

    Args:
        request: the request (its ``X-Visitor-Token`` header).
        services: the open services.
        principal: the caller.
        session_id: the session (= thread) id from the path or body.
        not_found: the 404 message (``thread not found`` on the graph endpoint).

    Returns:
        The binding for a widget key; ``None`` for a server key.

    Raises:
        NotFoundError: (404) a widget key without the token of this session, with another
            visitor's, or for a session that does not exist (the caller cannot tell which).
        RateLimitedError: (429) the session is over ``SESSION_RATE_LIMIT``.
    """
    if principal.kind != "widget":
        return None
    token = request.headers.get(VISITOR_HEADER, "")
    row = None
    if _VISITOR_TOKEN.match(token) and _SESSION_ID.match(session_id):
        async with services.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT surface, visitor_hash, customer_hash FROM visitor_bindings"
                    " WHERE tenant_id = %s AND session_id = %s",
                    (principal.tenant_id, session_id),
                )
            ).fetchone()
    if row is None or not hmac.compare_digest(row["visitor_hash"], _sha256(token)):
        raise NotFoundError(not_found)
    limiter = get_limiter(request)
    if limiter is not None:
        await limiter.hit_visitor(principal.tenant_id, "session", session_id)
    return Binding(principal.tenant_id, session_id, row["surface"], row["customer_hash"])


async def bind_customer(
    request: Request, services: Services, binding: Binding | None, customer_id: str | None
) -> None:
    """Hold a widget session to the customer its first verified run named.

    The first run carrying a valid customer token binds the session to that customer; every
    later run must carry a token of the same customer, and counts against the customer's
    ``SESSION_RATE_LIMIT``. Nothing applies to server keys (``binding`` is ``None``).

    Args:
        request: the request (for the rate limiter).
        services: the open services.
        binding: the caller's binding from :func:`owned_session`.
        customer_id: the ``sub`` of the run's verified customer token, or ``None``.

    Raises:
        UnauthorizedError: (401) the session is a verified customer's and the run has no token.
        ForbiddenError: (403) the run's token names another customer.
        RateLimitedError: (429) the customer is over ``SESSION_RATE_LIMIT``.
    """
    if binding is None:
        return
    if customer_id is None:
        if binding.customer_hash is not None:
            raise UnauthorizedError(
                "this conversation is a signed-in customer's: send their customer token"
                " (context.customer_token) with every run"
            )
        return
    digest = _customer_digest(binding.tenant_id, customer_id)
    stored = binding.customer_hash
    if stored is None:
        async with services.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "UPDATE visitor_bindings SET customer_hash = COALESCE(customer_hash, %s)"
                    " WHERE tenant_id = %s AND session_id = %s RETURNING customer_hash",
                    (digest, binding.tenant_id, binding.session_id),
                )
            ).fetchone()
        stored = None if row is None else row["customer_hash"]
    if stored is None or not hmac.compare_digest(stored, digest):
        raise ForbiddenError("this conversation belongs to another signed-in customer")
    limiter = get_limiter(request)
    if limiter is not None:
        await limiter.hit_visitor(binding.tenant_id, "customer", digest)


async def forget_visitor(conn: AsyncConnection[Any], tenant_id: str, session_id: str) -> None:
    """Drop a session's binding (its thread was deleted)."""
    await conn.execute(
        "DELETE FROM visitor_bindings WHERE tenant_id = %s AND session_id = %s",
        (tenant_id, session_id),
    )


#: The OpenAPI ``Retry-After`` header of a 409 or 429.
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}

#: The OpenAPI responses of a route behind an API key.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid API key"},
    403: {
        "model": ErrorBody,
        "description": "`FORBIDDEN`: a kind of key this route does not accept (a widget key"
        " outside chat), or a widget key from an origin its tenant does not allow",
    },
    429: {
        "model": ErrorBody,
        "description": "the API key exceeded its tenant's rate limit (see `Retry-After`)",
        "headers": _RETRY_AFTER,
    },
}


#: NUL and lone UTF-16 surrogates: valid in JSON strings, never in text PostgreSQL can store.
_INVALID_TEXT = re.compile(r"[\x00\ud800-\udfff]")


def _invalid_field(value: object, where: str) -> str | None:
    """The dotted path of the first string in ``value`` holding an invalid code point."""
    if isinstance(value, str):
        return where if _INVALID_TEXT.search(value) else None
    if isinstance(value, dict):
        items: list[tuple[object, object]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and _INVALID_TEXT.search(key):
            return f"{where}.{key!r}"
        if (found := _invalid_field(item, f"{where}.{key}")) is not None:
            return found
    return None


#: The OpenAPI response of a route that waits for a session's lock (one turn at a time).
BUSY: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "`TURN_IN_PROGRESS`: another message of the session is still being answered"
        " (see `Retry-After`); on `/v1/chat` also `SESSION_ENDED`",
        "headers": _RETRY_AFTER,
    }
}

#: The largest request body accepted (bytes): a 4,000-character message with identifiers and JSON
#: escaping fits many times over.
MAX_BODY_BYTES = 64 * 1024

#: The OpenAPI responses of a route that takes a JSON body.
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body could not be read"},
    413: {"model": ErrorBody, "description": f"the body is over {MAX_BODY_BYTES} bytes"},
    415: {"model": ErrorBody, "description": "the body is not `application/json`"},
}


def _json_media(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and
                                           media.endswith("+json"))  # fmt: skip


async def check_request_edges(request: Request) -> None:
    """Edge hygiene for every request: size, media type, and text PostgreSQL can store.

    A body over :data:`MAX_BODY_BYTES` or not sent as JSON is refused, and so is a path, query or
    JSON body holding NUL or a lone surrogate (PostgreSQL refuses NUL in ``text``), before
    anything is read or written, with the field named.

    Raises:
        PayloadTooLargeError: (413 ``PAYLOAD_TOO_LARGE``) the body is too large.
        UnsupportedMediaTypeError: (415 ``UNSUPPORTED_MEDIA_TYPE``) a body that is not JSON.
        InvalidRequestError: (422 ``INVALID_REQUEST``) naming the field.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"request body over {MAX_BODY_BYTES} bytes")
    where = _invalid_field(dict(request.path_params), "path") or _invalid_field(
        dict(request.query_params), "query"
    )
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:  # sent without (or with a false) Content-Length
        raise PayloadTooLargeError(f"request body over {MAX_BODY_BYTES} bytes")
    if body and not _json_media(request.headers.get("content-type", "")):
        raise UnsupportedMediaTypeError("send the request body as application/json")
    if where is None and body and (b"\\u" in body or b"\x00" in body):
        try:
            where = _invalid_field(json.loads(body), "body")
        except ValueError:
            where = None  # not JSON: the route's own validation reports it
    if where is not None:
        raise InvalidRequestError(
            f"invalid request: {where}: text must not contain NUL or unpaired surrogates"
        )
