"""The ledger of account actions and the one helper every account action runs through.

Every write the agent makes on the systems of record (retail and bank, and any vertical of one's
own) is one PostgreSQL transaction shaped by :func:`idempotent`:

1. look the action's idempotency key up in ``account_actions``: if it ran, return its first
   result marked ``"replayed": True`` (with ``"recorded_at"``, ISO 8601) and write nothing (a
   retried turn, or the same change confirmed twice, never acts twice). The key names the
   change itself (:func:`change_key`: session, action, record and the change's arguments), so
   two different changes to one record both run;
2. run the action's body: lock the record it changes (:func:`lock_one`), re-check the rule the
   policy engine applied on a 360 that may be seconds old (:func:`require`), write;
3. record the parameters (with the record the action is about and its label) and the result
   under the key: the CRM's record of what the agent did.

A failing check raises and rolls everything back: nothing is recorded, nothing is changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.services import Services

Conn = AsyncConnection[DictRow]
#: An action's body: given the transaction's connection, returns ``(params, result)``.
ActionBody = Callable[[Conn], Awaitable[tuple[dict[str, Any], dict[str, Any]]]]


@dataclass(frozen=True)
class ActionCall:
    """A confirmed write to carry out: who, in which session, under which idempotency key.

    Attributes:
        tenant_id: the tenant.
        customer_id: the authenticated customer.
        session_id: the session that confirmed it.
        action: the action's name (as declared in ``policy.yaml``).
        key: the change's idempotency key (:func:`change_key`).
        subject_id: the record the action is about (recorded with its parameters).
        label: how the customer calls that record (recorded with its parameters).
    """

    tenant_id: str
    customer_id: str
    session_id: str
    action: str
    key: str
    subject_id: str | None = None
    label: str | None = None


def change_key(
    tenant_id: str, session_id: str, action: str, subject_id: str | None, args: dict[str, Any]
) -> str:
    """The idempotency key of one change: ``{tenant}:{session}:{action}:{subject}:{digest}``.

    ``digest`` is the first 16 hex digits of the SHA-256 of ``args`` as canonical JSON (sorted
    keys): the same change confirmed twice has one key; another address, other items or another
    payment method on the same record has another.
    """
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return f"{tenant_id}:{session_id}:{action}:{subject_id or 'customer'}:{digest}"


async def idempotent(services: Services, call: ActionCall, body: ActionBody) -> dict[str, Any]:
    """Run an account action once per idempotency key (see the module docstring).

    Returns:
        The action's result: this run's, or the first run's with ``"replayed": True`` and
        ``"recorded_at"`` (when it ran, ISO 8601) when the key was seen before (nothing changed
        in this call).

    Raises:
        NotFoundError, InvalidRequestError: raised by ``body`` (the transaction rolls back).
    """
    async with services.pool.connection() as conn, conn.transaction():
        row = await _ledger_row(conn, call.tenant_id, call.key)
        if row is not None:
            return {**row["result"], "replayed": True,
                    "recorded_at": row["created_at"].isoformat()}  # fmt: skip
        params, result = await body(conn)
        params = {**params, "subject_id": call.subject_id, "label": call.label}
        await conn.execute(
            "INSERT INTO account_actions (tenant_id, idempotency_key, customer_id, interaction_id,"
            " action, params, result) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (call.tenant_id, call.key, call.customer_id, call.session_id, call.action,
             json.dumps(params), json.dumps(result)),
        )  # fmt: skip
        return result


async def _ledger_row(conn: Conn, tenant_id: str, key: str) -> DictRow | None:
    """The ledger row (``result``, ``created_at``) of the change with idempotency key ``key``."""
    cur = await conn.execute(
        "SELECT result, created_at FROM account_actions"
        " WHERE tenant_id = %s AND idempotency_key = %s",
        (tenant_id, key),
    )
    return await cur.fetchone()


async def recorded_at(services: Services, tenant_id: str, key: str) -> datetime | None:
    """When the change with idempotency key ``key`` was recorded, or ``None`` if it never ran."""
    async with services.pool.connection() as conn:
        row = await _ledger_row(conn, tenant_id, key)
    return None if row is None else row["created_at"]


def made_by_proposal(recorded: datetime | str | None, proposed_at: str | None) -> bool:
    """Whether a change was made by confirming the proposal, not earlier in the conversation.

    It was if ``recorded`` (when the ledger recorded it) is not before ``proposed_at`` (when the
    proposal was made; the API host's clock, against PostgreSQL's). Both are UTC instants
    (``datetime`` or ISO 8601); ``False`` when either is missing.
    """
    if recorded is None or not proposed_at:
        return False
    when = datetime.fromisoformat(recorded) if isinstance(recorded, str) else recorded
    return when >= datetime.fromisoformat(proposed_at)


async def lock_one(
    conn: Conn, sql: str, params: tuple[Any, ...], *, missing: str
) -> dict[str, Any]:
    """Fetch the one row ``sql`` (a ``SELECT ... FOR UPDATE``) selects.

    Raises:
        NotFoundError: no row (``missing`` is the message, e.g. "order not found for this
            customer").
    """
    row = await (await conn.execute(sql.encode(), params)).fetchone()
    if row is None:
        raise NotFoundError(missing)
    return dict(row)


def require(condition: bool, message: str) -> None:
    """Re-check a rule inside the action's transaction.

    Raises:
        InvalidRequestError: ``condition`` is false (``message`` says why, in the customer's
            terms).
    """
    if not condition:
        raise InvalidRequestError(message)
