"""FastAPI dependencies: the services opened by the lifespan and the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from support_agent.services import Services
from support_agent.tenancy import tenant_for_key


def get_services_dep(request: Request) -> Services:
    """The services the application's lifespan opened."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services_dep)]


async def get_tenant_dep(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The tenant of the bearer API key (``me``); 401 UNAUTHORIZED without a valid key."""
    return await tenant_for_key(services, authorization)


TenantDep = Annotated[str, Depends(get_tenant_dep)]
