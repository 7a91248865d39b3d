"""Schemathesis against the running API: no 5xx, no schema violation, no undocumented status.

The API is served by uvicorn on this test's event loop (``served``: the session's agent, real
PostgreSQL and Redis); schemathesis's CLI runs as a subprocess against its OpenAPI document with
positive and negative data (examples, coverage and fuzzing phases) and a retail API key. ``make
test`` runs a short, seeded pass; ``make fuzz`` a long one (``SUPPORT_AGENT_FUZZ_EXAMPLES`` per
operation and phase, ``SUPPORT_AGENT_FUZZ_MIN_CASES`` the least number of cases it must have
generated).

``filter_too_much`` is suppressed: schemathesis discards most random strings as path parameters
(``/`` and the like cannot be sent in a path), which its health check reads as an over-constrained
schema; it is a property of the generator, not of our contract.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from fastapi import FastAPI

from support_agent.services import Services
from support_agent.tenancy import create_api_key

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
    "unsupported_method", "ignored_auth",
])  # fmt: skip
EXAMPLES = int(os.environ.get("SUPPORT_AGENT_FUZZ_EXAMPLES", "4"))
MIN_CASES = int(os.environ.get("SUPPORT_AGENT_FUZZ_MIN_CASES", "200"))
SEED = os.environ.get("SUPPORT_AGENT_FUZZ_SEED", "20261130")  # "random": a new seed per run
PROCESSES = int(os.environ.get("SUPPORT_AGENT_FUZZ_PROCESSES", "1"))
#: The console's live feeds never end (they follow the queue and a conversation until the client
#: leaves), so every case would wait out the request timeout; the browser test covers them.
LIVE_FEEDS = {
    "/api/tenants/me/handoffs/stream",
    "/api/tenants/me/sessions/{session_id}/messages/stream",
}


async def _schemathesis(base: str, key: str, paths: list[str], report_dir: Path) -> str:
    """Run ``st`` over the operations of ``paths``; returns its output (raises on failure)."""
    st = Path(sys.executable).parent / "st"
    only = "^(" + "|".join(re.escape(p) for p in paths) + ")$"
    args = [
        "run", f"{base}/openapi.json", "-H", f"Authorization: Bearer {key}",
        "--include-path-regex", only,
        "--checks", CHECKS, "--mode", "all", "-n", str(EXAMPLES),
        "--phases", "examples,coverage,fuzzing", "--workers", "1",
        "--suppress-health-check", "filter_too_much", "--request-timeout", "30",
        "--generation-database", "none", "--report", "junit", "--report-dir", str(report_dir),
    ]  # fmt: skip
    if SEED != "random":
        args += ["--seed", SEED]
    proc = await asyncio.create_subprocess_exec(
        str(st), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    out, _ = await proc.communicate()
    report = out.decode(errors="replace")
    summary = report[report.rfind("SUMMARY") :]
    print(summary)  # noqa: T201 - shown with -s (make fuzz)
    assert proc.returncode == 0, report[-6000:]
    assert "Failures:" not in summary and "Errors:" not in summary, summary
    return summary


async def test_schemathesis_finds_no_failure(
    served: tuple[str, FastAPI], services: Services, tmp_path: Path
) -> None:
    """One ``st`` process per CPU (its data generation is CPU-bound), each on its share of the
    paths; together they must generate at least ``MIN_CASES`` cases."""
    key = await create_api_key(services, "retail")
    base, app = served
    app.state.limiter = None  # thousands of cases from one key; rate limits: test_api_edges
    paths = sorted(p for p in app.openapi()["paths"] if p not in LIVE_FEEDS)
    shares = max(1, min(PROCESSES, len(paths)))
    summaries = await asyncio.gather(*(
        _schemathesis(base, key, paths[i::shares], tmp_path / f"part{i}")
        for i in range(shares)
    ))  # fmt: skip
    generated = [re.search(r"(\d+) generated", s) for s in summaries]
    assert all(g is not None for g in generated), summaries
    total = sum(int(g.group(1)) for g in generated if g is not None)
    print(f"schemathesis: {total} cases over {len(paths)} paths in {shares} processes")  # noqa: T201
    assert total >= MIN_CASES, summaries
