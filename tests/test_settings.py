"""Settings that choose external models are read from the environment, never hard-coded."""

from __future__ import annotations

import pytest

from support_agent.embeddings import make_embeddings
from support_agent.settings import Settings


def test_the_openai_embedding_model_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # constructing the client makes no call
    monkeypatch.setenv("OPENAI_EMBEDDING_MODEL", "my-embedding-model")
    monkeypatch.setenv("LLM_TIMEOUT_S", "3.5")
    settings = Settings()
    assert settings.llm_timeout_s == 3.5
    embeddings = make_embeddings("openai", settings.openai_embedding_model)
    assert getattr(embeddings, "model", None) == "my-embedding-model"
    assert getattr(embeddings, "dimensions", None) == 384  # one vector shape for pgvector
    with pytest.raises(ValueError, match="unknown embedding model"):
        make_embeddings("word2vec")
