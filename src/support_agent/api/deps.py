"""FastAPI dependencies: the agent opened by the lifespan, its services and the caller's tenant."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from support_agent.api.ratelimit import RateLimiter
from support_agent.api.schemas import ErrorBody
from support_agent.conversation import Agent
from support_agent.errors import (
    ForbiddenError,
    InvalidRequestError,
    PayloadTooLargeError,
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


async def get_principal_dep(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None,
) -> Principal:
    """The caller: a bearer API key's tenant and kind, after counting the request.

    The key comes as ``Authorization: Bearer <key>`` or, as the ``langgraph-sdk`` clients send
    it, ``X-Api-Key: <key>``. A widget key used from a browser page must come from one of its
    tenant's ``widget.allowed_origins``.

    Raises:
        UnauthorizedError: (401 ``UNAUTHORIZED``) no key, another scheme, or an unknown key.
        ForbiddenError: (403 ``FORBIDDEN``) a widget key from an origin its tenant does not allow.
        RateLimitedError: (429 ``RATE_LIMITED``) the key exceeded its tenant's rate limit.
    """
    key = credentials.credentials if credentials is not None else request.headers.get("x-api-key")
    principal = await principal_for_key(services, key)
    origin = request.headers.get("origin")
    if (
        principal.kind == "widget"
        and origin
        and not allowed_origin(services, principal.tenant_id, origin, own_origin(request))
    ):
        raise ForbiddenError("this widget key may not be used from this origin")
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
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
