"""Loader of the bank tenant's knowledge base (tau2-bench banking, MIT).

``documents.jsonl.gz`` holds 698 documents ``{id, title, content}`` (products, fees, procedures).
Each is stored in ``knowledge_documents`` with an embedding of ``title. content`` (MiniLM reads
the first ~256 word pieces; full-text search covers the whole content). Loading twice changes
nothing: only missing documents are embedded and inserted.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from pathlib import Path

from support_agent.crm.loader import LoadReport, ensure_tenant
from support_agent.errors import NotFoundError
from support_agent.retrieval.hybrid import vector_literal
from support_agent.services import Services

logger = logging.getLogger(__name__)

TENANT = "bank"


async def load_bank_knowledge(services: Services, source: Path | None = None) -> int:
    """Insert the bank's knowledge documents that are missing; returns how many.

    Raises:
        NotFoundError: the documents file does not exist.
    """
    source = source or services.settings.shared_data_dir / "tau2-banking" / "documents.jsonl.gz"
    if not source.is_file():
        raise NotFoundError(f"bank documents not found at {source}")
    docs = [json.loads(line) for line in gzip.decompress(source.read_bytes()).splitlines() if line]
    await ensure_tenant(services, TENANT, "Rho-Bank")
    async with services.pool.connection() as conn:
        have = {
            r["id"]
            for r in await (
                await conn.execute(
                    "SELECT id FROM knowledge_documents WHERE tenant_id = %s", (TENANT,)
                )
            ).fetchall()
        }
    missing = [d for d in docs if d["id"] not in have]
    if not missing:
        return 0
    vectors = await asyncio.to_thread(
        services.embeddings.embed_documents, [f"{d['title']}. {d['content']}" for d in missing]
    )
    async with services.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO knowledge_documents (tenant_id, id, title, content, embedding)"
            " VALUES (%s, %s, %s, %s, %s::vector) ON CONFLICT DO NOTHING",
            [
                (TENANT, d["id"], d["title"], d["content"], vector_literal(v))
                for d, v in zip(missing, vectors, strict=True)
            ],
        )
        inserted = max(cur.rowcount, 0)
    logger.info("knowledge_loaded", extra={"tenant_id": TENANT, "documents": inserted})
    return inserted


async def load_bank(services: Services) -> LoadReport:
    """Load the bank tenant: today its knowledge base (698 documents)."""
    return LoadReport(inserted={"knowledge_documents": await load_bank_knowledge(services)})
