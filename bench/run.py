"""Benchmarks (``make bench``, about 15 minutes; ``--quick`` skips the 1M-episode run).

Runs against the same embedded PostgreSQL + Redis the service uses, in a throwaway DATA_DIR:

- hot memory load: Customer 360 + L1/L2/L4 from Redis (one MGET, JSON decode, trust/churn);
- cold memory load: the same on a Redis miss (PostgreSQL queries + re-warm);
- episodic search at 10k / 100k / 1M stored episodes of many customers (10 per customer, as the
  store holds them: namespace per customer, 384-dim vectors), query embedding excluded and reported
  on its own row;
- memory pipeline throughput: conversations per second through the worker (episode embedding,
  store write, layer transaction, hot write-through);
- turn latency without an LLM (all eight nodes), retail and bank, with each node's CPU time;
- concurrent HTTP load (``bench/http_load.py``): 1, 4, 16 and 64 scripted customers at once
  against ``support-agent serve`` (retail and bank: turns/s, p50/p95/p99, errors), and in the same
  run the floor: the same HTTP stack, checkpointer and concurrency with eight no-op nodes
  (``bench/floor_server.py``); each figure is also printed as a ratio to the floor. The load
  generator runs in this process, on the same machine as the server.

Timings are wall-clock on this machine; nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import pct, retail_agent
from floor_server import NODES
from http_load import (
    SCRIPTS,
    LoadResult,
    floor_argv,
    free_port,
    run_load,
    serve_argv,
    start_server,
    stop_server,
)

from support_agent.conversation import Agent, run_turn, stream_turn
from support_agent.memory_store.context import load_customer_memory
from support_agent.memory_store.episodes import search_episodes
from support_agent.memory_store.hot import c360_key, memory_key, sync_hot_tier
from support_agent.memory_store.pipeline import MemoryWorker, enqueue_session
from support_agent.services import Services
from support_agent.tenancy import create_api_key
from support_agent.verticals.bank.loader import load_bank

Row = tuple[str, int, list[float]]


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t = time.perf_counter()
    await fn()
    return time.perf_counter() - t


async def bench_memory_loads(svc: Services, ids: list[str]) -> list[Row]:
    for c in ids:  # warm-up: fill Redis with every customer's memory
        await load_customer_memory(svc, None, "retail", c, "")
    hot = [await timed(lambda c=c: load_customer_memory(svc, None, "retail", c, "")) for c in ids]
    cold = []
    for c in ids[:200]:
        await svc.redis.delete(c360_key("retail", c), memory_key("retail", c))
        cold.append(await timed(lambda c=c: load_customer_memory(svc, None, "retail", c, "")))
    return [
        ("hot memory load (360 + L1/L2/L4, Redis)", len(hot), hot),
        ("cold memory load (PostgreSQL + re-warm)", len(cold), cold),
    ]


async def seed_episodes(svc: Services, total: int, start_customer: int) -> int:
    """Bulk-insert synthetic episodes (10 per customer) with real MiniLM vectors; returns the
    next free customer number."""
    customers = total // 10
    async with svc.pool.connection() as conn:
        have = await (
            await conn.execute("SELECT to_regclass('bench_base') IS NOT NULL AS ok")
        ).fetchone()
        if not (have and have["ok"]):
            topics = ["order", "refund", "return", "exchange", "delivery", "address", "payment",
                      "complaint", "cancellation", "warranty", "tracking", "gift card"]  # fmt: skip
            texts = [
                f"Customer asked about {random.choice(topics)} for item {i}; agent "
                f"{random.choice(['resolved it', 'proposed a return', 'escalated', 'explained'])}"
                for i in range(1024)
            ]
            vectors = await asyncio.to_thread(svc.embeddings.embed_documents, texts)
            await conn.execute(
                "CREATE TABLE bench_base (id int PRIMARY KEY, embedding vector(384))"
            )
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO bench_base VALUES (%s, %s::vector)",
                    [
                        (i, "[" + ",".join(f"{x:.6f}" for x in v) + "]")
                        for i, v in enumerate(vectors)
                    ],
                )
        end = start_customer + customers
        await conn.execute(
            "INSERT INTO store (prefix, key, value, created_at, updated_at)"
            " SELECT 'tenant.retail.customer.bench_' || c || '.episodes', 'conv_' || c || '_' || e,"
            " jsonb_build_object('summary', 'Synthetic episode ' || e || ' of customer ' || c,"
            " 'conversationId', 'conv_' || c || '_' || e, 'channel', 'chat', 'outcome', 'answered',"
            " 'openIssues', '[]'::jsonb, 'promises', '[]'::jsonb, 'createdAt', now()::text),"
            " now(), now() FROM generate_series(%s::int, %s::int) c, generate_series(1, 10) e",
            (start_customer, end - 1),
        )
        await conn.execute(
            "INSERT INTO store_vectors (prefix, key, field_name, embedding, created_at, updated_at)"
            " SELECT 'tenant.retail.customer.bench_' || c || '.episodes', 'conv_' || c || '_' || e,"
            " 'summary', b.embedding, now(), now()"
            " FROM generate_series(%s::int, %s::int) c CROSS JOIN generate_series(1, 10) e"
            " JOIN bench_base b ON b.id = ((c * 10 + e) %% 1024)",
            (start_customer, end - 1),
        )
        await conn.execute("ANALYZE store")
        await conn.execute("ANALYZE store_vectors")
    return end


async def bench_episodic(svc: Services, scales: list[int]) -> list[Row]:
    rows: list[Row] = []
    next_customer = 0
    stored = 0
    queries = [f"any update on my {w}?" for w in
               ("refund", "return", "exchange", "order", "delivery", "payment", "gift card",
                "tracking", "complaint", "warranty")]  # fmt: skip
    embed = []
    for q in queries:
        svc.embeddings.embed_query("warm " + q)
        embed.append(await timed(lambda q=q: asyncio.to_thread(svc.embeddings.embed_query, q)))
    rows.append(("query embedding (MiniLM, 1 query)", len(embed), embed))
    for scale in scales:
        t = time.perf_counter()
        next_customer = await seed_episodes(svc, scale - stored, next_customer)
        stored = scale
        seed_s = time.perf_counter() - t
        samples = []
        for i in range(300):
            customer = f"bench_{random.randrange(next_customer)}"
            q = queries[i % len(queries)]  # embedding cached: only the search is timed
            samples.append(
                await timed(lambda c=customer, q=q: search_episodes(svc.store, "retail", c, q, 3))
            )
        rows.append((f"episodic search @ {scale:,} episodes (seed {seed_s:.0f} s)", 300, samples))
    return rows


async def _enqueue_jobs(svc: Services, ids: list[str], n: int) -> None:
    now = datetime.now(UTC).isoformat()
    for i in range(n):
        cid = ids[i % len(ids)]
        await enqueue_session(
            svc, "retail", f"bench-{uuid.uuid4().hex[:12]}", cid,
            {
                "channel": random.choice(["chat", "phone", "email"]),
                "started_at": now, "ended_at": now, "end_reason": "explicit",
                "intent": "return", "outcome": "unresolved",
                "customer_lines": ["Hi, my lamp arrived broken", "I prefer email, thanks"],
                "agent_lines": ["I can offer a return or an exchange."],
                "turns": [{"intent": "return", "decision": "confirm", "frustration": 0.2}],
                "issue": None, "pending_action": {"action": "return_items",
                                                   "target": {"id": "#W1", "label": "order #W1"}},
                "executed": [],
            },
        )  # fmt: skip


async def bench_pipeline(svc: Services, ids: list[str], n: int = 300) -> list[Row]:
    """Steady-state throughput: a first batch warms the worker (the language detector loads on
    its first job, a one-time start-up cost of a few seconds), then ``n`` jobs are timed."""
    worker = MemoryWorker(svc, backoff_base_s=0.0)
    await _enqueue_jobs(svc, ids[-32:], 32)
    await worker.drain(timeout_s=600)
    await _enqueue_jobs(svc, ids, n)
    t = time.perf_counter()
    applied = await worker.drain(timeout_s=600)
    elapsed = time.perf_counter() - t
    return [(f"memory pipeline: {applied / elapsed:.0f} conversations/s", applied,
             [elapsed / max(1, applied)] * max(1, applied))]  # fmt: skip


async def bench_turns(agent: Agent, emails: list[str]) -> list[Row]:
    await run_turn(agent, tenant_id="retail", channel="chat", message="hello")  # loads the model
    turns = []
    for email in emails[:40]:
        session = f"bench-{uuid.uuid4().hex[:10]}"
        await run_turn(agent, tenant_id="retail", channel="chat", message=f"my email is {email}",
                       session_id=session)  # fmt: skip
        for message in ("where is my order?", "the item I got is broken", "any update?"):
            turns.append(await timed(lambda m=message, s=session: run_turn(
                agent, tenant_id="retail", channel="chat", message=m, session_id=s)))  # fmt: skip
    return [("turn latency, no LLM (8 nodes)", len(turns), turns)]


async def bench_bank_turns(agent: Agent) -> list[Row]:
    """Bank turns: Banking77 classifier (77 intents), hybrid retrieval over 698 documents, offers
    and resolutions, the retention check; read-only questions so every customer can repeat them.
    """
    svc = agent.services
    await load_bank(svc)
    await sync_hot_tier(svc, "bank")
    async with svc.pool.connection() as conn:
        cur = await conn.execute("SELECT email FROM customers WHERE tenant_id='bank' ORDER BY id")
        emails = [r["email"] for r in await cur.fetchall()]
    await run_turn(agent, tenant_id="bank", channel="chat", message="hello")  # trains the model
    turns = []
    for email in emails[:30]:
        session = f"bench-{uuid.uuid4().hex[:10]}"
        await run_turn(agent, tenant_id="bank", channel="chat", message=f"my email is {email}",
                       session_id=session)  # fmt: skip
        for message in ("how long does a new card take to arrive?", "is my transfer still pending?",
                        "what are the fees for using a foreign ATM?"):  # fmt: skip
            turns.append(await timed(lambda m=message, s=session: run_turn(
                agent, tenant_id="bank", channel="chat", message=m, session_id=s)))  # fmt: skip
    return [("bank turn latency, no LLM (8 nodes)", len(turns), turns)]


OUTSIDE = "(outside the nodes)"


async def _cpu_pass(agent: Agent, tenant: str, emails: list[str], script: tuple[str, ...],
                    cpu: dict[str, float]) -> tuple[int, float]:  # fmt: skip
    """Play 20 conversations; add each node's CPU seconds to ``cpu`` (``tasks`` events mark
    where a node starts, ``updates`` where it ends; the rest is ``(outside the nodes)``).
    Returns (turns, wall seconds)."""
    turns, wall = 0, 0.0
    for email in emails[:20]:
        session = f"cpu-{uuid.uuid4().hex[:10]}"
        for message in (f"my email is {email}", *script):
            t0, c0 = time.perf_counter(), time.process_time()
            started: float | None = None
            in_nodes = 0.0
            async for mode, chunk in stream_turn(agent, tenant_id=tenant, channel="chat",
                                                 session_id=session, message=message,
                                                 stream_mode=("tasks", "updates")):  # fmt: skip
                now = time.process_time()
                if mode == "tasks" and "triggers" in chunk:  # a node starts
                    started = now
                elif mode == "updates" and started is not None:
                    for node in (k for k in chunk if not k.startswith("__")):
                        cpu[node] = cpu.get(node, 0.0) + now - started
                        in_nodes += now - started
                    started = None
            cpu[OUTSIDE] = cpu.get(OUTSIDE, 0.0) + time.process_time() - c0 - in_nodes
            wall += time.perf_counter() - t0
            turns += 1
    return turns, wall


async def node_cpu(agent: Agent, tenant: str, emails: list[str], script: tuple[str, ...],
                   profile_to: Path) -> list[str]:  # fmt: skip
    """CPU time per node of a turn (this process, every thread: ``time.process_time``), over 20
    conversations; then a pyinstrument profile of 20 more (HTML, ``profile_to``; main thread
    only: model calls run in worker threads and show there as awaits)."""
    from pyinstrument import Profiler

    cpu: dict[str, float] = {}
    turns, wall = await _cpu_pass(agent, tenant, emails, script, cpu)
    profiler = Profiler(interval=0.001, async_mode="enabled")
    profiler.start()
    await _cpu_pass(agent, tenant, emails[20:], script, {})
    profiler.stop()
    profile_to.write_text(profiler.output_html())
    total = sum(cpu.values())
    per_turn = f"wall {1000 * wall / turns:.1f} ms, CPU {1000 * total / turns:.1f} ms"
    lines = [f"{tenant}: CPU per turn by node (ms, {turns} turns; {per_turn}; {profile_to})"]
    lines += [f"  {node:22} {1000 * cpu.get(node, 0.0) / turns:6.2f}" for node in (*NODES, OUTSIDE)]
    return lines


def _print_load(title: str, real: list[LoadResult], floor: list[LoadResult]) -> None:
    print(f"\n{title}")
    print(f"{'customers':>9} {'turns/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}"
          f"   floor: {'turns/s':>8} {'p95 ms':>7}   ratio: {'turns/s':>7} {'p95':>5}")  # fmt: skip
    for r, f in zip(real, floor, strict=True):
        errors = sum(r.errors.values())
        ratio_tps = r.turns_per_s / f.turns_per_s
        ratio_p95 = r.pct_ms(0.95) / f.pct_ms(0.95)
        print(f"{r.concurrency:>9} {r.turns_per_s:8.1f} {r.pct_ms(0.5):8.1f} {r.pct_ms(0.95):8.1f} "
              f"{r.pct_ms(0.99):8.1f} {errors:>6}   {'':6} {f.turns_per_s:8.1f} "
              f"{f.pct_ms(0.95):7.1f}   {'':6} {ratio_tps:7.2f} {ratio_p95:5.1f}")  # fmt: skip
        if r.errors or f.errors:
            print(f"{'':9} errors: {dict(r.errors)} floor: {dict(f.errors)}")


async def bench_http(svc: Services, data_dir: Path, emails: dict[str, list[str]],
                     levels: list[int], seconds: float, workers: int) -> None:  # fmt: skip
    """The concurrent HTTP table: the real API and the floor, per tenant and concurrency, each
    with ``workers`` API processes."""
    env = {"DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING", "RATE_LIMIT": "1000000/minute"}
    for tenant in ("retail", "bank"):
        key = await create_api_key(svc, tenant)
        measured: dict[str, list[LoadResult]] = {}
        for name, argv in (("serve", serve_argv), ("floor", floor_argv)):
            port = free_port()
            proc = await asyncio.to_thread(
                start_server, argv(port, workers), port, env, data_dir / f"{name}-{tenant}.log"
            )
            try:
                measured[name] = [
                    await run_load(
                        f"http://127.0.0.1:{port}", key, tenant, emails[tenant], n, seconds=seconds
                    )  # fmt: skip
                    for n in levels
                ]
            finally:
                await asyncio.to_thread(stop_server, proc)
        title = f"concurrent HTTP turns, {tenant} ({workers} API processes, {seconds:.0f} s/level)"
        _print_load(title, measured["serve"], measured["floor"])


async def main(quick: bool, turns_only: bool = False, http: bool = True, workers: int = 1) -> None:
    random.seed(7)
    async with retail_agent() as (agent, data_dir):
        svc = agent.services
        async with svc.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT id, email FROM customers WHERE tenant_id='retail' ORDER BY id"
                )
            ).fetchall()
        ids = [r["id"] for r in rows]
        table: list[Row] = []
        if not turns_only:
            table += await bench_memory_loads(svc, ids)
        table += await bench_turns(agent, [r["email"] for r in rows])
        table += await bench_bank_turns(agent)
        if not turns_only:
            table += await bench_pipeline(svc, ids)
            table += await bench_episodic(
                svc, [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
            )
        print(f"\n{'benchmark':52} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for name, n, samples in table:
            print(f"{name:52} {n:>6} {pct(samples, 0.5):8.2f} {pct(samples, 0.95):8.2f} "
                  f"{1000 * max(samples):8.2f}")  # fmt: skip
        print(
            "targets: turn p95 <= 20 ms retail, <= 30 ms bank; hot load p95 <= 2 ms; "
            "episodic search p95 <= 15 ms at 1M (query embedding excluded); "
            "pipeline >= 200 conversations/s"
        )
        async with svc.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT email FROM customers WHERE tenant_id='bank' ORDER BY id"
            )
            bank_emails = [r["email"] for r in await cur.fetchall()]
        emails = {"retail": [r["email"] for r in rows], "bank": bank_emails}
        print()
        out = Path(os.environ.get("DATA_DIR", ".data")) / "bench"
        out.mkdir(parents=True, exist_ok=True)
        for tenant in ("retail", "bank"):
            for line in await node_cpu(agent, tenant, emails[tenant], SCRIPTS[tenant],
                                       out / f"profile-{tenant}.html"):  # fmt: skip
                print(line)
        if http:
            await bench_http(svc, data_dir, emails, [1, 4, 16, 64], 5.0 if quick else 10.0,
                             workers)  # fmt: skip
            print("targets: at 16 customers >= 100 turns/s with p95 <= 250 ms and 0 errors")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 1M-episode run")
    parser.add_argument("--turns", action="store_true", help="only the turn-latency benchmarks")
    parser.add_argument("--no-http", action="store_true", help="skip the concurrent HTTP load")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="API processes of the HTTP load (default: the CPU cores)")  # fmt: skip
    args = parser.parse_args()
    asyncio.run(main(args.quick, args.turns, http=not args.no_http, workers=args.workers))
