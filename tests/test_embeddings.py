"""Query embeddings: concurrent single texts are batched into few model calls, same vectors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from support_agent.embeddings import MiniLMEmbeddings, QueryBatcher, _load_minilm

TEXTS = [f"where is my order number {i}, it was due {d}" for i, d in enumerate(
    ["monday", "tuesday", "last week", "yesterday"] * 4)]  # fmt: skip


def test_concurrent_queries_share_model_calls_and_get_their_own_vectors() -> None:
    embeddings = MiniLMEmbeddings()
    embeddings.warm_up()
    before = embeddings.batcher.calls
    with ThreadPoolExecutor(len(TEXTS)) as pool:  # 16 turns embedding their message at once
        vectors = list(pool.map(embeddings.embed_query, TEXTS))
    calls = embeddings.batcher.calls - before
    assert 1 <= calls < len(TEXTS)  # batched: fewer model calls than texts
    alone = _load_minilm().encode(TEXTS, normalize_embeddings=True, show_progress_bar=False)
    for text, got, want in zip(TEXTS, vectors, alone, strict=True):
        assert len(got) == 384
        assert np.allclose(got, want, atol=1e-5), text  # each caller got its own text's vector


def test_a_failed_batch_fails_its_callers_and_the_next_batch_is_served() -> None:
    def encode(texts: list[str]) -> list[list[float]]:
        if "boom" in texts:
            raise RuntimeError("model failed")
        return [[float(len(t))] for t in texts]

    batcher = QueryBatcher(encode)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.embed("boom")
    assert batcher.embed("four") == [4.0]
