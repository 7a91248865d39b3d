"""FastAPI dependencies: the services opened by the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from support_agent.services import Services


def get_services_dep(request: Request) -> Services:
    """The services the application's lifespan opened."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services_dep)]
