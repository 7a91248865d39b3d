"""Memory API: ``/api/tenants/me/customers`` (shapes of the customer-memory reference API).

``me`` is the tenant of the bearer API key; a customer id of another tenant answers 404 and never
its data.

Staff powers are bounded by the key's kind (``memory_store.identity``): a ``secret`` key links an
identity (200) or merges two customers; an ``agent`` key's link is recorded as a *proposal*
(202, nothing linked) that a ``secret`` key approves or rejects under
``/api/tenants/me/identity-links``; an agent key may not merge (403). The tenant's API keys are
listed and revoked with a ``secret`` key under ``/api/tenants/me/keys`` (``tenancy``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from email_validator import validate_email
from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from support_agent.api.deps import (
    BUSY,
    UNAUTHORIZED,
    PrincipalDep,
    SecretTenantDep,
    ServicesDep,
    TenantDep,
)
from support_agent.api.schemas import ErrorBody
from support_agent.memory_store.erasure import erase_customer
from support_agent.memory_store.identity import (
    approve_link,
    link_identity,
    list_link_proposals,
    merge_customers,
    propose_link,
    reject_link,
)
from support_agent.memory_store.profiles import (
    export_customer,
    get_profile,
    list_customers,
    search_customers,
)
from support_agent.tenancy import PREFIX_LEN, list_api_keys, revoke_api_key

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


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "`CONFLICT`: see the route"},
}


@router.post(
    "/customers/{customer_id}/identities",
    responses={
        202: {"description": "an agent key's proposal, recorded and not linked: a secret key"
              " approves it under `/identity-links`"},
        409: {"model": ErrorBody, "description": "`CONFLICT`: an agent proposed an identity"
              " that is already this customer's"},
    },
)  # fmt: skip
async def link(
    customer_id: str,
    body: LinkIdentityRequest,
    svc: ServicesDep,
    tenant_id: TenantDep,
    principal: PrincipalDep,
) -> Any:
    """Link an email, phone, account id or channel handle to the customer (a secret key).

    With an ``agent`` key the link is only proposed: ``202`` with the pending proposal
    (``{"id", "customerId", "kind", "value", "channel", "status": "pending", "proposedBy",
    "proposedAt", ...}``), which a secret key approves. A secret key links at once: ``200``
    ``{"customer_id", "kind", "linked", "source": "staff"}``. Either way the identity is a
    ``staff`` one: it never authenticates the customer by itself.
    """
    if principal.kind == "agent":
        proposal = await propose_link(
            svc, tenant_id, customer_id, body.kind, body.value, body.channel,
            proposed_by=principal.prefix,
        )  # fmt: skip
        return JSONResponse(proposal, status_code=202)
    principal.require("secret")
    return await link_identity(
        svc, tenant_id, customer_id, body.kind, body.value, body.channel,
        linked_by=principal.prefix,
    )  # fmt: skip


@router.post("/customers/{customer_id}/merge")
async def merge(
    customer_id: str,
    body: MergeRequest,
    svc: ServicesDep,
    tenant_id: SecretTenantDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Merge ``from_customer_id`` into this customer, keeping every layer's history.

    Only a ``secret`` key may merge (an agent key gets 403).
    """
    return await merge_customers(
        svc, tenant_id, customer_id, body.from_customer_id, merged_by=principal.prefix
    )


ProposalId = Annotated[int, Path(ge=1, le=2**62, description="the proposal's id")]


@router.get("/identity-links", tags=["identity"])
async def link_proposals(
    svc: ServicesDep,
    tenant_id: TenantDep,
    status: Annotated[Literal["pending", "approved", "rejected"] | None, Query()] = "pending",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Identity links proposed by agent keys, oldest first (``status`` omitted: pending)."""
    return {"data": await list_link_proposals(svc, tenant_id, status, limit)}


@router.post("/identity-links/{proposal_id}/approve", tags=["identity"], responses=_CONFLICT)
async def approve(
    proposal_id: ProposalId, svc: ServicesDep, tenant_id: SecretTenantDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Approve a pending proposal (a secret key): the identity is linked as a ``staff`` one.

    The link records the proposer (``created_by``), this key (``approved_by``) and the time.
    ``409 CONFLICT`` when the proposal was decided already; ``422`` when the identity has since
    become another customer's (merge instead).
    """
    return await approve_link(svc, tenant_id, proposal_id, approved_by=principal.prefix)


@router.post("/identity-links/{proposal_id}/reject", tags=["identity"], responses=_CONFLICT)
async def reject(
    proposal_id: ProposalId, svc: ServicesDep, tenant_id: SecretTenantDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Reject a pending proposal (a secret key); nothing is linked. ``409`` if decided already."""
    return await reject_link(svc, tenant_id, proposal_id, rejected_by=principal.prefix)


KeyPrefix = Annotated[
    str,
    Path(
        min_length=PREFIX_LEN,
        max_length=PREFIX_LEN,
        pattern=r"^(sa|ak|pk)_[A-Za-z0-9_-]{4}$",
        description="the key's prefix as `GET /keys` lists it (`sa_AbCd`)",
    ),
]


@router.get("/keys", tags=["keys"])
async def keys(svc: ServicesDep, tenant_id: SecretTenantDep) -> dict[str, Any]:
    """The tenant's API keys (a secret key), oldest first, by prefix; never a key or hash.

    ``{"data": [{"prefix", "tenant", "kind", "createdAt", "revokedAt", "revokedBy"}]}``.
    """
    return {"data": await list_api_keys(svc, tenant_id)}


@router.delete(
    "/keys/{prefix}",
    tags=["keys"],
    responses={409: {"model": ErrorBody, "description": "`CONFLICT`: several keys in use share"
                     " the prefix (revoke with the CLI and the whole key)"}},
)  # fmt: skip
async def revoke_key(
    prefix: KeyPrefix, svc: ServicesDep, tenant_id: SecretTenantDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Revoke one of the tenant's keys (a secret key); another tenant's prefix answers 404.

    The key is refused from now on, on every route, and its open streams end within seconds.
    Revoking a revoked key answers it again, unchanged. Returns the key as ``GET /keys`` lists
    it.
    """
    return await revoke_api_key(svc, prefix, tenant_id=tenant_id, revoked_by=principal.prefix)
