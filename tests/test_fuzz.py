"""Schemathesis against the running API: no 5xx, no schema violation, no undocumented status.

The API is served by uvicorn on this test's event loop (the session's agent, real PostgreSQL and
Redis); schemathesis's CLI runs as a subprocess against its OpenAPI document with positive and
negative data (examples, coverage and fuzzing phases) and a retail API key. ``make test`` runs a
short, seeded pass; ``make fuzz`` a long one (``SUPPORT_AGENT_FUZZ_EXAMPLES`` per operation and
phase, ``SUPPORT_AGENT_FUZZ_MIN_CASES`` the least number of cases it must have generated).

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

import uvicorn

from support_agent.api.app import create_app
from support_agent.conversation import Agent
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


async def test_schemathesis_finds_no_failure(
    agent: Agent, services: Services, tmp_path: Path
) -> None:
    key = await create_api_key(services, "retail")
    app = create_app(agent=agent)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the API did not start"
            await asyncio.sleep(0.05)
        app.state.limiter = None  # thousands of cases from one key; rate limits: test_api_edges
        port = server.servers[0].sockets[0].getsockname()[1]
        st = Path(sys.executable).parent / "st"
        args = [
            "run", f"http://127.0.0.1:{port}/openapi.json",
            "-H", f"Authorization: Bearer {key}",
            "--checks", CHECKS, "--mode", "all", "-n", str(EXAMPLES),
            "--phases", "examples,coverage,fuzzing", "--workers", "1",
            "--suppress-health-check", "filter_too_much", "--request-timeout", "30",
            "--generation-database", "none",
            "--report", "junit", "--report-dir", str(tmp_path),
        ]  # fmt: skip
        if SEED != "random":
            args += ["--seed", SEED]
        proc = await asyncio.create_subprocess_exec(
            str(st), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
        )  # fmt: skip
        out, _ = await proc.communicate()
    finally:
        server.should_exit = True
        await serving
    report = out.decode(errors="replace")
    print(report[report.rfind("SUMMARY") :])  # noqa: T201 - shown with -s (make fuzz)
    summary = report[report.rfind("SUMMARY") :]
    assert proc.returncode == 0, report[-6000:]
    generated = re.search(r"(\d+) generated", summary)
    assert generated is not None, summary
    assert int(generated.group(1)) >= MIN_CASES, summary
    assert "Failures:" not in summary and "Errors:" not in summary, summary
