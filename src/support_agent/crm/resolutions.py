"""Resolution records: what resolved such cases before, searchable by meaning.

Records live in ``resolution_records`` with a 384-dim embedding (pgvector) of
``title + problem + resolution``. Seeds come from each tenant pack's ``resolutions.yaml``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import yaml

from support_agent.retrieval.hybrid import vector_literal
from support_agent.services import Services


def _document(rec: dict[str, Any]) -> str:
    """Text embedded for a record."""
    return f"{rec['title']}. {rec['problem']} {rec['resolution']}"


async def seed_resolutions(services: Services, tenant_id: str) -> int:
    """Insert the tenant pack's seed resolution records that are missing; returns how many.

    Embeds only the records not yet stored, so a repeated seed costs one query.

    Raises:
        NotFoundError: unknown tenant.
        OSError: the pack has no ``resolutions.yaml``.
    """
    path = services.tenants.config(tenant_id).pack_dir / "resolutions.yaml"
    records: list[dict[str, Any]] = yaml.safe_load(path.read_text())
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM resolution_records WHERE tenant_id = %s", (tenant_id,)
        )
        have = {row["id"] for row in await cur.fetchall()}
    missing = [r for r in records if r["id"] not in have]
    if not missing:
        return 0
    vectors = await asyncio.to_thread(
        services.embeddings.embed_documents, [_document(r) for r in missing]
    )
    async with services.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO resolution_records (tenant_id, id, intent, title, problem, resolution,"
            " actions, success_rate, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
            " %s::vector) ON CONFLICT DO NOTHING",
            [
                (
                    tenant_id,
                    r["id"],
                    r["intent"],
                    r["title"],
                    r["problem"],
                    r["resolution"],
                    r["actions"],
                    r["success_rate"],
                    vector_literal(v),
                )
                for r, v in zip(missing, vectors, strict=True)
            ],
        )
        return max(cur.rowcount, 0)
