"""Tenants and their API keys.

A key is a kind prefix + 43 URL-safe characters (256 random bits from :mod:`secrets`). Only its
SHA-256 hash is stored (``api_keys.key_hash``): with 256-bit random keys a fast hash is enough, a
slow password hash adds nothing. The key's tenant is ``me`` in ``/api/tenants/me/...`` and the
tenant of ``/v1/chat`` and the graph endpoint.

A key has a **kind** (:data:`KEY_KINDS`) that says what it may do:

- ``secret`` (``sa_``): a server-side key; everything;
- ``agent`` (``ak_``): the human agents' console; chat, the memory API, handoffs, MCP;
- ``widget`` (``pk_``, publishable): embedded in a web page, so public; it may only chat on the
  graph endpoint and ``/v1/chat`` for its tenant, from the tenant's allowed origins
  (``widget.allowed_origins``), and sees only the public part of a thread's state.

A key is **revoked** by its prefix (:func:`revoke_api_key`: ``support-agent tenant revoke-key
PREFIX``, ``DELETE /api/tenants/me/keys/{prefix}``). Nothing caches principals: every request
reads the key's row (:func:`principal_for_key`), so a revoked key is refused on its next request,
and long-lived responses re-check it every few seconds (:func:`key_still_valid`,
``api.streams``). A key is named by its prefix (the kind's prefix and 4 more characters, e.g.
``sa_AbCd``) wherever it must be named (who linked an identity, who revoked a key); neither a key
nor its hash is ever logged or shown.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from support_agent.crm.customer360 import iso
from support_agent.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
)
from support_agent.services import Services

logger = logging.getLogger(__name__)

KeyKind = Literal["secret", "agent", "widget"]
#: Key kinds and their prefixes.
KEY_KINDS: dict[KeyKind, str] = {"secret": "sa_", "agent": "ak_", "widget": "pk_"}
#: Characters of a key stored and shown as its prefix (the kind's 3 and 4 random ones).
PREFIX_LEN = 7


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant of the key and the key's kind.

    Attributes:
        tenant_id: the key's tenant.
        kind: ``secret`` | ``agent`` | ``widget`` (see the module docstring).
        key_hash: SHA-256 of the key (rate limiting, re-checking a stream; never the key
            itself, never logged).
        prefix: the key's first :data:`PREFIX_LEN` characters (``sa_AbCd``): how it is named in
            records of who did what.
    """

    tenant_id: str
    kind: KeyKind
    key_hash: str
    prefix: str = ""

    def require(self, *kinds: KeyKind) -> str:
        """The tenant, if this key's kind is one of ``kinds``.

        Raises:
            ForbiddenError: (403) another kind of key, e.g. a widget key on the memory API.
        """
        if self.kind not in kinds:
            raise ForbiddenError(f"a {self.kind} key may not use this route")
        return self.tenant_id


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(services: Services, tenant_id: str, kind: KeyKind = "secret") -> str:
    """Create a new API key of ``kind`` for a tenant (creating the tenant row if needed).

    Returns:
        The key, shown once; only its hash is stored.

    Raises:
        NotFoundError: no tenant pack with that id.
        InvalidRequestError: an unknown kind.
    """
    config = services.tenants.config(tenant_id)
    if kind not in KEY_KINDS:
        raise InvalidRequestError(f"key kind must be one of {sorted(KEY_KINDS)}")
    key = KEY_KINDS[kind] + secrets.token_urlsafe(32)
    async with services.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (tenant_id, config.name),
        )
        await conn.execute(
            "INSERT INTO api_keys (key_hash, tenant_id, prefix, kind) VALUES (%s, %s, %s, %s)",
            (hash_key(key), tenant_id, key[:PREFIX_LEN], kind),
        )
    return key


async def principal_for_key(services: Services, key: str | None) -> Principal:
    """The tenant and kind of an API key.

    Raises:
        UnauthorizedError: missing, unknown or revoked key.
    """
    key = (key or "").strip()
    if not key:
        raise UnauthorizedError("missing bearer API key")
    digest = hash_key(key)
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT tenant_id, kind, prefix FROM api_keys"
                " WHERE key_hash = %s AND revoked_at IS NULL",
                (digest,),
            )
        ).fetchone()
    if row is None:
        raise UnauthorizedError("invalid API key")
    return Principal(
        tenant_id=str(row["tenant_id"]), kind=row["kind"], key_hash=digest, prefix=row["prefix"]
    )


async def key_still_valid(services: Services, key_hash: str) -> bool:
    """Whether the key with this SHA-256 hash exists and is not revoked (one indexed read).

    Long-lived responses call it every few seconds (``api.streams``) so that a key revoked
    while its stream is open stops receiving data.
    """
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT 1 FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL", (key_hash,)
            )
        ).fetchone()
    return row is not None


def _key_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "prefix": row["prefix"],
        "tenant": row["tenant_id"],
        "kind": row["kind"],
        "createdAt": iso(row["created_at"]),
        "revokedAt": iso(row["revoked_at"]),
        "revokedBy": row["revoked_by"],
    }


_KEY_COLUMNS = "SELECT prefix, tenant_id, kind, created_at, revoked_at, revoked_by FROM api_keys"


async def list_api_keys(services: Services, tenant_id: str) -> list[dict[str, Any]]:
    """A tenant's API keys, oldest first, named by prefix (never the key or its hash).

    Returns:
        ``[{"prefix", "tenant", "kind", "createdAt", "revokedAt", "revokedBy"}]`` with ISO-8601
        times; ``revokedAt`` / ``revokedBy`` are ``None`` for a key in use.
    """
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                _KEY_COLUMNS + " WHERE tenant_id = %s ORDER BY created_at, prefix", (tenant_id,)
            )
        ).fetchall()
    return [_key_row(r) for r in rows]


async def revoke_api_key(
    services: Services, key_or_prefix: str, *, tenant_id: str | None, revoked_by: str
) -> dict[str, Any]:
    """Revoke a key, named by its prefix (``sa_AbCd``) or given whole.

    From this call's commit on, the key is refused on every request (nothing caches principals)
    and its open streams end within ``api.streams.KEY_RECHECK_S`` seconds; the identity links it
    proposed that are still pending are rejected (``decided_by`` ``revoked by …``). Revoking a
    revoked key changes nothing and answers it again.

    Args:
        services: open services.
        key_or_prefix: the key's :data:`PREFIX_LEN`-character prefix, or the whole key.
        tenant_id: only this tenant's keys (the API: a key may not revoke another tenant's,
            which answers 404); ``None`` for any tenant (the CLI, run by the operator).
        revoked_by: who revoked it, recorded: the revoking key's prefix or ``cli``.

    Returns:
        The key's row as :func:`list_api_keys` shows it, ``revokedAt`` set.

    Raises:
        NotFoundError: no such key (in this tenant).
        ConflictError: the prefix names several keys in use; give the whole key.
    """
    given = key_or_prefix.strip()
    by_hash = len(given) > PREFIX_LEN
    where, value = ("key_hash = %s", hash_key(given)) if by_hash else ("prefix = %s", given)
    scope = "" if tenant_id is None else " AND tenant_id = %s"
    params: tuple[str, ...] = (value,) if tenant_id is None else (value, tenant_id)
    async with services.pool.connection() as conn, conn.transaction():
        rows = await (
            await conn.execute(
                "SELECT key_hash, revoked_at FROM api_keys WHERE " + where + scope + " FOR UPDATE",
                params,
            )
        ).fetchall()
        if not rows:
            raise NotFoundError("API key not found")
        live = [r["key_hash"] for r in rows if r["revoked_at"] is None]
        if len(live) > 1:
            raise ConflictError(
                f"{len(live)} keys in use have this prefix: give the whole key to revoke one"
            )
        target = live[0] if live else rows[0]["key_hash"]
        if live:
            await conn.execute(
                "UPDATE api_keys SET revoked_at = now(), revoked_by = %s WHERE key_hash = %s",
                (revoked_by, target),
            )
            # what the key proposed and nobody approved yet goes with it
            await conn.execute(
                "UPDATE identity_link_proposals SET status = 'rejected', decided_by = %s,"
                " decided_at = now() WHERE status = 'pending' AND (tenant_id, proposed_by) ="
                " (SELECT tenant_id, prefix FROM api_keys WHERE key_hash = %s)",
                (f"revoked by {revoked_by}", target),
            )
        row = await (
            await conn.execute(_KEY_COLUMNS + " WHERE key_hash = %s", (target,))
        ).fetchone()
    assert row is not None  # locked above
    out = _key_row(row)
    if live:
        logger.info(
            "api_key_revoked",
            extra={"tenant_id": out["tenant"], "key_prefix": out["prefix"], "by": revoked_by},
        )
    return out


async def tenant_for_key(services: Services, authorization: str | None) -> str:
    """The tenant of a ``Bearer <key>`` header (any kind of key).

    Raises:
        UnauthorizedError: missing, malformed, unknown or revoked key.
    """
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise UnauthorizedError("missing bearer API key")
    return (await principal_for_key(services, key)).tenant_id
