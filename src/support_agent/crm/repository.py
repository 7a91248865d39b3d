"""Reads and writes on the systems of record used by the graph's nodes.

Every function is scoped by ``tenant_id``; nothing here can read or change another tenant's rows.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from support_agent.crm.loader import normalize_email, normalize_phone
from support_agent.errors import InvalidRequestError
from support_agent.services import AsyncConnection, Services
from support_agent.state import Issue, PolicyDecision

IDENTITY_KINDS = ("email", "phone", "customer_id", "handle")


def normalize_identity(kind: str, value: str) -> str:
    """Normalise an identifier the way it is stored and looked up.

    Emails are lower-cased, phones reduced to digits, account ids lower-cased, handles stripped.

    Raises:
        InvalidRequestError: unknown kind, or a value that normalises to nothing.
    """
    if kind not in IDENTITY_KINDS:
        raise InvalidRequestError(f"kind must be one of {', '.join(IDENTITY_KINDS)}")
    value = value.strip()
    if kind == "email":
        value = normalize_email(value)
    elif kind == "phone":
        value = normalize_phone(value)
    elif kind == "customer_id":
        value = value.lower()
    if not value:
        raise InvalidRequestError("identity value must not be empty")
    return value


async def find_customer_by_identity(
    services: Services,
    tenant_id: str,
    kind: str,
    value: str,
    sources: tuple[str, ...] | None = None,
) -> str | None:
    """Resolve an identity (``email``, ``phone``, ``customer_id`` or ``handle``) to a customer id.

    Values are normalised the way they were stored (:func:`normalize_identity`). Returns ``None``
    when no customer has that identity (or the value normalises to nothing).

    Args:
        services: open services.
        tenant_id: the tenant.
        kind: the identity's kind.
        value: the identifier as given.
        sources: only identities of these sources (``record``, ``staff``); ``None``: any.
    """
    try:
        value = normalize_identity(kind, value)
    except InvalidRequestError:
        return None
    only = None if sources is None else list(sources)
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT customer_id FROM customer_identities"
                " WHERE tenant_id = %s AND kind = %s AND value = %s"
                " AND (%s::text[] IS NULL OR source = ANY(%s::text[]))",
                (tenant_id, kind, value, only, only),
            )
        ).fetchone()
    return None if row is None else str(row["customer_id"])


async def customer_zip(services: Services, tenant_id: str, customer_id: str) -> str | None:
    """The zip code on file for a customer (``None``: no such customer or no zip)."""
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT zip FROM customers WHERE tenant_id = %s AND id = %s",
                (tenant_id, customer_id),
            )
        ).fetchone()
    return None if row is None else row["zip"]


async def find_customers_by_name_zip(
    services: Services,
    tenant_id: str,
    zip_code: str,
    first_name: str | None,
    last_name: str | None,
    text: str | None = None,
) -> list[str]:
    """Customers with this zip code whose name matches.

    Either ``first_name`` and ``last_name`` are given, or ``text`` is searched for each candidate's
    full name (case-insensitive, word-bounded). Returns every match: the caller decides what
    several matches mean (they never guess).
    """
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, first_name, last_name FROM customers WHERE tenant_id = %s AND zip = %s",
                (tenant_id, zip_code.strip()),
            )
        ).fetchall()
    hits = []
    lowered = f" {' '.join((text or '').lower().split())} "
    for row in rows:
        first, last = row["first_name"].lower(), row["last_name"].lower()
        if first_name is not None and last_name is not None:
            if first_name.strip().lower() == first and last_name.strip().lower() == last:
                hits.append(row["id"])
        elif f" {first} {last}" in lowered.replace(",", " ").replace(".", " "):
            hits.append(row["id"])
    return hits


#: Create the session's interaction row or bump its last activity, customer and intent.
_TOUCH = (
    "INSERT INTO interactions (tenant_id, id, customer_id, channel, intent, awaiting_consent)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (tenant_id, id) DO UPDATE SET last_activity_at = now(),"
    " customer_id = COALESCE(interactions.customer_id, EXCLUDED.customer_id),"
    " intent = COALESCE(EXCLUDED.intent, interactions.intent),"
    " awaiting_consent = EXCLUDED.awaiting_consent"
)
#: Append messages to a session's transcript, numbering them after the last one.
_APPEND = (
    "INSERT INTO messages (tenant_id, interaction_id, seq, role, content, intent)"
    " SELECT %(t)s, %(s)s, last.seq + m.n, m.role, m.content, m.intent"
    " FROM (SELECT COALESCE(max(seq), -1) AS seq FROM messages"
    "       WHERE tenant_id = %(t)s AND interaction_id = %(s)s) AS last,"
    " unnest(%(roles)s::text[], %(contents)s::text[], %(intents)s::text[])"
    "   WITH ORDINALITY AS m(role, content, intent, n)"
)


async def record_turn(
    services: Services,
    tenant_id: str,
    session_id: str,
    channel: str,
    customer_id: str | None,
    intent: str | None,
    messages: list[tuple[str, str, str | None]],
    *,
    awaiting_consent: bool = False,
) -> None:
    """Record one turn in the CRM, in one round trip (both statements in one pipeline).

    The session's interaction row is created, or its last activity, customer and intent bumped;
    the turn's ``(role, content, intent)`` messages are appended to its transcript in order (the
    insert computes their sequence numbers itself). ``awaiting_consent`` records that the turn
    proposed a write (for the CRM's readers; the next turn reads the checkpoint's interrupt,
    which a crash cannot leave apart from the turn).
    """
    roles, contents, intents = (list(col) for col in zip(*messages, strict=True))
    async with services.pool.connection() as conn, conn.pipeline():
        await conn.execute(
            _TOUCH, (tenant_id, session_id, customer_id, channel, intent, awaiting_consent)
        )
        await conn.execute(_APPEND, {"t": tenant_id, "s": session_id, "roles": roles,
                                     "contents": contents, "intents": intents})  # fmt: skip


async def get_interaction(
    services: Services, tenant_id: str, session_id: str
) -> dict[str, Any] | None:
    """The session's interaction row, or ``None``."""
    async with services.pool.connection() as conn:
        return await (
            await conn.execute(
                "SELECT * FROM interactions WHERE tenant_id = %s AND id = %s",
                (tenant_id, session_id),
            )
        ).fetchone()


async def end_interaction(
    conn: AsyncConnection,
    tenant_id: str,
    session_id: str,
    *,
    reason: str,
    outcome: str,
    sentiment: float | None,
) -> bool:
    """Mark a session ended with its outcome; returns False if it was already ended.

    Runs on the caller's connection so the end and its memory job commit together (ending a
    session is all-or-nothing). The interaction's summary is filled in by the memory pipeline.
    """
    cur = await conn.execute(
        "UPDATE interactions SET status = 'ended', ended_at = now(), end_reason = %s,"
        " outcome = %s, sentiment = %s"
        " WHERE tenant_id = %s AND id = %s AND status = 'open'",
        (reason, outcome, sentiment, tenant_id, session_id),
    )
    return cur.rowcount == 1


async def idle_sessions(
    services: Services, idle_before: datetime, only: list[str] | None = None
) -> list[tuple[str, str]]:
    """``(tenant_id, session_id)`` of open sessions with no activity since ``idle_before``.

    ``only`` restricts the answer to those session ids (a demo simulating time ends its own).
    """
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT tenant_id, id FROM interactions"
                " WHERE status = 'open' AND last_activity_at < %s"
                " AND (%s::text[] IS NULL OR id = ANY(%s::text[])) ORDER BY last_activity_at",
                (idle_before, only, only),
            )
        ).fetchall()
    return [(r["tenant_id"], r["id"]) for r in rows]


_ISSUE_COLUMNS = ("id", "customer_id", "order_id", "item_ids", "kind", "description",
                  "proposed_actions", "status", "opened_in", "subject_kind", "subject_id",
                  "subject_label")  # fmt: skip


async def upsert_issue(services: Services, tenant_id: str, issue: Issue) -> None:
    """Insert an issue, or update its items, proposals and status.

    Args:
        services: open services.
        tenant_id: the issue's tenant.
        issue: ``{id, customer_id, subject_kind, subject_id, subject_label, kind, description,
            proposed_actions, opened_in, status}`` and, for retail, ``order_id`` and
            ``item_ids`` (other keys, such as the episode it was loaded with, are not stored).
    """
    row: dict[str, Any] = {k: issue.get(k) for k in _ISSUE_COLUMNS}
    row.update(
        status=row["status"] or "open",
        item_ids=row["item_ids"] or [],
        proposed_actions=row["proposed_actions"] or [],
    )
    async with services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO issues (tenant_id, id, customer_id, order_id, item_ids, kind,"
            " description, proposed_actions, status, opened_in, subject_kind, subject_id,"
            " subject_label) VALUES (%(t)s, %(id)s, %(customer_id)s, %(order_id)s, %(item_ids)s,"
            " %(kind)s, %(description)s, %(proposed_actions)s, %(status)s, %(opened_in)s,"
            " %(subject_kind)s, %(subject_id)s, %(subject_label)s)"
            " ON CONFLICT (tenant_id, id) DO UPDATE SET"
            " item_ids = EXCLUDED.item_ids, proposed_actions = EXCLUDED.proposed_actions,"
            " status = EXCLUDED.status, updated_at = now()",
            {"t": tenant_id, **row},
        )


async def count_issue_contact(services: Services, tenant_id: str, issue_id: str) -> None:
    """One more session contacted us about an open issue."""
    async with services.pool.connection() as conn:
        await conn.execute(
            "UPDATE issues SET contacts = contacts + 1, updated_at = now()"
            " WHERE tenant_id = %s AND id = %s",
            (tenant_id, issue_id),
        )


async def record_policy_audit(
    services: Services, tenant_id: str, session_id: str, turn: int, decision: PolicyDecision
) -> None:
    """Store a policy decision ``{action, outcome, reason, rules}`` in the audit trail."""
    async with services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO policy_audit (tenant_id, interaction_id, turn, action, outcome, reason,"
            " rules) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                tenant_id,
                session_id,
                turn,
                decision.get("action"),
                decision.get("outcome"),
                decision.get("reason"),
                json.dumps(decision.get("rules", [])),
            ),
        )


async def executed_actions(
    services: Services, tenant_id: str, session_id: str
) -> list[dict[str, Any]]:
    """The account actions done in a session, in order.

    Returns:
        ``[{"action", "subject_id", "label", ...result}]``.
    """
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT action, params, result FROM account_actions"
                " WHERE tenant_id = %s AND interaction_id = %s ORDER BY created_at",
                (tenant_id, session_id),
            )
        ).fetchall()
    return [
        {"action": r["action"], "subject_id": (r["params"] or {}).get("subject_id"),
         "label": (r["params"] or {}).get("label"), **r["result"]}
        for r in rows
    ]  # fmt: skip
