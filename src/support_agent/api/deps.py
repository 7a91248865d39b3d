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
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from support_agent.services import Services
from support_agent.tenancy import hash_key, tenant_for_key


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


async def get_tenant_dep(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None,
) -> str:
    """The tenant of the bearer API key (``me``), after counting the request against its limit.

    Raises:
        UnauthorizedError: (401 ``UNAUTHORIZED``) no key, another scheme, or an unknown key.
        RateLimitedError: (429 ``RATE_LIMITED``) the key exceeded its tenant's rate limit.
    """
    header = None if credentials is None else f"Bearer {credentials.credentials}"
    tenant_id = await tenant_for_key(services, header)
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is not None and credentials is not None:
        await limiter.hit(tenant_id, hash_key(credentials.credentials.strip()))
    return tenant_id


TenantDep = Annotated[str, Depends(get_tenant_dep)]

#: The OpenAPI ``Retry-After`` header of a 409 or 429.
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}

#: The OpenAPI responses of a route behind an API key.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid API key"},
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
