"""Cross-channel identity: link another identifier to a customer, or merge two customers.

Chat handles, phone numbers, emails and account ids of one person resolve to one customer through
``customer_identities``. When two records turn out to be the same person, :func:`merge_customers`
folds one into the other and keeps every layer's history: identities, orders, payment methods,
interactions, issues, promises and account actions move; L2 counters are added (first contact the
earliest, last interaction the latest); L4 details are united; episodes move to the surviving
customer's namespace.
"""

from __future__ import annotations

import logging
from typing import Any

from support_agent.crm.repository import normalize_identity
from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.memory_store import hot, layers
from support_agent.memory_store.episodes import episodes_namespace
from support_agent.services import Services

logger = logging.getLogger(__name__)


async def link_identity(
    services: Services,
    tenant_id: str,
    customer_id: str,
    kind: str,
    value: str,
    channel: str | None = None,
) -> dict[str, Any]:
    """Attach an identifier to a customer.

    Returns:
        ``{"customer_id", "kind", "linked": bool}`` (``linked`` False: already this customer's).

    Raises:
        NotFoundError: no such customer.
        InvalidRequestError: bad identifier, or it belongs to another customer (merge instead).
    """
    value = normalize_identity(kind, value)
    async with services.pool.connection() as conn, conn.transaction():
        if (
            await (
                await conn.execute(
                    "SELECT 1 FROM customers WHERE tenant_id = %s AND id = %s",
                    (tenant_id, customer_id),
                )
            ).fetchone()
            is None
        ):
            raise NotFoundError("customer not found")
        owner = await (
            await conn.execute(
                "SELECT customer_id FROM customer_identities"
                " WHERE tenant_id = %s AND kind = %s AND value = %s",
                (tenant_id, kind, value),
            )
        ).fetchone()
        if owner is not None and owner["customer_id"] != customer_id:
            raise InvalidRequestError("identity belongs to another customer; merge them instead")
        linked = owner is None
        if linked:
            await conn.execute(
                "INSERT INTO customer_identities (tenant_id, kind, value, customer_id, channel)"
                " VALUES (%s, %s, %s, %s, %s)",
                (tenant_id, kind, value, customer_id, channel),
            )
            await layers.record_identity(
                conn, tenant_id, customer_id,
                phone=value if kind == "phone" else None, channel=channel,
            )  # fmt: skip
    await hot.refresh_hot_memory(services, tenant_id, customer_id)
    return {"customer_id": customer_id, "kind": kind, "linked": linked}


_MOVE = ["customer_identities", "payment_methods", "orders", "interactions", "issues", "promises",
         "memory_jobs", "account_actions"]  # fmt: skip


async def merge_customers(
    services: Services, tenant_id: str, keep_id: str, merge_id: str
) -> dict[str, Any]:
    """Fold customer ``merge_id`` into ``keep_id``; ``merge_id`` no longer exists afterwards.

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
    return {"customer_id": keep_id, "merged": merge_id, "moved": moved, "episodes": episodes}
