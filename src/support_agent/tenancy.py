"""Tenants and their API keys.

A key is ``sa_`` + 43 URL-safe characters (256 random bits from :mod:`secrets`). Only its SHA-256
hash is stored (``api_keys.key_hash``): with 256-bit random keys a fast hash is enough, a slow
password hash adds nothing. The key's tenant is ``me`` in ``/api/tenants/me/...`` and the tenant of
``/v1/chat``.
"""

from __future__ import annotations

import hashlib
import secrets

from support_agent.errors import UnauthorizedError
from support_agent.services import Services


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(services: Services, tenant_id: str) -> str:
    """Create a new API key for a tenant (creating the tenant row if needed).

    Returns:
        The key, shown once; only its hash is stored.

    Raises:
        NotFoundError: no tenant pack with that id.
    """
    config = services.tenants.config(tenant_id)
    key = "sa_" + secrets.token_urlsafe(32)
    async with services.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (tenant_id, config.name),
        )
        await conn.execute(
            "INSERT INTO api_keys (key_hash, tenant_id, prefix) VALUES (%s, %s, %s)",
            (hash_key(key), tenant_id, key[:7]),
        )
    return key


async def tenant_for_key(services: Services, authorization: str | None) -> str:
    """The tenant of a ``Bearer <key>`` header.

    Raises:
        UnauthorizedError: missing, malformed, unknown or revoked key.
    """
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise UnauthorizedError("missing bearer API key")
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT tenant_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
                (hash_key(key.strip()),),
            )
        ).fetchone()
    if row is None:
        raise UnauthorizedError("invalid API key")
    return str(row["tenant_id"])
