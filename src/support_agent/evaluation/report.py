"""The report of an evaluation run: ``report.json``, ``report.md`` and PNG plots in one directory.

- ``report.json``: ``{"meta", "suites": {name: {"description", "n", "errors", "setup_seconds",
  "seconds", "experiment", "dataset_id", "metrics", "targets", "plots"}}, "plots"}``;
- ``report.md``: per suite a table of its flat metrics, each with its target and whether it was
  met, then the plots;
- ``scores.png``: every targeted metric as a bar, its target as a line (green when met);
- ``latency_nodes.png``: per graph node, the histogram of its time per turn (ms, log scale) over
  the turns of the suites that play conversations;
- ``rows_<suite>.jsonl``: one line per example, ``{"inputs", "reference", "outputs", "scores",
  "error"}`` (the conversations' transcripts are in their outputs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from support_agent.evaluation.runner import Row, SuiteResult
from support_agent.intents.evaluation import pyplot, save_figure

#: The graph's nodes in the order a turn visits them (the latency plot's order).
NODE_ORDER = (
    "identify",
    "load_360",
    "classify_intent",
    "retrieve_resolutions",
    "rank_actions",
    "policy_check",
    "await_consent",
    "respond_or_escalate",
    "write_memory",
)


def node_latencies(results: list[SuiteResult]) -> dict[str, list[float]]:
    """Milliseconds per node and turn, from every row's ``outputs["node_ms"]``."""
    out: dict[str, list[float]] = {}
    for result in results:
        for row in result.rows:
            for turn in (row.outputs or {}).get("node_ms") or []:
                for node, ms in turn.items():
                    out.setdefault(node, []).append(float(ms))
    return out


def _flat(metrics: dict[str, Any]) -> dict[str, float | int | None]:
    return {k: v for k, v in metrics.items() if v is None or isinstance(v, int | float)}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return str(value)


def draw_scores(results: list[SuiteResult], png: Path) -> Path | None:
    """Bars of every targeted metric with its target; ``None`` when no suite has targets."""
    checks = [(r.name, c) for r in results for c in r.targets]
    if not checks:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(checks) + 1.4))
    for i, (_, c) in enumerate(reversed(checks)):
        actual = c["actual"] if c["actual"] is not None else 0.0
        colour = {True: "#2e9d4c", False: "#c8372d", None: "#999999"}[c["met"]]
        ax.barh(i, actual, color=colour, height=0.6)
        ax.plot([c["value"], c["value"]], [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.text(max(actual, c["value"]) * 1.01 + 0.01, i,
                f"{_fmt(c['actual'])} (target {c['op']} {_fmt(c['value'])})", va="center",
                fontsize=8)  # fmt: skip
    labels = [f"{suite}: {c['metric']}" for suite, c in reversed(checks)]
    ax.set_yticks(range(len(checks)), labels, fontsize=9)
    top = max(max((c["actual"] or 0.0), c["value"]) for _, c in checks)
    ax.set_xlim(0, max(top, 1.0) * 1.35)
    ax.set_xlabel("score (bar: measured; black line: target; green met, red missed)")
    ax.set_title("Suite scores against their targets")
    save_figure(plt, fig, png)
    return png


def draw_latencies(latencies: dict[str, list[float]], png: Path) -> Path | None:
    """One histogram per node of its time per turn (log-scale ms); ``None`` without turns."""
    nodes = [n for n in NODE_ORDER if latencies.get(n)]
    nodes += sorted(n for n in latencies if n not in NODE_ORDER and latencies[n])
    if not nodes:
        return None
    plt = pyplot()
    import numpy as np

    cols = 3
    rows_n = math.ceil(len(nodes) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(11, 2.4 * rows_n + 0.6), squeeze=False)
    every = [v for n in nodes for v in latencies[n]]
    low, high = max(min(every), 0.01), max(every)
    bins = np.logspace(math.log10(low), math.log10(high * 1.01), 30)
    for ax, node in zip(axes.flat, nodes, strict=False):
        values = np.asarray(latencies[node])
        ax.hist(np.clip(values, low, None), bins=bins, color="#2747d1")
        ax.set_xscale("log")
        p50, p95 = np.percentile(values, [50, 95])
        ax.set_title(f"{node}  p50 {p50:.1f} ms, p95 {p95:.1f} ms (n={len(values)})", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(nodes) :]:
        ax.axis("off")
    fig.supxlabel("milliseconds per turn (log scale)", fontsize=9)
    fig.suptitle("Time per graph node per turn", fontsize=11)
    save_figure(plt, fig, png)
    return png


def write_report(results: list[SuiteResult], meta: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write ``report.json``, ``report.md``, the rows, ``scores.png`` and ``latency_nodes.png``.

    The suites' own plots are already in ``out`` (``SuiteResult.plots``).

    Returns:
        The ``report.json`` document.
    """
    out.mkdir(parents=True, exist_ok=True)
    plots = [p for p in (draw_scores(results, out / "scores.png"),
                         draw_latencies(node_latencies(results), out / "latency_nodes.png"))
             if p is not None]  # fmt: skip
    report = {
        "meta": meta,
        "suites": {
            r.name: {
                "description": r.description,
                "n": len(r.rows),
                "errors": r.errors,
                "seconds": r.seconds,
                "setup_seconds": r.setup_seconds,
                "experiment": r.experiment,
                "dataset_id": r.dataset_id,
                "metrics": r.metrics,
                "targets": r.targets,
                "plots": [p.name for p in r.plots],
            }
            for r in results
        },
        "plots": [p.name for p in plots],
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    for r in results:
        with (out / f"rows_{r.name}.jsonl").open("w", encoding="utf-8") as fh:
            for row in r.rows:
                fh.write(json.dumps(row.__dict__, default=str) + "\n")
    (out / "report.md").write_text(_markdown(results, meta, plots))
    return report


def _markdown(results: list[SuiteResult], meta: dict[str, Any], plots: list[Path]) -> str:
    git = meta.get("commit") or {}
    lines = [
        "# Evaluation report",
        "",
        f"Run {meta.get('started_at', '')} · commit `{(git.get('sha') or 'unknown')[:10]}`"
        + (" (uncommitted changes)" if git.get("dirty") else "")
        + (" · **fast subsets**" if meta.get("fast") else "")
        + f" · embeddings `{meta.get('settings', {}).get('embedding_model')}`"
        + f" · LLM {'on' if meta.get('settings', {}).get('llm') else 'off'}",
        "",
        "| suite | examples | errors | setup s | run s | targets met |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        met = sum(bool(c["met"]) for c in r.targets)
        lines.append(f"| {r.name} | {len(r.rows)} | {r.errors} | {r.setup_seconds:.0f} | "
                     f"{r.seconds:.0f} | {met}/{len(r.targets)} |")  # fmt: skip
    lines += [""] + [f"![{p.stem}]({p.name})" for p in plots]
    for r in results:
        targets = {c["metric"]: c for c in r.targets}
        lines += ["", f"## {r.name}", "", r.description, "", "| metric | value | target | met |",
                  "|---|---:|---:|:---:|"]  # fmt: skip
        for key, value in _flat(r.metrics).items():
            c = targets.get(key)
            target = f"{c['op']} {_fmt(c['value'])}" if c else ""
            mark = {True: "✅", False: "❌", None: "–"}[c["met"]] if c else ""
            lines.append(f"| {key} | {_fmt(value)} | {target} | {mark} |")
        lines += [""] + [f"![{p.stem}]({p.name})" for p in r.plots]
    return "\n".join(lines) + "\n"


__all__ = ["Row", "draw_latencies", "draw_scores", "node_latencies", "write_report"]
