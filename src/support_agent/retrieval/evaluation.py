"""Retrieval quality: recall@k and nDCG@k (binary relevance) over a query file.

Query file: JSON lines ``{"query": str, "relevant_ids": [str, ...]}``.

- ``recall@k`` = |relevant ∩ top-k| / |relevant|, averaged over queries;
- ``nDCG@k`` = DCG@k / IDCG@k with gain 1 for a relevant id at rank i discounted by
  ``1 / log2(i + 1)`` (Järvelin and Kekäläinen 2002), averaged over queries;
- ``MRR`` = the mean over queries of 1 / the rank of the first relevant id (0 when none is
  ranked; Voorhees 1999, TREC-8 QA).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from support_agent.errors import InvalidRequestError


def read_queries(path: Path) -> list[dict[str, Any]]:
    """Read and validate a query file.

    Raises:
        InvalidRequestError: a line is not ``{"query": str, "relevant_ids": [str, ...]}``.
    """
    queries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"{path.name}:{n}: not JSON") from exc
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("query"), str)
            or not isinstance(row.get("relevant_ids"), list)
            or not row["relevant_ids"]
        ):
            raise InvalidRequestError(f"{path.name}:{n}: needs query and non-empty relevant_ids")
        queries.append(row)
    if not queries:
        raise InvalidRequestError(f"{path.name}: no queries")
    return queries


def recall_at(ranked: list[str], relevant: set[str], k: int) -> float:
    """Share of the relevant ids found in the top ``k``."""
    return len(set(ranked[:k]) & relevant) / len(relevant)


def ndcg_at(ranked: list[str], relevant: set[str], k: int) -> float:
    """Binary-gain nDCG of the top ``k``."""
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def summarize(
    rankings: list[list[str]], queries: list[dict[str, Any]], ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """Mean recall@k and nDCG@k over queries (rounded to 4 decimals)."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = round(
            sum(
                recall_at(r, set(q["relevant_ids"]), k)
                for r, q in zip(rankings, queries, strict=True)
            )
            / len(queries),
            4,
        )
        out[f"ndcg@{k}"] = round(
            sum(
                ndcg_at(r, set(q["relevant_ids"]), k)
                for r, q in zip(rankings, queries, strict=True)
            )
            / len(queries),
            4,
        )
    return out


def mrr(rankings: list[list[str]], queries: list[dict[str, Any]]) -> float:
    """Mean reciprocal rank of the first relevant id (rounded to 4 decimals; 0.0 for none)."""
    total = 0.0
    for ranked, q in zip(rankings, queries, strict=True):
        relevant = set(q["relevant_ids"])
        total += next((1.0 / (i + 1) for i, d in enumerate(ranked) if d in relevant), 0.0)
    return round(total / len(queries), 4) if queries else 0.0
