"""Offline evaluation runs: suites of examples, a target and evaluators, run through LangSmith.

A :class:`Suite` is what LangSmith calls a dataset plus an experiment's target and evaluators:
examples (inputs + reference outputs), an async ``target`` (inputs → outputs) and row evaluators
(``(outputs, reference_outputs) → {"key", "score"}``); its ``summarize`` turns the rows into the
suite's metrics, which :class:`Target` thresholds check. Every suite runs through
``langsmith.aevaluate``:

- with ``upload=True`` (``support-agent eval --langsmith``, ``LANGSMITH_API_KEY`` set) the
  examples become a LangSmith dataset named after the suite and a digest of its examples (reused
  while the examples do not change) and the run is uploaded as an experiment with its metadata;
  ``LANGSMITH_TRACING=true`` then also traces the graph's turns under the experiment's runs;
- without it the run stays on this machine: a client that points at a closed local port, no
  uploads, tracing off (``STACK.md``: ``aevaluate`` tries the API even with
  ``upload_results=False`` unless given such a client).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from langsmith import Client, aevaluate, tracing_context
from langsmith._internal._beta_decorator import LangSmithBetaWarning
from langsmith.schemas import Example

from support_agent.errors import InvalidRequestError

#: Where the offline client points: a closed port, so nothing can leave the machine.
OFFLINE_API_URL = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Target:
    """A threshold a suite's metric must meet: ``metric op value`` (e.g. ``oos_recall >= 0.92``)."""

    metric: str
    op: Literal[">=", "<="]
    value: float

    def met(self, actual: float | None) -> bool | None:
        """Whether ``actual`` meets the target (``None`` when the metric was not measured)."""
        if actual is None:
            return None
        return actual >= self.value if self.op == ">=" else actual <= self.value


@dataclass(frozen=True)
class SuiteOptions:
    """What the suites read and where they write.

    Attributes:
        evals_dir: the repository's ``evals/`` (query files, consent set, trajectories).
        shared_data_dir: the public data sets (``../shared/data``).
        out: the run's output directory (models and plots go there).
        fast: small subsets (see the module docstring).
        memory_per_family: conversations per memory family.
        tenant: the tenant of the retrieval suite (default ``bank``) and of the conversations
            suite (default ``retail``; it must hold the τ² retail data).
    """

    evals_dir: Path
    shared_data_dir: Path
    out: Path
    fast: bool = False
    memory_per_family: int = 10
    tenant: str | None = None


@dataclass
class Row:
    """One example's run: its inputs, reference outputs, the target's outputs and its scores.

    ``outputs`` is ``None`` and ``error`` the message when the target raised.
    """

    inputs: dict[str, Any]
    reference: dict[str, Any]
    outputs: dict[str, Any] | None
    scores: dict[str, float | None]
    error: str | None = None


Evaluator = Callable[..., Any]


@dataclass
class Suite:
    """One evaluation suite (see the module docstring).

    Attributes:
        name: the suite's name (``intents``, ``retrieval``, ...).
        description: one line for the report and the LangSmith dataset.
        examples: ``(inputs, reference_outputs)`` pairs, JSON-serialisable.
        target: async ``inputs → outputs``; outputs may carry ``node_ms`` (one
            ``{node: milliseconds}`` per turn) for the latency plot.
        evaluators: LangSmith row evaluators taking ``outputs`` and ``reference_outputs``.
        summarize: rows → metrics (flat numbers are what targets and tables read; nested values
            are details for ``report.json``).
        targets: thresholds on metrics.
        plots: draws the suite's own plots into a directory from its metrics and rows; returns
            the files written.
        close: undoes what the suite changed (customers reset to their loaded state).
        max_concurrency: examples run at once (``0``: one after the other).
        models: model files the suite built or read, name → SHA-256 (experiment metadata).
    """

    name: str
    description: str
    examples: list[tuple[dict[str, Any], dict[str, Any]]]
    target: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    evaluators: Sequence[Evaluator]
    summarize: Callable[[list[Row]], dict[str, Any]]
    targets: tuple[Target, ...] = ()
    plots: Callable[[dict[str, Any], list[Row], Path], list[Path]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    max_concurrency: int = 0
    models: dict[str, str] = field(default_factory=dict)


@dataclass
class SuiteResult:
    """What a suite's run measured.

    Attributes:
        name: the suite.
        description: its description.
        metrics: the summary (see :attr:`Suite.summarize`).
        targets: ``[{"metric", "op", "value", "actual", "met"}]``.
        rows: the per-example rows.
        seconds: wall-clock time of the run.
        experiment: the LangSmith experiment's name.
        dataset_id: the LangSmith dataset's id (a local id when nothing was uploaded).
        plots: files the suite drew.
        setup_seconds: wall-clock time of building the suite before its run (loading data,
            training and cross-validating a model).
    """

    name: str
    description: str
    metrics: dict[str, Any]
    targets: list[dict[str, Any]]
    rows: list[Row]
    seconds: float
    experiment: str
    dataset_id: str
    plots: list[Path] = field(default_factory=list)
    setup_seconds: float = 0.0

    @property
    def errors(self) -> int:
        """Examples whose target raised."""
        return sum(r.error is not None for r in self.rows)


def langsmith_client(upload: bool) -> Client:
    """The LangSmith client of a run.

    Args:
        upload: upload datasets and experiments (needs ``LANGSMITH_API_KEY``; ``LANGSMITH_ENDPOINT``
            picks a self-hosted server).

    Raises:
        InvalidRequestError: ``upload`` without ``LANGSMITH_API_KEY``.
    """
    if upload:
        key = os.environ.get("LANGSMITH_API_KEY")
        if not key:
            raise InvalidRequestError("--langsmith needs LANGSMITH_API_KEY in the environment")
        return Client(api_key=key, api_url=os.environ.get("LANGSMITH_ENDPOINT") or None)
    return Client(api_key="offline", api_url=OFFLINE_API_URL, info={}, tracing_sampling_rate=0.0)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def dataset_name(suite: Suite) -> str:
    """``support-agent-<suite>-<digest of its examples>``: one dataset per version of the data."""
    return f"support-agent-{suite.name}-{_digest(suite.examples)[:12]}"


def examples_for(suite: Suite, client: Client, upload: bool) -> list[Example]:
    """The suite's examples as LangSmith ``Example`` objects, uploading the dataset if asked.

    Example ids are derived from the dataset's name, so the same data keeps the same ids (and,
    uploaded, the same dataset: it is created only when missing).
    """
    name = dataset_name(suite)
    local_id = uuid.uuid5(uuid.NAMESPACE_URL, name)
    ids = [uuid.uuid5(local_id, str(i)) for i in range(len(suite.examples))]
    dataset_id: uuid.UUID = local_id
    if upload:
        if client.has_dataset(dataset_name=name):
            dataset_id = client.read_dataset(dataset_name=name).id
        else:
            dataset_id = client.create_dataset(name, description=suite.description).id
            client.create_examples(
                dataset_id=dataset_id,
                examples=[
                    {"id": i, "inputs": inputs, "reference_outputs": reference}
                    for i, (inputs, reference) in zip(ids, suite.examples, strict=True)
                ],
            )
    return [
        Example(id=i, dataset_id=dataset_id, inputs=inputs, outputs=reference)
        for i, (inputs, reference) in zip(ids, suite.examples, strict=True)
    ]


async def run_suite(
    suite: Suite, client: Client, *, upload: bool, metadata: dict[str, Any]
) -> SuiteResult:
    """Run one suite through ``langsmith.aevaluate`` and summarise it.

    A target that raises on an example marks that row (``Row.error``) and the run goes on;
    ``suite.close`` runs whatever happens.

    Raises:
        InvalidRequestError: the suite has no examples.
    """
    if not suite.examples:
        raise InvalidRequestError(f"suite {suite.name} has no examples")
    started = time.perf_counter()
    try:
        data = examples_for(suite, client, upload)
        by_id = {e.id: n for n, e in enumerate(data)}
        with tracing_context(enabled=None if upload else False), warnings.catch_warnings():
            # "'upload_runs' parameter is in beta": it is the documented switch (STACK.md)
            warnings.simplefilter("ignore", LangSmithBetaWarning)
            results = await aevaluate(
                suite.target,
                data=data,
                evaluators=list(suite.evaluators),
                client=client,
                upload_runs=upload,
                experiment_prefix=f"support-agent-{suite.name}",
                description=suite.description,
                metadata={**metadata, "suite": suite.name},
                max_concurrency=suite.max_concurrency,
            )
            found: list[tuple[int, Row]] = []
            async for r in results:
                run, example = r["run"], r["example"]
                scores = {e.key: _score(e.score) for e in r["evaluation_results"]["results"]}
                reference = dict(example.outputs or {})
                row = Row(dict(example.inputs or {}), reference, run.outputs, scores, run.error)
                found.append((by_id[example.id], row))
    finally:
        if suite.close is not None:
            await suite.close()
    rows = [row for _, row in sorted(found, key=lambda item: item[0])]
    metrics = suite.summarize(rows)
    checks = [
        {
            "metric": t.metric,
            "op": t.op,
            "value": t.value,
            "actual": metrics.get(t.metric),
            "met": t.met(metrics.get(t.metric)),
        }  # fmt: skip
        for t in suite.targets
    ]
    return SuiteResult(
        name=suite.name,
        description=suite.description,
        metrics=metrics,
        targets=checks,
        rows=rows,
        seconds=round(time.perf_counter() - started, 1),
        experiment=results.experiment_name,
        dataset_id=str(data[0].dataset_id),
    )


def _score(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), streamed (``hashlib.file_digest``)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def git_revision(directory: Path) -> dict[str, Any]:
    """``{"sha", "dirty"}`` of the checkout holding ``directory`` (``None``s outside git)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()  # fmt: skip
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=directory, capture_output=True, text=True, check=True,
                                timeout=10).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha, "dirty": bool(status.strip())}


def experiment_metadata(settings: Any, *, fast: bool, models: dict[str, str]) -> dict[str, Any]:
    """What an experiment ran with: code revision, model files' hashes, settings (no secrets).

    Args:
        settings: the :class:`~support_agent.settings.Settings`.
        fast: whether the suites ran on their fast subsets.
        models: model name → SHA-256 of its weights file.
    """
    from importlib.metadata import version

    return {
        "commit": git_revision(Path(__file__).resolve().parent),
        "package_version": version("support-agent"),
        "python": platform.python_version(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fast": fast,
        "models": models,
        "settings": {
            "embedding_model": settings.embedding_model,
            "llm": settings.llm_enabled,
            "llm_model": settings.llm_model if settings.llm_enabled else None,
        },
    }
