"""retrieve_resolutions: past resolutions of similar cases and this customer's related episodes.

Semantic search with pgvector: the message embedding against ``resolution_records`` of the tenant,
and against the customer's episode summaries in the long-term store. A bare "yes"/"no" answering a
proposal keeps the previous turn's results.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context
from support_agent.memory_store.episodes import search_episodes
from support_agent.nodes._text import last_customer_text
from support_agent.resolutions import search_resolutions
from support_agent.services import get_services
from support_agent.state import State


async def retrieve_resolutions(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Retrieve resolution records and episodes for the latest message.

    Returns:
        ``resolutions``: records (``kind="resolution"``: id, intent, title, resolution, actions,
        success_rate, similarity) followed by episodes (``kind="episode"``: id, summary,
        outcome, score). Empty for an empty message.
    """
    text = last_customer_text(state.get("messages"))
    signals = state.get("signals") or {}
    if state.get("pending_action") and signals.get("confirmation"):
        return {}
    if not text.strip():
        return {"resolutions": []}
    services = await get_services()
    tenant_id = runtime.context.tenant_id
    vector = await asyncio.to_thread(services.embeddings.embed_query, text)
    records = await search_resolutions(services, tenant_id, vector, k=3)
    found: list[dict[str, Any]] = [{"kind": "resolution", **r} for r in records]
    customer_id = state.get("customer_id")
    if customer_id and state.get("authenticated") and runtime.store is not None:
        for ep in await search_episodes(runtime.store, tenant_id, customer_id, text, limit=3):
            found.append(
                {
                    "kind": "episode",
                    "id": ep["id"],
                    "summary": ep["summary"],
                    "outcome": ep.get("outcome"),
                    "score": ep.get("score"),
                }
            )
    return {"resolutions": found}
