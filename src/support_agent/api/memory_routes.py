"""Memory API: ``/api/tenants/me/customers`` (shapes of the customer-memory reference API).

``me`` is the tenant of the bearer API key; a customer id of another tenant answers 404 and never
its data.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from email_validator import validate_email
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from support_agent.api.deps import BUSY, UNAUTHORIZED, SecretTenantDep, ServicesDep, TenantDep
from support_agent.memory_store.erasure import erase_customer
from support_agent.memory_store.identity import link_identity, merge_customers
from support_agent.memory_store.profiles import (
    export_customer,
    get_profile,
    list_customers,
    search_customers,
)

router = APIRouter(prefix="/api/tenants/me", tags=["memory"], responses=UNAUTHORIZED)

CustomerId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@+-]+$")]


#: E.164 (ITU-T): at most 15 digits, no leading zero; 8 at least for a real subscriber number.
_E164 = re.compile(r"\+?[1-9]\d{7,14}")
_TOKEN = re.compile(r"[A-Za-z0-9._@-]{1,100}")


class LinkIdentityRequest(BaseModel):
    """``POST /customers/{id}/identities``: attach another identifier (cross-channel)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["email", "phone", "customer_id", "handle"]
    value: str = Field(min_length=1, max_length=254)
    channel: str | None = Field(default=None, max_length=32, pattern=r"^[a-z_]+$")

    @model_validator(mode="after")
    def _value_fits_kind(self) -> LinkIdentityRequest:
        """The value must be of its kind.

        An email an address (``email-validator``, no DNS lookup), a phone an E.164 number (``+``
        optional, 8–15 digits, separators allowed), an id or a handle one token.
        """
        value = self.value.strip()
        if self.kind == "email":
            validate_email(value, check_deliverability=False)  # raises EmailNotValidError
        elif self.kind == "phone":
            if not _E164.fullmatch(re.sub(r"[\s().-]", "", value)):
                raise ValueError("phone must be an E.164 number, e.g. +15550100000")
        elif not _TOKEN.fullmatch(value):
            raise ValueError(f"{self.kind} must be one token (letters, digits, . _ - @)")
        return self


class MergeRequest(BaseModel):
    """``POST /customers/{id}/merge``: fold another customer record into this one."""

    model_config = ConfigDict(extra="forbid")

    from_customer_id: CustomerId


@router.get("/customers")
async def customers(
    svc: ServicesDep,
    tenant_id: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """List customers, ``limit`` per page, keyset-paginated by ``cursor``."""
    return await list_customers(svc, tenant_id, limit, cursor)


@router.get("/customers/search")
async def search(
    svc: ServicesDep,
    tenant_id: TenantDep,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Customers by partial name, phone or email; 404 NOT_FOUND when nothing matches."""
    return await search_customers(svc, tenant_id, q, limit)


@router.api_route(
    "/customers/search", methods=["DELETE", "POST", "PUT", "PATCH"], include_in_schema=False
)
async def search_other_methods() -> None:
    """``search`` is not a customer id: other methods on it are 405, not a customer's 404."""
    raise StarletteHTTPException(405, headers={"Allow": "GET"})


@router.get("/customers/{customer_id}")
async def profile(customer_id: str, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, Any]:
    """A customer's profile with ``memory``: l1_identity, l2_history, l3_episodes, l4_prefs_mood."""
    return await get_profile(svc, tenant_id, customer_id)


@router.get("/customers/{customer_id}/export")
async def export(
    customer_id: str,
    svc: ServicesDep,
    tenant_id: TenantDep,
    export_format: Annotated[Literal["json"], Query(alias="format")] = "json",
) -> dict[str, Any]:
    """Everything held about the customer; ``format=json`` is the only format."""
    assert export_format == "json"  # any other value is rejected by validation (422)
    return await export_customer(svc, tenant_id, customer_id)


@router.delete("/customers/{customer_id}", responses=BUSY)
async def erase(customer_id: str, svc: ServicesDep, tenant_id: SecretTenantDep) -> dict[str, Any]:
    """Erase the customer everywhere (right to be forgotten); returns what was deleted.

    Only a ``secret`` key may erase (an agent's console key may not).
    """
    return await erase_customer(svc, tenant_id, customer_id)


@router.post("/customers/{customer_id}/identities")
async def link(
    customer_id: str, body: LinkIdentityRequest, svc: ServicesDep, tenant_id: TenantDep
) -> dict[str, Any]:
    """Link an email, phone, account id or channel handle to the customer."""
    return await link_identity(svc, tenant_id, customer_id, body.kind, body.value, body.channel)


@router.post("/customers/{customer_id}/merge")
async def merge(
    customer_id: str, body: MergeRequest, svc: ServicesDep, tenant_id: TenantDep
) -> dict[str, Any]:
    """Merge ``from_customer_id`` into this customer, keeping every layer's history."""
    return await merge_customers(svc, tenant_id, customer_id, body.from_customer_id)
