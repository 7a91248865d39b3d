"""Benchmarks (``make bench``): hot/cold Customer 360 loads and per-turn latency without an LLM.

Runs against the same embedded PostgreSQL + Redis as the service (a throwaway DATA_DIR) and
prints one table. Timings are wall-clock on this machine; nothing here is asserted in tests.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from support_agent.conversation import run_turn
from support_agent.crm.loader import load_retail
from support_agent.memory_store.hot import c360_key, get_hot_360, sync_hot_tier
from support_agent.services import Services
from support_agent.settings import Settings


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of samples, in milliseconds."""
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=None, redis_url=None)
        async with Services.open(settings) as svc:
            await load_retail(svc)
            await sync_hot_tier(svc, "retail")
            async with svc.pool.connection() as conn:
                rows = await (
                    await conn.execute(
                        "SELECT id, email FROM customers WHERE tenant_id='retail' ORDER BY id"
                    )
                ).fetchall()
            ids = [r["id"] for r in rows]
            rows_out = []

            hot = []
            for cid in ids:
                t = time.perf_counter()
                await get_hot_360(svc, "retail", cid)
                hot.append(time.perf_counter() - t)
            rows_out.append(("hot 360 load (Redis)", len(hot), hot))

            cold = []
            for cid in ids[:200]:
                await svc.redis.delete(c360_key("retail", cid))
                t = time.perf_counter()
                await get_hot_360(svc, "retail", cid)
                cold.append(time.perf_counter() - t)
            rows_out.append(("cold 360 load (PostgreSQL + re-warm)", len(cold), cold))

            turns = []
            messages = ["where is my order?", "the item I got is broken", "any update?"]
            for row in rows[:40]:
                session = f"bench-{uuid.uuid4().hex[:10]}"
                await run_turn(
                    svc,
                    tenant_id="retail",
                    channel="chat",
                    message=f"my email is {row['email']}",
                    session_id=session,
                )
                for message in messages:
                    t = time.perf_counter()
                    await run_turn(
                        svc, tenant_id="retail", channel="chat", message=message, session_id=session
                    )
                    turns.append(time.perf_counter() - t)
            rows_out.append(("turn latency, no LLM (8 nodes)", len(turns), turns))

            print(f"{'benchmark':40} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for name, n, samples in rows_out:
                print(
                    f"{name:40} {n:>5} {pct(samples, 0.5):8.2f} {pct(samples, 0.95):8.2f} "
                    f"{1000 * max(samples):8.2f}"
                )
            print(f"(mean turn {1000 * statistics.mean(turns):.1f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
