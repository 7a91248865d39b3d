"""Concurrent HTTP load: N scripted customers chatting at once against a running API.

Each simulated customer loops over conversations of the tenant's script (identify by e-mail, then
the script's messages, each turn waiting for the previous answer, as a person in a chat widget
does) for a fixed measuring window after a warm-up. Messages vary in their opening and ending,
as real customers' do, so the query-vector cache does not answer them. Every turn is one
``POST /v1/chat``; its latency is measured from sending the request to reading the whole JSON
reply. A turn that does
not answer 200 counts as an error (its body's ``error.code`` is tallied).

Used by ``bench/run.py`` for the real API (``support-agent serve``) and for the floor
(``bench/floor_server.py``: the same HTTP stack, checkpointer and locks with eight no-op nodes).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import pct

#: The scripted customers' messages after identifying, per tenant (read-only questions, so every
#: customer can repeat them without changing what the next conversation sees).
SCRIPTS = {
    "retail": ("where is my order?", "the item I got is broken", "any update?"),
    "bank": (
        "how long does a new card take to arrive?",
        "is my transfer still pending?",
        "what are the fees for using a foreign ATM?",
    ),
}


#: Openings and endings mixed into every scripted message, so that, as with real customers,
#: almost no message repeats (20 × 20 forms of each; the query-vector cache holds 512 texts).
_OPENINGS = ("", "hi, ", "hello, ", "hey, ", "hi there, ", "good morning, ", "good afternoon, ",
             "excuse me, ", "sorry, ", "quick question, ", "um, ", "ok so ", "so ", "well, ",
             "hi again, ", "yo, ", "hello again, ", "right, ", "alright, ",
             "one more thing: ")  # fmt: skip
_ENDINGS = ("", " please", " thanks", " thank you", " thx", " asap", " if you can",
            " when you get a chance", "??", "!", " :)", " cheers", " many thanks", " please help",
            " pls", " ty", " thanks a lot", " much appreciated", " thanks in advance",
            " regards")  # fmt: skip


def vary(message: str, rng: random.Random) -> str:
    """``message`` with a random opening and ending (see ``_OPENINGS``)."""
    return f"{rng.choice(_OPENINGS)}{message}{rng.choice(_ENDINGS)}"


@dataclass
class LoadResult:
    """What one load level measured.

    Attributes:
        concurrency: simultaneous customers.
        seconds: length of the measuring window (s).
        latencies: every completed turn's latency in the window (s).
        errors: non-200 answers and transport failures in the window, by code.
    """

    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def turns_per_s(self) -> float:
        """Completed turns per second of the window."""
        return len(self.latencies) / self.seconds

    def pct_ms(self, q: float) -> float:
        """The q-quantile (0..1) of turn latency in milliseconds (``nan`` without turns)."""
        return pct(self.latencies, q) if self.latencies else float("nan")


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    argv: list[str], port: int, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start an API process and wait until ``/healthz`` answers 200.

    Args:
        argv: the command (it must listen on 127.0.0.1:``port``).
        port: its port.
        env: extra environment (``DATA_DIR`` of the embedded servers to attach to, settings).
        log: file for its stdout and stderr.

    Raises:
        RuntimeError: it exited or did not become healthy within 180 s (see ``log``).
    """
    out = log.open("wb")
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.terminate()
    raise RuntimeError(f"{argv[0]} did not become healthy in 180 s; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn's graceful shutdown closes the services), SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _customer(
    client: httpx.AsyncClient,
    tenant: str,
    emails: list[str],
    offset: int,
    stop_at: float,
    window: tuple[float, float],
    result: LoadResult,
) -> None:
    """One simulated customer: conversation after conversation until ``stop_at``."""
    n = offset
    rng = random.Random(offset)
    while time.monotonic() < stop_at:
        session: str | None = None
        email = emails[n % len(emails)]
        n += 1
        for message in (f"my email is {email}", *(vary(m, rng) for m in SCRIPTS[tenant])):
            if time.monotonic() >= stop_at:
                return
            body: dict[str, str] = {"message": message, "channel": "chat"}
            if session:
                body["session_id"] = session
            sent = time.monotonic()
            try:
                response = await client.post("/v1/chat", json=body)
                code = str(response.status_code)
                if response.status_code == 200:
                    session = response.json()["session_id"]
                else:
                    code = response.json().get("error", {}).get("code", code)
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            done = time.monotonic()
            if window[0] <= sent and done <= window[1]:
                if code == "200":
                    result.latencies.append(done - sent)
                else:
                    result.errors[code] += 1
            if code != "200":
                break  # start a new conversation


async def run_load(
    base_url: str,
    api_key: str,
    tenant: str,
    emails: list[str],
    concurrency: int,
    *,
    warmup_s: float = 2.0,
    seconds: float = 10.0,
) -> LoadResult:
    """Run ``concurrency`` simulated customers for ``warmup_s + seconds``; measure the window.

    Only turns sent and answered inside the window count, so the figure is the steady state.

    Args:
        base_url: the API, e.g. ``http://127.0.0.1:8000``.
        api_key: a secret key of ``tenant``.
        tenant: ``retail`` or ``bank`` (picks the script).
        emails: customers' e-mails to identify as (each customer starts at its own offset).
        concurrency: simultaneous customers (1..).
        warmup_s: seconds before the window opens.
        seconds: the window's length.
    """
    result = LoadResult(concurrency=concurrency, seconds=seconds)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
        limits=limits,
    ) as client:
        start = time.monotonic()
        window = (start + warmup_s, start + warmup_s + seconds)
        stride = max(1, len(emails) // concurrency)
        await asyncio.gather(
            *(
                _customer(client, tenant, emails, i * stride, window[1], window, result)
                for i in range(concurrency)
            )
        )
    return result


def serve_argv(port: int, workers: int) -> list[str]:
    """``support-agent serve`` on loopback ``port`` (the product's own command)."""
    exe = Path(sys.executable).with_name("support-agent")
    where = ["--host", "127.0.0.1", "--port", str(port)]
    return [str(exe), "serve", *where, "--workers", str(workers)]


def floor_argv(port: int, workers: int) -> list[str]:
    """The floor server (same stack, eight no-op nodes) on loopback ``port``."""
    script = str(Path(__file__).with_name("floor_server.py"))
    return [sys.executable, script, "--port", str(port), "--workers", str(workers)]
