"""Hybrid retrieval: pgvector similarity and PostgreSQL full-text search, fused with RRF.

For each source (``resolution`` records, knowledge ``document`` s, ``offer`` s) two ranked lists
are taken, each of ``candidates`` rows of the tenant:

- semantic: cosine distance between the query embedding and the row's embedding (pgvector);
- keyword: ``ts_rank`` of the row's weighted ``tsvector`` (title A, body B) against the query's
  lexemes OR-ed together, so a natural question matches on any of its words and rows matching more
  of them, or in the title, rank higher. (Measured on the bank query file: ``ts_rank`` gives
  keyword nDCG@10 0.60, the cover-density ``ts_rank_cd`` only 0.21 with OR-ed queries.)

Weighted reciprocal rank fusion (Cormack, Clarke and Büttcher 2009) merges every list::

    rrf(d) = Σ over lists containing d of w(list) / (k + rank(d)),   k = 60, rank from 1

with ``w = 1`` for semantic lists and ``w = min(1, 12 / words in the query)`` for keyword lists:
the OR-ed full-text query of a customer's several-sentence description matches most documents on
common words, so its ranking says less the longer the query is. (Measured on the bank query
files, 40 short queries and 67 multi-sentence descriptions: against equal weights, recall@10
0.887 → 0.900 short and 0.985 → 1.000 long, nDCG@10 0.713 → 0.716 and 0.871 → 0.896; a fixed
keyword weight of 0.3 or 0.5 helps the long queries less or hurts the short ones.)

Resolution records then carry their effectiveness: their fused score is multiplied by
``0.5 + 0.5 · success_rate`` so that, between equally relevant records, the one that resolved more
cases ranks first. The fused list is cut to ``limit`` (or to per-kind quotas).

Bounded keyword queries: PostgreSQL's text parser takes time quadratic in some inputs' length
(``"a_" * 2000``, a 4,000-character message, cost ~250 ms of database time per keyword list and a
turn runs three; ``"1_" * 2000`` ~360 ms), so the text reaches it only through
:func:`keyword_text`: its words (runs of letters and digits; underscores and punctuation separate
them), none longer than 40 characters, at most 64 of them and 500 characters. Any message then
costs a keyword list about a millisecond.

Cost: the ranked lists carry ids and scores only; the returned columns (a document's text, an
offer's terms) are read afterwards for the few hits kept. The semantic and keyword lists of every
source go out in one pipeline on one connection: one round trip (two pipelines on two pooled
connections cost the bank's search 5.5 ms of CPU against 3.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from support_agent.services import Services

Source = Literal["resolution", "document", "offer"]
Mode = Literal["hybrid", "semantic", "keyword"]
RRF_K = 60
#: Query length (words) up to which a keyword list weighs as much as a semantic one.
KEYWORD_FULL_WEIGHT_WORDS = 12


#: Longest word passed to full-text search (characters): longer ones are dropped, not cut.
KEYWORD_MAX_WORD = 40
#: Most words passed to full-text search (the first ones of the query).
KEYWORD_MAX_WORDS = 64
#: Most characters passed to full-text search (the words joined by spaces).
KEYWORD_MAX_CHARS = 500
#: A word for full-text search: letters and digits of any script; ``_`` and punctuation split.
_WORD = re.compile(r"[^\W_]+")


def keyword_text(query: str) -> str:
    """The words of ``query`` that full-text search gets, bounded whatever the query.

    Linear in ``len(query)``: one scan for runs of letters and digits (every other character,
    ``_`` included, separates words), dropping words over :data:`KEYWORD_MAX_WORD` characters,
    stopping after :data:`KEYWORD_MAX_WORDS` words or :data:`KEYWORD_MAX_CHARS` characters.
    PostgreSQL's parser is quadratic on some shapes (``"a_" * 2000``: ~250 ms); on this output
    it has at most 500 characters of plain words.

    Args:
        query: the customer's text, any length.

    Returns:
        The kept words joined by single spaces (``""`` when none is left), e.g.
        ``"card_stolen!! what now?"`` → ``"card stolen what now"``.
    """
    words: list[str] = []
    size = -1  # the first word adds no separator
    for match in _WORD.finditer(query):
        word = match.group()
        if len(word) > KEYWORD_MAX_WORD:
            continue
        size += len(word) + 1
        if size > KEYWORD_MAX_CHARS:
            break
        words.append(word)
        if len(words) == KEYWORD_MAX_WORDS:
            break
    return " ".join(words)


def keyword_weight(query: str) -> float:
    """The fusion weight of a keyword list for ``query``: ``min(1, 12 / words)``."""
    words = len(query.split())
    return min(1.0, KEYWORD_FULL_WEIGHT_WORDS / words) if words else 1.0


_TABLES: dict[str, tuple[str, str, str, str]] = {
    # source: (table, columns returned, extra filter, weight used by the fusion)
    "resolution": (
        "resolution_records",
        "id, title, resolution AS text, intent, actions, success_rate, helpful_votes",
        "",
        "success_rate",
    ),
    "document": ("knowledge_documents", "id, title, left(content, 600) AS text", "", "NULL"),
    # expired offers are never retrieved
    "offer": (
        "offers",
        "id, kind AS offer_kind, title, description AS text, terms,"
        " valid_until::text AS valid_until",
        " AND (valid_until IS NULL OR valid_until > now())",
        "NULL",
    ),
}

Query = tuple[str, tuple[Any, ...]]


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


async def _pipeline(services: Services, queries: list[Query]) -> list[list[dict[str, Any]]]:
    """Run queries in one pipeline on one connection (one round trip); their rows, in order."""
    async with services.pool.connection() as conn:
        async with conn.pipeline():
            cursors = []
            for sql, params in queries:
                cur = conn.cursor()
                await cur.execute(sql.encode(), params)
                cursors.append(cur)
        return [await cur.fetchall() for cur in cursors]


def _ranking(source: Source, name: str, tenant_id: str, query: str, vec: str, n: int) -> Query:
    """The query of one ranked list: ``id``, ``similarity`` (semantic) and the fusion weight."""
    table, _columns, extra, weight = _TABLES[source]
    if name == "semantic":
        return (
            f"SELECT id, 1 - d AS similarity, {weight} AS weight FROM ("
            f" SELECT id, embedding <=> %s::vector AS d, {weight} FROM {table}"
            f" WHERE tenant_id = %s AND embedding IS NOT NULL{extra}) k"
            " ORDER BY d, id LIMIT %s",
            (vec, tenant_id, n),
        )
    return (
        "WITH q AS (SELECT NULLIF(replace(plainto_tsquery('english', %s)::text,"
        " ' & ', ' | '), '')::tsquery AS tsq)"
        f" SELECT id, NULL::float AS similarity, {weight} AS weight FROM {table}, q"
        f" WHERE tenant_id = %s AND q.tsq IS NOT NULL AND tsv @@ q.tsq{extra}"
        " ORDER BY ts_rank(tsv, q.tsq) DESC, id LIMIT %s",
        (keyword_text(query), tenant_id, n),
    )


def _fuse(lists: list[tuple[Source, str, list[dict[str, Any]]]], keyword: float = 1.0) -> list[Hit]:
    """Weighted RRF: keyword lists weigh ``keyword``, resolutions their effectiveness."""
    fused: dict[tuple[Source, str], Hit] = {}
    weights: dict[tuple[Source, str], float] = {}
    for source, name, rows in lists:
        for rank, row in enumerate(rows, start=1):
            key = (source, row["id"])
            hit = fused.setdefault(key, Hit(kind=source, id=row["id"], score=0.0))
            hit.score += (keyword if name == "keyword" else 1.0) / (RRF_K + rank)
            hit.ranks[name] = rank
            if row["similarity"] is not None:
                hit.similarity = round(float(row["similarity"]), 4)
            if row["weight"] is not None:
                weights[key] = float(row["weight"])
    for weighted, success_rate in weights.items():
        fused[weighted].score *= 0.5 + 0.5 * success_rate
    return sorted(fused.values(), key=lambda h: (-h.score, h.kind, h.id))


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
        Up to ``limit`` hits, best first, with their columns (``title``, ``text``...).
    """
    vec = vector_literal(query_vector)
    names = {"hybrid": ("semantic", "keyword"), "semantic": ("semantic",),
             "keyword": ("keyword",)}[mode]  # fmt: skip
    plan = [(src, name) for name in names for src in sources]
    ran = await _pipeline(services, [_ranking(src, name, tenant_id, query, vec, candidates)
                                     for src, name in plan])  # one round trip  # fmt: skip
    lists = [(src, name, rows) for (src, name), rows in zip(plan, ran, strict=True)]
    ranked = _fuse(lists, keyword_weight(query))
    if per_kind is None:
        kept = ranked[:limit]
    else:
        taken: dict[str, int] = {}
        kept = []
        for hit in ranked:
            if taken.get(hit.kind, 0) < per_kind.get(hit.kind, 0):
                taken[hit.kind] = taken.get(hit.kind, 0) + 1
                kept.append(hit)
    await _fill(services, tenant_id, kept)
    return kept


async def _fill(services: Services, tenant_id: str, hits: list[Hit]) -> None:
    """Read the returned columns of the kept hits (one pipeline, one query per source)."""
    by_source: dict[str, list[Hit]] = {}
    for hit in hits:
        by_source.setdefault(hit.kind, []).append(hit)
    if not by_source:
        return
    queries: list[Query] = []
    for source, kept in by_source.items():
        table, columns, _extra, _weight = _TABLES[source]
        queries.append((f"SELECT {columns} FROM {table} WHERE tenant_id = %s AND id = ANY(%s)",
                        (tenant_id, [h.id for h in kept])))  # fmt: skip
    for (_source, kept), rows in zip(by_source.items(), await _pipeline(services, queries),
                                     strict=True):  # fmt: skip
        found = {r["id"]: r for r in rows}
        for hit in kept:
            hit.row = {k: v for k, v in found[hit.id].items() if k != "id"}
            if "success_rate" in hit.row:
                hit.row["success_rate"] = float(hit.row["success_rate"])
