"""The ledger of account actions: one row per idempotency key in ``account_actions``.

Every account action (retail and bank) runs in one transaction that first looks its key up
(:func:`already_done`: a repeated call returns the first result and writes nothing) and last
records its parameters and result (:func:`record_action`), which is also the CRM's record of what
the agent did.
"""

from __future__ import annotations

import json
from typing import Any


async def already_done(conn: Any, tenant_id: str, key: str) -> dict[str, Any] | None:
    """The stored result for ``key``, or ``None`` if the action has not run."""
    row = await (
        await conn.execute(
            "SELECT result FROM account_actions WHERE tenant_id = %s AND idempotency_key = %s",
            (tenant_id, key),
        )
    ).fetchone()
    return None if row is None else dict(row["result"])


async def record_action(
    conn: Any,
    tenant_id: str,
    key: str,
    customer_id: str,
    session_id: str,
    action: str,
    params: dict[str, Any],
    result: dict[str, Any],
) -> None:
    """Record an action's parameters and result under its idempotency key."""
    await conn.execute(
        "INSERT INTO account_actions (tenant_id, idempotency_key, customer_id, interaction_id,"
        " action, params, result) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (tenant_id, key, customer_id, session_id, action, json.dumps(params), json.dumps(result)),
    )
