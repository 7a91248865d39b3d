"""Settings that choose external models are read from the environment, never hard-coded."""

from __future__ import annotations

import socket

import pytest

from support_agent.embeddings import make_embeddings
from support_agent.errors import InfrastructureError, InvalidRequestError
from support_agent.services import Services
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
    with pytest.raises(InvalidRequestError, match="unknown EMBEDDING_MODEL"):
        make_embeddings("word2vec")


async def test_an_unreachable_embedding_endpoint_fails_start_up_clearly(settings: Settings) -> None:
    """No traceback from a tiktoken download: one InfrastructureError naming the settings."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broken = settings.model_copy(update={
        "embedding_model": "openai", "openai_base_url": f"http://127.0.0.1:{port}/v1",
        "openai_embedding_model": "my-embedding-model", "llm_timeout_s": 2.0,
    })  # fmt: skip
    with pytest.raises(InfrastructureError) as raised:
        async with Services.open(broken):
            pytest.fail("started with an unreachable embedding endpoint")
    message = str(raised.value)
    assert "EMBEDDING_MODEL=openai" in message and "my-embedding-model" in message
    assert "OPENAI_BASE_URL" in message
