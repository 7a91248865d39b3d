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
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from support_agent.errors import ForbiddenError, InvalidRequestError, UnauthorizedError
from support_agent.services import Services

KeyKind = Literal["secret", "agent", "widget"]
#: Key kinds and their prefixes.
KEY_KINDS: dict[KeyKind, str] = {"secret": "sa_", "agent": "ak_", "widget": "pk_"}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant of the key and the key's kind.

    Attributes:
        tenant_id: the key's tenant.
        kind: ``secret`` | ``agent`` | ``widget`` (see the module docstring).
        key_hash: SHA-256 of the key (rate limiting; never the key itself).
    """

    tenant_id: str
    kind: KeyKind
    key_hash: str

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
            (hash_key(key), tenant_id, key[:7], kind),
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
                "SELECT tenant_id, kind FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
                (digest,),
            )
        ).fetchone()
    if row is None:
        raise UnauthorizedError("invalid API key")
    return Principal(tenant_id=str(row["tenant_id"]), kind=row["kind"], key_hash=digest)


async def tenant_for_key(services: Services, authorization: str | None) -> str:
    """The tenant of a ``Bearer <key>`` header (any kind of key).

    Raises:
        UnauthorizedError: missing, malformed, unknown or revoked key.
    """
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise UnauthorizedError("missing bearer API key")
    return (await principal_for_key(services, key)).tenant_id
