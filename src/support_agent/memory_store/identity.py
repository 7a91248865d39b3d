"""Cross-channel identity: link another identifier to a customer, or merge two customers.

Chat handles, phone numbers, emails and account ids of one person resolve to one customer through
``customer_identities``. When two records turn out to be the same person, :func:`merge_customers`
folds one into the other and keeps every layer's history: identities, orders, payment methods,
interactions, issues, promises and account actions move; L2 counters are added (first contact the
earliest, last interaction the latest); L4 claims are united; episodes move to the surviving
customer's namespace.

**Staff powers are bounded.** Only a ``secret`` key links (:func:`link_identity`) or merges; an
``agent`` key may only *propose* a link (:func:`propose_link`), which a ``secret`` key approves
(:func:`approve_link`, which links it) or rejects (:func:`reject_link`). Every identity row says
where it comes from (``customer_identities.source``):

- ``record``: the systems of record (the loaders, and every row older than migration 0014);
- ``staff``: added through the API, with ``created_by`` (the proposing or linking key's prefix),
  ``approved_by`` (the approving secret key's prefix) and ``approved_at``.

A staff identity **never authenticates a customer by itself**: identification must resolve
identifiers through :data:`AUTHENTICATING_SOURCES` only (:func:`find_authenticating_owner`, or
``AND source = ANY(%s)`` with :data:`AUTHENTICATING_SOURCES` in its own query). A staff-linked
phone is not copied onto the customer row either (the contact on file stays the record's).
Keys are named by their prefix (``ak_AbCd``), never by the key or its hash.
"""

from __future__ import annotations

import logging
from typing import Any

from support_agent.crm.customer360 import iso
from support_agent.crm.repository import find_customer_by_identity, normalize_identity
from support_agent.errors import ConflictError, InvalidRequestError, NotFoundError
from support_agent.memory_store import hot, layers
from support_agent.memory_store.episodes import episodes_namespace
from support_agent.services import AsyncConnection, Services

logger = logging.getLogger(__name__)

#: Identity sources that may authenticate a customer (``customer_identities.source``): the
#: systems of record only. A ``staff`` identity was added by a person at the service; it
#: identifies the customer for the staff, never authenticates them by itself.
AUTHENTICATING_SOURCES: tuple[str, ...] = ("record",)
#: The source of every identity added through the API.
STAFF = "staff"


async def find_authenticating_owner(
    services: Services, tenant_id: str, kind: str, value: str
) -> str | None:
    """The customer an identifier of the systems of record belongs to (staff links ignored).

    The lookup identification should use to *authenticate* by an email, phone or account id:
    like ``crm.repository.find_customer_by_identity`` but only over identities whose
    ``source`` is in :data:`AUTHENTICATING_SOURCES`.

    Args:
        services: open services.
        tenant_id: the tenant.
        kind: ``email`` | ``phone`` | ``customer_id`` | ``handle``.
        value: the identifier as given (normalised here the way it is stored).

    Returns:
        The customer id, or ``None`` (no such identity, only a staff-added one, or a value that
        normalises to nothing).
    """
    return await find_customer_by_identity(services, tenant_id, kind, value,
                                           AUTHENTICATING_SOURCES)  # fmt: skip


async def _customer_exists(conn: AsyncConnection, tenant_id: str, customer_id: str) -> None:
    row = await (
        await conn.execute(
            "SELECT 1 FROM customers WHERE tenant_id = %s AND id = %s", (tenant_id, customer_id)
        )
    ).fetchone()
    if row is None:
        raise NotFoundError("customer not found")


async def _owner(conn: AsyncConnection, tenant_id: str, kind: str, value: str) -> str | None:
    row = await (
        await conn.execute(
            "SELECT customer_id FROM customer_identities"
            " WHERE tenant_id = %s AND kind = %s AND value = %s",
            (tenant_id, kind, value),
        )
    ).fetchone()
    return None if row is None else str(row["customer_id"])


async def _link_in(
    conn: AsyncConnection,
    tenant_id: str,
    customer_id: str,
    kind: str,
    value: str,
    channel: str | None,
    *,
    created_by: str,
    approved_by: str,
) -> bool:
    """Insert a staff identity inside the caller's transaction; False if already this customer's.

    Raises:
        NotFoundError: no such customer.
        InvalidRequestError: the identity belongs to another customer (merge instead).
    """
    await _customer_exists(conn, tenant_id, customer_id)
    owner = await _owner(conn, tenant_id, kind, value)
    if owner is not None and owner != customer_id:
        raise InvalidRequestError("identity belongs to another customer; merge them instead")
    if owner is not None:
        return False
    await conn.execute(
        "INSERT INTO customer_identities (tenant_id, kind, value, customer_id, channel, source,"
        " created_by, approved_by, approved_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())",
        (tenant_id, kind, value, customer_id, channel, STAFF, created_by, approved_by),
    )
    # L1 gains the channel; a staff-linked phone is not made the customer's phone on file.
    await layers.record_identity(conn, tenant_id, customer_id, phone=None, channel=channel)
    return True


async def link_identity(
    services: Services,
    tenant_id: str,
    customer_id: str,
    kind: str,
    value: str,
    channel: str | None = None,
    *,
    linked_by: str = "",
) -> dict[str, Any]:
    """Attach an identifier to a customer (a ``secret`` key's act: the route checks the kind).

    The row is a ``staff`` identity made and approved by ``linked_by``.

    Args:
        services: open services.
        tenant_id: the tenant.
        customer_id: the customer.
        kind: ``email`` | ``phone`` | ``customer_id`` | ``handle``.
        value: the identifier (normalised as stored).
        channel: the channel it belongs to, or ``None``.
        linked_by: the linking key's prefix (``sa_AbCd``), recorded as maker and approver.

    Returns:
        ``{"customer_id", "kind", "linked": bool, "source": "staff"}`` (``linked`` False:
        already this customer's).

    Raises:
        NotFoundError: no such customer.
        InvalidRequestError: bad identifier, or it belongs to another customer (merge instead).
    """
    value = normalize_identity(kind, value)
    async with services.pool.connection() as conn, conn.transaction():
        linked = await _link_in(
            conn, tenant_id, customer_id, kind, value, channel,
            created_by=linked_by, approved_by=linked_by,
        )  # fmt: skip
    await hot.refresh_hot_memory(services, tenant_id, customer_id)
    if linked:
        logger.info("identity_linked", extra={"tenant_id": tenant_id, "customer_id": customer_id,
                                              "kind": kind, "by": linked_by})  # fmt: skip
    return {"customer_id": customer_id, "kind": kind, "linked": linked, "source": STAFF}


def _proposal(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "customerId": row["customer_id"],
        "kind": row["kind"],
        "value": row["value"],
        "channel": row["channel"],
        "status": row["status"],
        "proposedBy": row["proposed_by"],
        "proposedAt": iso(row["proposed_at"]),
        "decidedBy": row["decided_by"],
        "decidedAt": iso(row["decided_at"]),
    }


_PROPOSAL_COLUMNS = (
    "SELECT id, customer_id, kind, value, channel, status, proposed_by, proposed_at,"
    " decided_by, decided_at FROM identity_link_proposals"
)


async def propose_link(
    services: Services,
    tenant_id: str,
    customer_id: str,
    kind: str,
    value: str,
    channel: str | None = None,
    *,
    proposed_by: str,
) -> dict[str, Any]:
    """Record an agent's proposal to link an identifier; nothing is linked until approved.

    Proposing the same identifier for the same customer again returns the pending proposal.

    Args:
        services: open services.
        tenant_id: the tenant.
        customer_id: the customer.
        kind: ``email`` | ``phone`` | ``customer_id`` | ``handle``.
        value: the identifier (normalised as stored).
        channel: the channel it belongs to, or ``None``.
        proposed_by: the proposing key's prefix (``ak_AbCd``).

    Returns:
        The proposal: ``{"id", "customerId", "kind", "value", "channel", "status": "pending",
        "proposedBy", "proposedAt", "decidedBy": None, "decidedAt": None}``.

    Raises:
        NotFoundError: no such customer.
        InvalidRequestError: bad identifier, or it belongs to another customer (merge instead).
        ConflictError: it is already this customer's (nothing to approve).
    """
    value = normalize_identity(kind, value)
    async with services.pool.connection() as conn, conn.transaction():
        await _customer_exists(conn, tenant_id, customer_id)
        owner = await _owner(conn, tenant_id, kind, value)
        if owner is not None and owner != customer_id:
            raise InvalidRequestError("identity belongs to another customer; merge them instead")
        if owner is not None:
            raise ConflictError("identity is already this customer's")
        row = await (
            await conn.execute(
                "INSERT INTO identity_link_proposals (tenant_id, customer_id, kind, value,"
                " channel, proposed_by) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, customer_id, kind, value) WHERE status = 'pending'"
                " DO NOTHING RETURNING id",
                (tenant_id, customer_id, kind, value, channel, proposed_by),
            )
        ).fetchone()
        if row is None:  # already proposed and pending
            row = await (
                await conn.execute(
                    "SELECT id FROM identity_link_proposals WHERE tenant_id = %s"
                    " AND customer_id = %s AND kind = %s AND value = %s AND status = 'pending'",
                    (tenant_id, customer_id, kind, value),
                )
            ).fetchone()
        assert row is not None
        proposal = await (
            await conn.execute(
                _PROPOSAL_COLUMNS + " WHERE tenant_id = %s AND id = %s", (tenant_id, row["id"])
            )
        ).fetchone()
    assert proposal is not None
    logger.info("identity_link_proposed", extra={"tenant_id": tenant_id, "customer_id":
                customer_id, "kind": kind, "by": proposed_by})  # fmt: skip
    return _proposal(proposal)


async def list_link_proposals(
    services: Services, tenant_id: str, status: str | None = "pending", limit: int = 50
) -> list[dict[str, Any]]:
    """The tenant's link proposals, oldest first (``status`` ``None``: every status).

    Returns:
        Proposals as :func:`propose_link` returns them, at most ``limit``.
    """
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                _PROPOSAL_COLUMNS + " WHERE tenant_id = %s AND (%s::text IS NULL OR status = %s)"
                " ORDER BY proposed_at, id LIMIT %s",
                (tenant_id, status, status, limit),
            )
        ).fetchall()
    return [_proposal(r) for r in rows]


async def _decide(
    conn: AsyncConnection, tenant_id: str, proposal_id: int, status: str, decided_by: str
) -> dict[str, Any]:
    """Mark a pending proposal decided (row-locked); returns it as it was before.

    Raises:
        NotFoundError: no such proposal in this tenant.
        ConflictError: it was decided already.
    """
    row = await (
        await conn.execute(
            _PROPOSAL_COLUMNS + " WHERE tenant_id = %s AND id = %s FOR UPDATE",
            (tenant_id, proposal_id),
        )
    ).fetchone()
    if row is None:
        raise NotFoundError("identity link proposal not found")
    if row["status"] != "pending":
        raise ConflictError(f"the proposal was {row['status']} already")
    await conn.execute(
        "UPDATE identity_link_proposals SET status = %s, decided_by = %s, decided_at = now()"
        " WHERE tenant_id = %s AND id = %s",
        (status, decided_by, tenant_id, proposal_id),
    )
    return dict(row)


async def approve_link(
    services: Services, tenant_id: str, proposal_id: int, *, approved_by: str
) -> dict[str, Any]:
    """Approve a pending proposal: the identifier is linked (a ``staff`` identity).

    The identity records the proposer as ``created_by`` and the approver as ``approved_by``.

    Returns:
        The proposal with ``status: "approved"``, ``decidedBy``, ``decidedAt``, and ``linked``
        (False when the identifier had meanwhile become this customer's another way).

    Raises:
        NotFoundError: no such proposal in this tenant (or its customer is gone).
        ConflictError: the proposal was decided already.
        InvalidRequestError: the identifier now belongs to another customer (nothing linked;
            the proposal stays pending).
    """
    async with services.pool.connection() as conn, conn.transaction():
        row = await _decide(conn, tenant_id, proposal_id, "approved", approved_by)
        linked = await _link_in(
            conn, tenant_id, row["customer_id"], row["kind"], row["value"], row["channel"],
            created_by=row["proposed_by"], approved_by=approved_by,
        )  # fmt: skip
        decided = await (
            await conn.execute(
                _PROPOSAL_COLUMNS + " WHERE tenant_id = %s AND id = %s", (tenant_id, proposal_id)
            )
        ).fetchone()
    assert decided is not None
    await hot.refresh_hot_memory(services, tenant_id, row["customer_id"])
    logger.info("identity_link_approved", extra={"tenant_id": tenant_id, "customer_id":
                row["customer_id"], "kind": row["kind"], "by": approved_by})  # fmt: skip
    return {**_proposal(decided), "linked": linked}


async def reject_link(
    services: Services, tenant_id: str, proposal_id: int, *, rejected_by: str
) -> dict[str, Any]:
    """Reject a pending proposal; nothing is linked.

    Returns:
        The proposal with ``status: "rejected"``, ``decidedBy``, ``decidedAt``.

    Raises:
        NotFoundError: no such proposal in this tenant.
        ConflictError: the proposal was decided already.
    """
    async with services.pool.connection() as conn, conn.transaction():
        await _decide(conn, tenant_id, proposal_id, "rejected", rejected_by)
        decided = await (
            await conn.execute(
                _PROPOSAL_COLUMNS + " WHERE tenant_id = %s AND id = %s", (tenant_id, proposal_id)
            )
        ).fetchone()
    assert decided is not None
    return _proposal(decided)


_MOVE = ["customer_identities", "payment_methods", "orders", "interactions", "issues", "promises",
         "memory_jobs", "account_actions"]  # fmt: skip


async def merge_customers(
    services: Services, tenant_id: str, keep_id: str, merge_id: str, *, merged_by: str = ""
) -> dict[str, Any]:
    """Fold customer ``merge_id`` into ``keep_id``; ``merge_id`` no longer exists afterwards.

    A ``secret`` key's act (the route checks the kind); ``merged_by`` (its prefix) is logged.
    Identities keep their source; the merged customer's pending link proposals go with it.

    Returns:
        ``{"customer_id": keep_id, "merged": merge_id, "moved": {table: rows}, "episodes": n}``.

    Raises:
        InvalidRequestError: the two ids are the same.
        NotFoundError: either customer does not exist in this tenant.
    """
    if keep_id == merge_id:
        raise InvalidRequestError("cannot merge a customer into itself")
    moved: dict[str, int] = {}
    p = {"t": tenant_id, "k": keep_id, "m": merge_id}
    async with services.pool.connection() as conn, conn.transaction():
        found = await (
            await conn.execute(
                "SELECT id FROM customers WHERE tenant_id = %(t)s AND id IN (%(k)s, %(m)s)"
                " FOR UPDATE",
                p,
            )
        ).fetchall()
        if len(found) != 2:
            raise NotFoundError("customer not found")
        for table in _MOVE:
            cur = await conn.execute(
                f"UPDATE {table} SET customer_id = %(k)s"
                " WHERE tenant_id = %(t)s AND customer_id = %(m)s",
                p,
            )
            moved[table] = cur.rowcount
        await layers.merge_layers(conn, tenant_id, keep_id, merge_id)
        await conn.execute(
            "DELETE FROM customers WHERE tenant_id = %(t)s AND id = %(m)s", p
        )  # cascades the merged customer's memory_history / memory_prefs rows
    episodes = 0
    source = episodes_namespace(tenant_id, merge_id)
    while True:
        items = await services.store.asearch(source, limit=100)
        if not items:
            break
        for item in items:
            await services.store.aput(episodes_namespace(tenant_id, keep_id), item.key, item.value)
            await services.store.adelete(source, item.key)
        episodes += len(items)
    await hot.drop_customer(services, tenant_id, merge_id)
    await hot.refresh_hot_memory(services, tenant_id, keep_id)
    logger.info("customers_merged", extra={"tenant_id": tenant_id, "customer_id": keep_id,
                                           "merged": merge_id, "by": merged_by})  # fmt: skip
    return {"customer_id": keep_id, "merged": merge_id, "moved": moved, "episodes": episodes}
