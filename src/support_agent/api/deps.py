"""FastAPI dependencies: the agent opened by the lifespan, its services and the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from support_agent.conversation import Agent
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


async def get_tenant_dep(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The tenant of the bearer API key (``me``); 401 UNAUTHORIZED without a valid key."""
    return await tenant_for_key(services, authorization)


TenantDep = Annotated[str, Depends(get_tenant_dep)]
