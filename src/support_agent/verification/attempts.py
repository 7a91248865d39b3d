"""The verification audit: every attempt recorded, and the failures that lock verification.

One row per attempt in ``verification_attempts``: the customer when the facts pointed at one (never
the facts' values), the kinds of facts tried, the channel, the result (``verified``, ``failed``,
``locked``, ``code_sent``) and the client as a keyed hash (never the address itself). Rows are
shown on the human agent's panel, exported and erased with the customer.

Failures are counted per session (in the checkpointed state), per customer and per client address
(here, over the last hour): over a tenant's limits (``VerificationPolicy.max_failures``,
``customer_max_failures``, ``client_max_failures``) the session cannot verify in conversation.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from support_agent.services import Services

Result = Literal["verified", "failed", "locked", "code_sent"]


def client_key(tenant_id: str, client: str | None) -> str | None:
    """A client address as stored: the first 16 hex digits of SHA-256 over tenant and address."""
    if not client:
        return None
    return hashlib.sha256(f"{tenant_id}\x00{client}".encode()).hexdigest()[:16]


async def record_attempt(
    services: Services,
    tenant_id: str,
    session_id: str,
    channel: str,
    *,
    customer_id: str | None,
    factors: list[str],
    result: Result,
    client: str | None,
) -> None:
    """Record one attempt (the fact kinds, never their values)."""
    async with services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO verification_attempts (tenant_id, session_id, customer_id, factors,"
            " channel, result, client) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (tenant_id, session_id, customer_id, sorted(set(factors)), channel, result,
             client_key(tenant_id, client)),
        )  # fmt: skip


async def recent_failures(
    services: Services, tenant_id: str, *, customer_id: str | None, client: str | None
) -> tuple[int, int]:
    """Failed attempts in the last hour against a customer and from a client address.

    Returns:
        ``(against the customer, from the client)``; 0 where the one or the other is unknown.
    """
    key = client_key(tenant_id, client)
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) FILTER (WHERE customer_id = %(c)s) AS by_customer,"
                " count(*) FILTER (WHERE client = %(k)s) AS by_client"
                " FROM verification_attempts WHERE tenant_id = %(t)s AND result = 'failed'"
                " AND created_at > now() - interval '1 hour'"
                " AND (customer_id = %(c)s OR client = %(k)s)",
                {"t": tenant_id, "c": customer_id, "k": key},
            )
        ).fetchone()
    if row is None:
        return 0, 0
    return int(row["by_customer"] or 0), int(row["by_client"] or 0)


async def attempts_of(
    services: Services,
    tenant_id: str,
    customer_id: str | None,
    session_id: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The latest attempts against a customer or in a session, newest first.

    Shown on the human agent's panel (``handoff.get_handoff``).

    Returns:
        ``[{"at": ISO time, "session_id", "channel", "factors": [...], "result"}]``.
    """
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT created_at, session_id, channel, factors, result"
                " FROM verification_attempts WHERE tenant_id = %s"
                " AND (customer_id = %s OR session_id = %s)"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (tenant_id, customer_id, session_id, limit),
            )
        ).fetchall()
    return [
        {"at": r["created_at"].isoformat(), "session_id": r["session_id"],
         "channel": r["channel"], "factors": list(r["factors"]), "result": r["result"]}
        for r in rows
    ]  # fmt: skip
