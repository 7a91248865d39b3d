"""Human agents' console: the warm handoff queue (``/api/tenants/me/handoffs``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from support_agent.api.deps import UNAUTHORIZED, ServicesDep, TenantDep
from support_agent.handoff import get_handoff, list_handoffs, resolve_handoff

router = APIRouter(prefix="/api/tenants/me/handoffs", tags=["handoffs"], responses=UNAUTHORIZED)


class ResolveRequest(BaseModel):
    """``POST /handoffs/{id}/resolve``: what the human agent did and how it went."""

    model_config = ConfigDict(extra="forbid")

    resolution: str = Field(min_length=1, max_length=2000)
    satisfaction: int = Field(ge=1, le=5)
    resolution_record_id: str | None = Field(default=None, max_length=100)
    issue_resolved: bool = True


@router.get("")
async def queue(
    svc: ServicesDep,
    tenant_id: TenantDep,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Handoffs of the tenant, oldest first; ``status=open`` is the human agents' queue."""
    return await list_handoffs(svc, tenant_id, status, limit)


@router.get("/{handoff_id}")
async def panel(handoff_id: str, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, Any]:
    """One handoff with its full panel."""
    return await get_handoff(svc, tenant_id, handoff_id)


@router.post("/{handoff_id}/resolve")
async def resolve(
    handoff_id: str, body: ResolveRequest, svc: ServicesDep, tenant_id: TenantDep
) -> dict[str, Any]:
    """Close a handoff; records the outcome in the CRM, memory and resolution effectiveness."""
    return await resolve_handoff(
        svc,
        tenant_id,
        handoff_id,
        resolution=body.resolution,
        satisfaction=body.satisfaction,
        resolution_record_id=body.resolution_record_id,
        issue_resolved=body.issue_resolved,
    )
