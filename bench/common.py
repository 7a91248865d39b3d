"""What the benchmarks share: quantiles, a throwaway agent with the retail tenant loaded."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from support_agent.conversation import Agent
from support_agent.memory_store.hot import sync_hot_tier
from support_agent.settings import Settings
from support_agent.verticals.retail.loader import load_retail


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of samples in seconds, returned in milliseconds."""
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@asynccontextmanager
async def retail_agent() -> AsyncIterator[tuple[Agent, Path]]:
    """``(agent, data_dir)``: embedded PostgreSQL and Redis in a temporary ``DATA_DIR`` (removed
    on exit), the retail data loaded and its hot tier warmed."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=None, redis_url=None)
        async with Agent.open(settings) as agent:
            await load_retail(agent.services)
            await sync_hot_tier(agent.services, "retail")
            yield agent, Path(tmp)
