"""Per-turn and per-conversation costs for capacity planning (``docs/capacity.md``).

Plays retail conversations in-process (no LLM) on a throwaway ``DATA_DIR`` with embedded
PostgreSQL and Redis, ends them, lets the memory worker apply their jobs, and prints what one turn
and one conversation cost: API-process CPU, rows inserted and bytes grown per PostgreSQL table
(``pg_stat_user_tables``, ``pg_total_relation_size``), Redis commands (``INFO commandstats``)
and Redis memory per hot customer, store items and vectors per episode.

Run: ``python bench/capacity.py [--conversations N]`` (default 40, about 2 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from common import retail_agent

from support_agent.conversation import end_session, run_turn
from support_agent.memory_store.pipeline import MemoryWorker
from support_agent.services import Services

SCRIPT = ("where is my order?", "the item I got is broken", "any update?")


async def _tables(svc: Services) -> dict[str, tuple[int, int]]:
    """``{table: (rows inserted so far, total bytes)}`` of every user table."""
    async with svc.pool.connection() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        rows = await (
            await conn.execute(
                "SELECT relname, n_tup_ins, pg_total_relation_size(relid) AS bytes"
                " FROM pg_stat_user_tables"
            )
        ).fetchall()
    return {r["relname"]: (int(r["n_tup_ins"]), int(r["bytes"])) for r in rows}


async def _redis_calls(svc: Services) -> int:
    stats: Any = await svc.redis.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


async def main(conversations: int) -> None:
    """Measure and print (see the module docstring)."""
    async with retail_agent() as (agent, _):
        svc = agent.services
        async with svc.pool.connection() as conn:
            emails = [r["email"] for r in await (await conn.execute(
                "SELECT email FROM customers WHERE tenant_id='retail' ORDER BY id LIMIT %s",
                (conversations + 5,))).fetchall()]  # fmt: skip
        for email in emails[:5]:  # warm-up: models loaded (the worker's language detector
            session = f"warm-{uuid.uuid4().hex[:10]}"  # too), caches filled
            for message in (f"my email is {email}", *SCRIPT):
                await run_turn(agent, tenant_id="retail", channel="chat", message=message,
                               session_id=session)  # fmt: skip
            await end_session(agent, tenant_id="retail", session_id=session)
        await MemoryWorker(svc, backoff_base_s=0.0).drain(timeout_s=120)
        tables, calls = await _tables(svc), await _redis_calls(svc)
        cpu, turns, sessions = time.process_time(), 0, []
        for email in emails[5:]:
            session = f"cap-{uuid.uuid4().hex[:10]}"
            for message in (f"my email is {email}", *SCRIPT):
                await run_turn(agent, tenant_id="retail", channel="chat", message=message,
                               session_id=session)  # fmt: skip
                turns += 1
            sessions.append(session)
        turn_cpu = (time.process_time() - cpu) / turns
        after_turns, calls_turns = await _tables(svc), await _redis_calls(svc)
        cpu = time.process_time()
        for session in sessions:
            await end_session(agent, tenant_id="retail", session_id=session)
        await MemoryWorker(svc, backoff_base_s=0.0).drain(timeout_s=300)
        end_cpu = (time.process_time() - cpu) / len(sessions)
        after_end, calls_end = await _tables(svc), await _redis_calls(svc)
        memory: Any = await svc.redis.info("memory")
        keys = await svc.redis.dbsize()

    def delta(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]], per: int) -> None:
        for name in sorted(b, key=lambda n: -(b[n][1] - a.get(n, (0, 0))[1])):
            rows = (b[name][0] - a.get(name, (0, 0))[0]) / per
            grown = (b[name][1] - a.get(name, (0, 0))[1]) / per
            if rows or grown:
                print(f"  {name:32} {rows:8.2f} rows {grown:10.0f} bytes")

    print(f"\n{turns} turns in {len(sessions)} conversations (retail, no LLM)")
    print(f"API-process CPU per turn: {1000 * turn_cpu:.1f} ms; per session end + memory job:"
          f" {1000 * end_cpu:.1f} ms")  # fmt: skip
    print(f"Redis commands per turn: {(calls_turns - calls) / turns:.1f}; per session end + job:"
          f" {(calls_end - calls_turns) / len(sessions):.1f}")  # fmt: skip
    print(f"Redis memory: {int(memory['used_memory'])} bytes for {keys} keys"
          f" ({int(memory['used_memory']) / max(1, keys):.0f} bytes a key)")  # fmt: skip
    print("PostgreSQL per turn (rows inserted, bytes grown incl. indexes and TOAST):")
    delta(tables, after_turns, turns)
    print("PostgreSQL per conversation end + memory job:")
    delta(after_turns, after_end, len(sessions))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=40)
    asyncio.run(main(parser.parse_args().conversations))
