"""Hybrid retrieval: pgvector similarity and PostgreSQL full-text search, fused with RRF.

For each source (``resolution`` records, knowledge ``document`` s, ``offer`` s) two ranked lists
are taken, each of ``candidates`` rows of the tenant:

- semantic: cosine distance between the query embedding and the row's embedding (pgvector);
- keyword: ``ts_rank`` of the row's weighted ``tsvector`` (title A, body B) against the query's
  lexemes OR-ed together, so a natural question matches on any of its words and rows matching more
  of them, or in the title, rank higher. (Measured on the bank query file: ``ts_rank`` gives
  keyword nDCG@10 0.60, the cover-density ``ts_rank_cd`` only 0.21 with OR-ed queries.)

Reciprocal rank fusion (Cormack, Clarke and Büttcher 2009) merges every list::

    rrf(d) = Σ over lists containing d of 1 / (k + rank(d)),   k = 60, rank from 1

Resolution records then carry their effectiveness: their fused score is multiplied by
``0.5 + 0.5 · success_rate`` so that, between equally relevant records, the one that resolved more
cases ranks first. The fused list is cut to ``limit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from support_agent.services import Services

Source = Literal["resolution", "document", "offer"]
Mode = Literal["hybrid", "semantic", "keyword"]
RRF_K = 60

_TABLES: dict[str, tuple[str, str, str]] = {
    # source: (table, columns returned, extra filter)
    "resolution": (
        "resolution_records",
        "id, title, resolution AS text, intent, actions, success_rate, helpful_votes",
        "",
    ),
    "document": ("knowledge_documents", "id, title, left(content, 600) AS text", ""),
    # expired offers are never retrieved
    "offer": (
        "offers",
        "id, kind AS offer_kind, title, description AS text, terms,"
        " valid_until::text AS valid_until",
        " AND (valid_until IS NULL OR valid_until > now())",
    ),
}


@dataclass
class Hit:
    """One retrieved item.

    Attributes:
        kind: ``resolution`` | ``document`` | ``offer``.
        id: the row id.
        score: fused score (RRF, effectiveness-weighted for resolutions).
        ranks: the item's 1-based rank in each list it appeared in (``semantic``, ``keyword``).
        similarity: cosine similarity to the query when it was in the semantic list.
        row: the row's returned columns (title, text, ...).
    """

    kind: str
    id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    similarity: float | None = None
    row: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"kind": self.kind, "id": self.id, "score": round(self.score, 6),
                "ranks": self.ranks, "similarity": self.similarity, **self.row}  # fmt: skip


def vector_literal(vec: list[float]) -> str:
    """The pgvector text form of a vector, ``[x1,x2,...]``."""
    return "[" + ",".join(f"{x:.7f}" for x in vec) + "]"


async def hybrid_search(
    services: Services,
    tenant_id: str,
    query: str,
    query_vector: list[float],
    *,
    sources: tuple[Source, ...] = ("resolution", "document", "offer"),
    limit: int = 10,
    candidates: int = 30,
    mode: Mode = "hybrid",
    per_kind: dict[str, int] | None = None,
) -> list[Hit]:
    """Search the tenant's sources and fuse the ranked lists.

    Args:
        services: open services.
        tenant_id: only this tenant's rows are searched.
        query: the text (for full-text search).
        query_vector: its unit-length 384-dim embedding (for semantic search).
        sources: which sources to search.
        limit: hits returned.
        candidates: rows taken from each list before fusion.
        mode: ``hybrid`` (both lists), ``semantic`` or ``keyword`` only (for evaluation).
        per_kind: at most this many hits of each kind (``{"resolution": 3, ...}``), taken from
            each source's own fused list, so one large source cannot crowd out another; then
            ``limit`` is not applied.

    Returns:
        Up to ``limit`` hits, best first.
    """
    vec = vector_literal(query_vector)
    # Rank on ids only, then fetch the returned columns of the few kept rows: computing them (e.g.
    # a document's text) for every candidate before the sort costs more than the ranking itself.
    # Every list's query goes out in one pipeline: one round trip for all sources and modes.
    planned: list[tuple[Source, str, str, tuple[Any, ...]]] = []
    for source in sources:
        table, columns, extra = _TABLES[source]
        if mode in ("hybrid", "semantic"):
            planned.append((source, "semantic",
                f"SELECT {columns}, 1 - k.d AS similarity FROM ("
                f" SELECT id AS k_id, embedding <=> %s::vector AS d FROM {table}"
                f" WHERE tenant_id = %s AND embedding IS NOT NULL{extra}"
                " ORDER BY d LIMIT %s) k"
                f" JOIN {table} ON {table}.tenant_id = %s AND {table}.id = k.k_id"
                " ORDER BY k.d, k.k_id",
                (vec, tenant_id, candidates, tenant_id)))  # fmt: skip
        if mode in ("hybrid", "keyword"):
            planned.append((source, "keyword",
                "WITH q AS (SELECT NULLIF(replace(plainto_tsquery('english', %s)::text,"
                " ' & ', ' | '), '')::tsquery AS tsq)"
                f" SELECT {columns}, NULL::float AS similarity FROM ("
                f" SELECT id AS k_id, ts_rank(tsv, q.tsq) AS r FROM {table}, q"
                f" WHERE tenant_id = %s AND q.tsq IS NOT NULL AND tsv @@ q.tsq{extra}"
                " ORDER BY r DESC, id LIMIT %s) k"
                f" JOIN {table} ON {table}.tenant_id = %s AND {table}.id = k.k_id"
                " ORDER BY k.r DESC, k.k_id",
                (query, tenant_id, candidates, tenant_id)))  # fmt: skip
    async with services.pool.connection() as conn:
        async with conn.pipeline():
            cursors = []
            for _source, _name, sql, params in planned:
                cur = conn.cursor()
                await cur.execute(sql.encode(), params)
                cursors.append(cur)
        results = [await cur.fetchall() for cur in cursors]
    fused: dict[tuple[str, str], Hit] = {}
    for (source, name, _sql, _params), rows in zip(planned, results, strict=True):
        for rank, row in enumerate(rows, start=1):
            key = (source, row["id"])
            hit = fused.get(key)
            if hit is None:
                data = {k: v for k, v in row.items() if k not in ("id", "similarity")}
                hit = fused[key] = Hit(kind=source, id=row["id"], score=0.0, row=data)
            hit.score += 1.0 / (RRF_K + rank)
            hit.ranks[name] = rank
            if row["similarity"] is not None:
                hit.similarity = round(float(row["similarity"]), 4)
    for hit in fused.values():
        if hit.kind == "resolution":
            hit.row["success_rate"] = float(hit.row["success_rate"])
            hit.score *= 0.5 + 0.5 * hit.row["success_rate"]
    ranked = sorted(fused.values(), key=lambda h: (-h.score, h.kind, h.id))
    if per_kind is None:
        return ranked[:limit]
    taken: dict[str, int] = {}
    kept = []
    for hit in ranked:
        if taken.get(hit.kind, 0) < per_kind.get(hit.kind, 0):
            taken[hit.kind] = taken.get(hit.kind, 0) + 1
            kept.append(hit)
    return kept
