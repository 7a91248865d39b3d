"""Erasure (right to be forgotten): remove a customer from every place the service keeps data.

Order matters: queued work first (so no job recreates memory), then Redis, the long-term store,
checkpoints, and finally every PostgreSQL row in one transaction; Redis keys are swept again at
the end in case a concurrent turn re-warmed them.

Places: PostgreSQL rows (customer, identities, payment methods, orders with items, fulfillments
and payments, interactions with messages and policy audit records, issues, promises, account
actions, memory layers, memory jobs, handoffs), store items and their vectors (namespace
``("tenant", t, "customer", c)``; vectors cascade), the checkpoints of every thread of the
customer's sessions, Redis keys ``sa:{t:c}:*`` (and older ``sa:t:*:c``), and entries naming
the customer in the memory job stream and its dead-letter stream.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from support_agent.errors import InfrastructureError, NotFoundError
from support_agent.memory_store.hot import customer_keys
from support_agent.memory_store.pipeline import DEAD_LETTER, GROUP, STREAM
from support_agent.services import Services
from support_agent.threads import thread_id

logger = logging.getLogger(__name__)

# (table, WHERE clause) in deletion order; %(t)s tenant, %(c)s customer, %(s)s session ids.
_PG_DELETES: list[tuple[str, str]] = [
    ("memory_jobs", "tenant_id = %(t)s AND customer_id = %(c)s"),
    # verification (#26): codes and the attempts that pointed at the customer or their sessions
    ("verification_codes",
     "tenant_id = %(t)s AND (customer_id = %(c)s OR session_id = ANY(%(s)s))"),
    ("verification_attempts",
     "tenant_id = %(t)s AND (customer_id = %(c)s OR session_id = ANY(%(s)s))"),
    ("handoffs", "tenant_id = %(t)s AND (customer_id = %(c)s OR session_id = ANY(%(s)s))"),
    ("messages", "tenant_id = %(t)s AND interaction_id = ANY(%(s)s)"),
    # the graph endpoint's threads of these sessions (client metadata; their runs cascade)
    ("graph_threads", "tenant_id = %(t)s AND thread_id = ANY(%(s)s)"),
    ("policy_audit", "tenant_id = %(t)s AND interaction_id = ANY(%(s)s)"),
    ("account_actions",
     "tenant_id = %(t)s AND (customer_id = %(c)s OR interaction_id = ANY(%(s)s))"),
    ("interactions", "tenant_id = %(t)s AND (customer_id = %(c)s OR id = ANY(%(s)s))"),
    ("promises", "tenant_id = %(t)s AND customer_id = %(c)s"),
    ("issues", "tenant_id = %(t)s AND customer_id = %(c)s"),
    ("memory_history", "tenant_id = %(t)s AND customer_id = %(c)s"),
    ("memory_prefs", "tenant_id = %(t)s AND customer_id = %(c)s"),
    ("customer_identities", "tenant_id = %(t)s AND customer_id = %(c)s"),
    ("payment_methods", "tenant_id = %(t)s AND customer_id = %(c)s"),
    ("payments", "tenant_id = %(t)s AND order_id IN (SELECT id FROM orders"
     " WHERE tenant_id = %(t)s AND customer_id = %(c)s)"),
    ("order_fulfillments", "tenant_id = %(t)s AND order_id IN (SELECT id FROM orders"
     " WHERE tenant_id = %(t)s AND customer_id = %(c)s)"),
    ("order_items", "tenant_id = %(t)s AND order_id IN (SELECT id FROM orders"
     " WHERE tenant_id = %(t)s AND customer_id = %(c)s)"),
    ("orders", "tenant_id = %(t)s AND customer_id = %(c)s"),
    ("customers", "tenant_id = %(t)s AND id = %(c)s"),
]  # fmt: skip


async def _redis_sweep(services: Services, tenant_id: str, customer_id: str) -> dict[str, int]:
    rds = services.redis
    deleted_keys = int(await rds.delete(*customer_keys(tenant_id, customer_id)))
    # keys written before the hash-tagged names (``sa:{t}:c360:{c}``…), until their TTL ends
    legacy = [k async for k in rds.scan_iter(match=f"sa:{tenant_id}:*:{customer_id}", count=500)]
    for key in legacy:  # one by one: on Redis Cluster they lie in different slots
        deleted_keys += int(await rds.delete(key))
    entries = 0
    for stream in (STREAM, DEAD_LETTER):
        doomed = []
        last = "-"
        while True:
            batch: Any = await rds.xrange(stream, min=last, max="+", count=500)
            if not batch:
                break
            for msg_id, fields in batch:
                if (
                    fields.get(b"tenant") == tenant_id.encode()
                    and fields.get(b"customer") == customer_id.encode()
                ):
                    doomed.append(msg_id)
            if len(batch) < 500:
                break
            last = "(" + (
                batch[-1][0].decode() if isinstance(batch[-1][0], bytes) else batch[-1][0]
            )
        if doomed:
            if stream == STREAM:  # acknowledged too, so no worker keeps reclaiming a deleted entry
                await rds.xack(stream, GROUP, *doomed)
            entries += int(await rds.xdel(stream, *doomed))
    return {"redis_keys": int(deleted_keys), "queued_jobs": entries}


async def erase_customer(services: Services, tenant_id: str, customer_id: str) -> dict[str, Any]:
    """Delete everything about one customer of one tenant.

    Returns:
        ``{"customer_id", "deleted": {place: count}}``.

    Waits for the customer's in-flight turns and session ends to finish (their session locks),
    then deletes; a message of such a session arriving later finds no session (404 / a new one).

    Raises:
        NotFoundError: no such customer in this tenant (nothing is deleted).
        TurnInProgressError: a session of the customer stayed busy for ``TURN_LOCK_WAIT_S``.
        InfrastructureError: Redis is unavailable (nothing in PostgreSQL is deleted, so the
            erasure can be retried safely).
    """
    sessions = await _sessions(services, tenant_id, customer_id)
    # Wait for (never interleave with) in-flight turns and session ends of this customer: a turn
    # that finished after the deletes would write its checkpoint and transcript back.
    async with services.locks.hold(*(thread_id(tenant_id, s) for s in sessions)):
        return await _erase_locked(services, tenant_id, customer_id)


async def _sessions(services: Services, tenant_id: str, customer_id: str) -> list[str]:
    """The customer's session ids (interactions and memory jobs).

    Raises:
        NotFoundError: no such customer in this tenant.
    """
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT 1 FROM customers WHERE tenant_id = %s AND id = %s", (tenant_id, customer_id)
            )
        ).fetchone()
        if row is None:
            raise NotFoundError("customer not found")
        return [
            r["id"]
            for r in await (
                await conn.execute(
                    "SELECT id FROM interactions WHERE tenant_id = %s AND customer_id = %s"
                    " UNION SELECT session_id FROM memory_jobs"
                    " WHERE tenant_id = %s AND customer_id = %s",
                    (tenant_id, customer_id, tenant_id, customer_id),
                )
            ).fetchall()
        ]


async def _erase_locked(services: Services, tenant_id: str, customer_id: str) -> dict[str, Any]:
    """``erase_customer`` once the locks of the customer's sessions are held."""
    sessions = await _sessions(services, tenant_id, customer_id)  # as of now, under the locks
    try:
        deleted: dict[str, int] = await _redis_sweep(services, tenant_id, customer_id)
    except RedisError as exc:
        raise InfrastructureError("Redis is unavailable; erasure not started") from exc

    namespace = ("tenant", tenant_id, "customer", customer_id)
    store_items = 0
    while True:
        items = await services.store.asearch(namespace, limit=100)
        if not items:
            break
        for item in items:
            await services.store.adelete(item.namespace, item.key)
        store_items += len(items)
    deleted["store_items"] = store_items

    for session_id in sessions:
        await services.checkpointer.adelete_thread(thread_id(tenant_id, session_id))
    deleted["checkpoint_threads"] = len(sessions)

    params = {"t": tenant_id, "c": customer_id, "s": sessions}
    async with services.pool.connection() as conn, conn.transaction():
        for table, where in _PG_DELETES:
            cur = await conn.execute(f"DELETE FROM {table} WHERE {where}", params)
            deleted[table] = cur.rowcount

    again = await _redis_sweep(services, tenant_id, customer_id)
    deleted["redis_keys"] += again["redis_keys"]
    deleted["queued_jobs"] += again["queued_jobs"]
    logger.info("customer_erased", extra={"tenant_id": tenant_id, "rows": sum(deleted.values())})
    return {"customer_id": customer_id, "deleted": deleted}
