"""FastAPI dependencies: the agent opened by the lifespan, its services and the caller's tenant."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from support_agent.api.schemas import ErrorBody
from support_agent.conversation import Agent
from support_agent.errors import InvalidRequestError
from support_agent.services import Services
from support_agent.tenancy import tenant_for_key


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
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None,
) -> str:
    """The tenant of the bearer API key (``me``).

    Raises:
        UnauthorizedError: (401 ``UNAUTHORIZED``) no key, another scheme, or an unknown key.
    """
    header = None if credentials is None else f"Bearer {credentials.credentials}"
    return await tenant_for_key(services, header)


TenantDep = Annotated[str, Depends(get_tenant_dep)]

#: The OpenAPI response of a route behind an API key.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid API key"}
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


async def reject_invalid_text(request: Request) -> None:
    """Reject a request whose path, query or JSON body holds NUL or a lone surrogate.

    Such text cannot be stored (PostgreSQL refuses NUL in ``text``), so it is refused before
    anything is read or written, with the field named.

    Raises:
        InvalidRequestError: (422 ``INVALID_REQUEST``) naming the field.
    """
    where = _invalid_field(dict(request.path_params), "path") or _invalid_field(
        dict(request.query_params), "query"
    )
    body = await request.body()
    if where is None and body and (b"\\u" in body or b"\x00" in body):
        try:
            where = _invalid_field(json.loads(body), "body")
        except ValueError:
            where = None  # not JSON: the route's own validation reports it
    if where is not None:
        raise InvalidRequestError(
            f"invalid request: {where}: text must not contain NUL or unpaired surrogates"
        )
