"""retrieve_resolutions: past resolutions of similar cases.

Semantic search with pgvector: the message embedding against the tenant's ``resolution_records``.
(The customer's own relevant episodes are loaded by ``load_360`` with the rest of their memory.) A
bare "yes"/"no" answering a proposal keeps the previous turn's results.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context
from support_agent.nodes._text import last_customer_text
from support_agent.resolutions import search_resolutions
from support_agent.services import get_services
from support_agent.state import State


async def retrieve_resolutions(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Retrieve resolution records and episodes for the latest message.

    Returns:
        ``resolutions``: records (``kind="resolution"``: id, intent, title, resolution, actions,
        success_rate, similarity), most similar first. Empty for an empty message.
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
    return {"resolutions": [{"kind": "resolution", **r} for r in records]}
