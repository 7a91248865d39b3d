"""retrieve_resolutions: past resolutions, knowledge documents and offers for the message.

Hybrid retrieval (``retrieval.hybrid``): pgvector similarity and PostgreSQL full-text search over
the tenant's resolution records, knowledge documents and offers, fused by reciprocal rank fusion,
with resolution records weighted by their success rate. (The customer's own relevant episodes are
loaded by ``load_360`` with the rest of their memory.) A bare "yes"/"no" answering a proposal keeps
the previous turn's results.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context, turn_of
from support_agent.intents.signals import without_identifiers
from support_agent.retrieval.hybrid import hybrid_search
from support_agent.state import State

#: Hits kept per kind: resolution records feed the ranking's evidence, documents the answer,
#: offers the retention step.
QUOTA = {"resolution": 3, "document": 3, "offer": 2}


async def retrieve_resolutions(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Retrieve resolution records and episodes for the latest message.

    Returns:
        ``resolutions``: up to 8 hits (at most :data:`QUOTA` of each kind, so 698 knowledge
        documents cannot crowd out the few resolution records), best first, each ``{kind, id,
        score, ranks, similarity, title, text, ...}`` (resolutions add intent, actions,
        success_rate). Empty for an empty message, an introduction or an ending.
    """
    this = turn_of(state, runtime)
    if this.pending and this.signals.get("confirmation"):
        return {}
    if not this.text.strip() or this.signals.get("nothing_asked"):
        return {"resolutions": []}  # an introduction or a goodbye: nothing to search for
    services = this.deps.services
    query = without_identifiers(this.text)  # the same search whoever's email came with it
    vector = await asyncio.to_thread(services.embeddings.embed_query, query)
    hits = await hybrid_search(services, this.tenant_id, query, vector, per_kind=QUOTA)
    return {"resolutions": [hit.as_dict() for hit in hits]}
