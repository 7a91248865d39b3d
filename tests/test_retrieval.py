"""Hybrid retrieval: loading the bank knowledge base, RRF fusion, effectiveness, metrics, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support_agent.retrieval.evaluation import ndcg_at, recall_at
from support_agent.retrieval.hybrid import RRF_K, hybrid_search
from support_agent.services import Services
from support_agent.verticals.bank.loader import load_bank_knowledge

QUERIES = Path(__file__).resolve().parents[1] / "evals" / "bank_retrieval_queries.jsonl"


@pytest.fixture(scope="module")
async def bank_kb(services: Services) -> int:
    await load_bank_knowledge(services)
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM knowledge_documents WHERE tenant_id = 'bank'"
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def test_knowledge_load_is_complete_and_idempotent(services: Services, bank_kb: int) -> None:
    assert bank_kb == 698
    assert await load_bank_knowledge(services) == 0


async def test_hybrid_finds_the_document_and_fuses_by_rrf(services: Services, bank_kb: int) -> None:
    query = "I forgot my card PIN and need a new one"
    vector = services.embeddings.embed_query(query)
    hits = await hybrid_search(services, "bank", query, vector, sources=("document",))
    ids = [h.id for h in hits]
    assert "doc_bank_accounts_bank_accounts_(general)_027" in ids[:3]
    for hit in hits:
        expected = sum(1.0 / (RRF_K + r) for r in hit.ranks.values())
        assert hit.score == pytest.approx(expected)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    both = [h for h in hits if set(h.ranks) == {"semantic", "keyword"}]
    assert both and all(h.similarity is not None for h in both)
    # Another tenant's search never returns the bank's documents.
    assert await hybrid_search(services, "retail", query, vector, sources=("document",)) == []


async def test_resolution_scores_carry_effectiveness(services: Services) -> None:
    query = "I want to cancel, I ordered it by mistake"
    vector = services.embeddings.embed_query(query)
    hits = await hybrid_search(services, "retail", query, vector, sources=("resolution",))
    assert hits[0].id == "res-retail-004"
    for hit in hits:
        rrf = sum(1.0 / (RRF_K + r) for r in hit.ranks.values())
        assert hit.score == pytest.approx(rrf * (0.5 + 0.5 * hit.row["success_rate"]))


def test_recall_and_ndcg_by_hand() -> None:
    ranked = ["a", "x", "b", "y"]
    assert recall_at(ranked, {"a", "b"}, 1) == 0.5
    assert recall_at(ranked, {"a", "b"}, 5) == 1.0
    # DCG = 1/log2(2) + 1/log2(4) = 1.5 ; IDCG = 1 + 1/log2(3)
    assert ndcg_at(ranked, {"a", "b"}, 5) == pytest.approx(1.5 / (1 + 1 / 1.5849625007))
    assert ndcg_at(["x", "a"], {"a"}, 1) == 0.0


async def test_retrieval_eval_cli_on_the_bank_query_file(
    services: Services, bank_kb: int, data_dir: Path
) -> None:
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING",
           "DATABASE_URL": str(services.embedded.database_url),
           "REDIS_URL": str(services.embedded.redis_url)}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "support_agent.cli", "retrieval", "eval", "--tenant", "bank",
         "--data", str(QUERIES)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for k in (1, 5, 10):
        assert 0.0 <= result[f"recall@{k}"] <= 1.0 and 0.0 <= result[f"ndcg@{k}"] <= 1.0
    assert result["n"] == 40
    assert result["recall@10"] >= 0.8
    assert result["recall@10"] >= result["by_mode"]["keyword"]["recall@10"]
