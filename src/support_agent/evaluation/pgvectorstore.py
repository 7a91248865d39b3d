"""``langchain-postgres``'s ``PGVectorStore`` with hybrid search, on the same knowledge documents.

The retrieval suite measures it next to our own retrieval (``retrieval/hybrid.py``) on the same
queries: the tenant's knowledge documents are copied, with the embeddings we already store, into
a ``PGVectorStore`` table (``eval_pgvectorstore_<tenant>``, rebuilt per run) with a
full-text-search column, and searched with its ``HybridSearchConfig`` and reciprocal rank fusion
(k = 60, as ours). Document text is the title, a newline and the content; the store's own
keyword query is ``plainto_tsquery`` (every word must match).
"""

from __future__ import annotations

import re
from typing import Any

from support_agent.errors import InfrastructureError
from support_agent.services import Services

#: Rows each of the store's two searches fetches before fusion (ours takes 30 as well).
CANDIDATES = 30


def _sqlalchemy_url(conninfo: str) -> str:
    """``postgresql+psycopg://…`` for SQLAlchemy from a libpq URL (``postgresql://…``)."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", conninfo)


class PGVectorStoreRetriever:
    """A ``PGVectorStore`` over a tenant's knowledge documents (see module docstring).

    Use :meth:`open`, then :meth:`search`; :meth:`close` drops the table and the engine.
    """

    def __init__(self, services: Services, tenant_id: str) -> None:
        self.services = services
        self.tenant_id = tenant_id
        self.table = f"eval_pgvectorstore_{re.sub(r'[^a-z0-9_]', '_', tenant_id.lower())}"
        self._engine: Any = None
        self._store: Any = None

    async def open(self) -> None:
        """Create the table and copy the documents with their stored embeddings.

        Raises:
            InfrastructureError: the pool's connection string is computed, not static.
            psycopg.Error, sqlalchemy.exc.SQLAlchemyError: the database refused.
        """
        from langchain_postgres import PGEngine, PGVectorStore
        from langchain_postgres.v2.hybrid_search_config import (
            HybridSearchConfig,
            reciprocal_rank_fusion,
        )

        config = HybridSearchConfig(
            tsv_column="content_tsv",
            fusion_function=reciprocal_rank_fusion,
            fusion_function_parameters={"rrf_k": 60, "fetch_top_k": CANDIDATES},
            primary_top_k=CANDIDATES,
            secondary_top_k=CANDIDATES,
        )
        conninfo = self.services.pool.conninfo
        if not isinstance(conninfo, str):
            raise InfrastructureError("the connection pool has no static connection string")
        self._engine = PGEngine.from_connection_string(_sqlalchemy_url(conninfo))
        await self._engine.adrop_table(self.table)
        await self._engine.ainit_vectorstore_table(
            table_name=self.table, vector_size=384, hybrid_search_config=config
        )
        self._store = await PGVectorStore.create(
            engine=self._engine,
            table_name=self.table,
            embedding_service=self.services.embeddings,
            hybrid_search_config=config,
        )
        async with self.services.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT id, title, content, embedding::text AS embedding"
                    " FROM knowledge_documents WHERE tenant_id = %s ORDER BY id",
                    (self.tenant_id,),
                )
            ).fetchall()
        await self._store.aadd_embeddings(
            texts=[f"{r['title']}\n{r['content']}" for r in rows],
            embeddings=[[float(x) for x in r["embedding"].strip("[]").split(",")] for r in rows],
            metadatas=[{"doc_id": r["id"]} for r in rows],
        )

    async def search(self, query: str, k: int = 10) -> list[str]:
        """The ids of the ``k`` best documents for ``query`` by the store's hybrid search."""
        docs = await self._store.asimilarity_search(query, k=k)
        return [str(d.metadata["doc_id"]) for d in docs]

    async def close(self) -> None:
        """Drop the table and dispose of the engine."""
        if self._engine is not None:
            await self._engine.adrop_table(self.table)
            await self._engine.close()
            self._engine = None
