"""Offline evaluation runs: suites through langsmith.aevaluate, offline and uploaded to a local
fake LangSmith, and the fast subset of ``support-agent eval`` against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support_agent.cli import main
from support_agent.evaluation import runner
from support_agent.evaluation.runner import (
    Row,
    Suite,
    Target,
    dataset_name,
    langsmith_client,
    run_suite,
)
from support_agent.services import Services
from tests.langsmith_fake import FakeLangSmith

#: The toy suite's target gets the fourth example wrong.
WRONG = 3


def _toy_suite() -> Suite:
    async def target(inputs: dict[str, Any]) -> dict[str, Any]:
        return {"y": inputs["x"] * 2 + (1 if inputs["x"] == WRONG else 0)}

    def correct(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict[str, Any]:
        return {"key": "correct", "score": float(outputs["y"] == reference_outputs["y"])}

    def summarize(rows: list[Row]) -> dict[str, Any]:
        return {"accuracy": sum(r.scores["correct"] or 0.0 for r in rows) / len(rows)}

    return Suite(
        name="toy",
        description="doubling",
        examples=[({"x": i}, {"y": 2 * i}) for i in range(5)],
        target=target,
        evaluators=[correct],
        summarize=summarize,
        targets=(Target("accuracy", ">=", 0.9),),
    )


async def test_an_offline_run_scores_every_row_and_never_reaches_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    with FakeLangSmith() as fake:
        # the offline client points here instead of a closed port: nothing may arrive
        monkeypatch.setattr(runner, "OFFLINE_API_URL", fake.url)
        result = await run_suite(_toy_suite(), langsmith_client(False), upload=False,
                                 metadata={"run": "offline"})  # fmt: skip
        assert fake.requests == []
    assert [r.inputs["x"] for r in result.rows] == [0, 1, 2, 3, 4]
    assert [r.scores["correct"] for r in result.rows] == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert result.metrics == {"accuracy": 0.8}
    assert result.targets == [{"metric": "accuracy", "op": ">=", "value": 0.9, "actual": 0.8,
                               "met": False}]  # fmt: skip
    assert result.experiment.startswith("support-agent-toy-") and result.errors == 0


async def test_with_a_key_the_dataset_experiment_runs_and_scores_are_uploaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    suite = _toy_suite()
    with FakeLangSmith() as fake:
        monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test-key")
        monkeypatch.setenv("LANGSMITH_ENDPOINT", fake.url)
        client = langsmith_client(True)
        first = await run_suite(suite, client, upload=True, metadata={"commit": {"sha": "abc123"}})
        client.flush()
        [dataset] = fake.datasets.values()
        assert dataset["name"] == dataset_name(suite) and first.dataset_id == dataset["id"]
        assert len(fake.examples[dataset["id"]]) == 5
        [session] = fake.sessions.values()
        assert session["reference_dataset_id"] == dataset["id"]
        assert session["extra"]["metadata"]["commit"] == {"sha": "abc123"}
        assert session["extra"]["metadata"]["suite"] == "toy"
        roots = [r for r in fake.runs.values() if r.get("reference_example_id")]
        assert len(roots) == 5 and {r["session_name"] for r in roots} == {session["name"]}
        scores = sorted(f["score"] for f in fake.feedback if f["key"] == "correct")
        assert scores == [0.0, 1.0, 1.0, 1.0, 1.0]
        # the same examples again: the dataset is reused, a second experiment is created
        await run_suite(suite, client, upload=True, metadata={})
        client.flush()
        assert len(fake.datasets) == 1 and len(fake.sessions) == 2
        assert len(fake.examples[dataset["id"]]) == 5


def test_langsmith_upload_without_a_key_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    assert main(["eval", "consent", "--langsmith"]) == 2
    assert "LANGSMITH_API_KEY" in capsys.readouterr().err


async def test_fast_suites_write_the_report_and_plots(
    services: Services, data_dir: Path, tmp_path: Path
) -> None:
    """``support-agent eval … --fast`` (the subset ``make test`` runs) on the test database."""
    out = tmp_path / "report"
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING",
           "DATABASE_URL": str(services.embedded.database_url),
           "REDIS_URL": str(services.embedded.redis_url)}  # fmt: skip
    env.pop("LANGSMITH_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "support_agent.cli", "eval", "consent", "intents", "retrieval",
         "trajectory", "--fast", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    suites = report["suites"]
    assert list(suites) == ["consent", "intents", "retrieval", "trajectory"]
    assert all(s["n"] > 0 and s["errors"] == 0 for s in suites.values())
    assert report["meta"]["fast"] is True and report["meta"]["commit"]["sha"]
    assert len(report["meta"]["models"]["all-MiniLM-L6-v2"]) == 64
    assert suites["consent"]["metrics"]["approve_precision"] == 1.0
    intents = suites["intents"]["metrics"]
    assert intents["oos_recall"] is not None and intents["cv_oos_recall"] is not None
    retrieval = suites["retrieval"]["metrics"]
    assert retrieval["short_n"] == 10 and retrieval["long_n"] == 10
    assert retrieval["recall@10"] >= retrieval["keyword_recall@10"]
    assert "pgvectorstore_recall@10" in retrieval
    trajectory = suites["trajectory"]["metrics"]
    assert trajectory["trajectory_match_rate"] == 1.0, trajectory["mismatches"]
    assert trajectory["decision_match_rate"] == 1.0, trajectory["mismatches"]
    md = (out / "report.md").read_text()
    for name in suites:
        assert f"## {name}" in md
        rows = (out / f"rows_{name}.jsonl").read_text().splitlines()
        assert len(rows) == suites[name]["n"] and json.loads(rows[0])["outputs"]
    for png in [
        "scores.png",
        "latency_nodes.png",
        "intents_confusion.png",
        "intents_confusion_top.png",
        "intents_oos_calibration.png",
        "retrieval.png",
    ]:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"({png})" in md
