"""retrieve_resolutions and rank_actions: relevant records found; scores follow the formula."""

from __future__ import annotations

from typing import Any

import pytest

from support_agent.conversation import Agent
from support_agent.ranking import score_candidate as ranking_score
from support_agent.retrieval.hybrid import hybrid_search
from support_agent.services import Services
from support_agent.tenants import RankingConfig
from tests.conftest import PACKS, customer_with, new_session, proof, say

RETAIL = PACKS.config("retail").ranking
BANK = PACKS.config("bank").ranking
WEIGHTS = RETAIL.weights.as_dict()


def score_candidate(
    action: str, *, intent: str, ranking: RankingConfig = RETAIL, **terms: Any
) -> dict[str, Any]:
    """The formula with a tenant's weights and its affinity of ``intent`` for ``action``."""
    return ranking_score(action, weights=ranking.weights, affinity=ranking.affinity(intent, action),
                         retention_action="apply_retention_offer", **terms)  # fmt: skip


async def test_resolution_search_finds_the_matching_case(services: Services) -> None:
    query = "I want to cancel, I bought it by accident"
    vector = services.embeddings.embed_query(query)
    hits = await hybrid_search(
        services, "retail", query, vector, sources=("resolution",), limit=3, mode="semantic"
    )
    assert hits[0].id == "res-retail-004"
    # semantic ranks follow cosine similarity; the final order also weighs effectiveness
    by_similarity = sorted(hits, key=lambda h: -(h.similarity or 0.0))
    ranks = [h.ranks["semantic"] for h in by_similarity]
    assert ranks == sorted(ranks)
    assert await hybrid_search(services, "other", query, vector, sources=("resolution",)) == []


def test_score_is_the_documented_weighted_sum() -> None:
    resolutions = [
        {"kind": "resolution", "actions": ["return_items"], "similarity": 0.6, "success_rate": 0.8},
        {"kind": "resolution", "actions": ["return_items"], "similarity": 0.3, "success_rate": 0.9},
    ]
    out = score_candidate(
        "return_items",
        intent="return",
        confidence=0.9,
        resolutions=resolutions,
        continues_memory=True,
        frustration=0.0,
        human_request=False,
        value=0.0,
    )
    assert out["terms"] == {
        "fit": 0.9, "evidence": 0.48, "memory": 1.0, "urgency": 0.0, "retention": 0.0
    }  # fmt: skip
    assert out["score"] == pytest.approx(0.45 * 0.9 + 0.20 * 0.48 + 0.15 * 1.0)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_retention_term_is_churn_times_value_for_offers_only() -> None:
    def score(action: str, churn: float, value: float) -> dict[str, Any]:
        return score_candidate(
            action, intent="terminate_account", confidence=0.8, resolutions=[],
            continues_memory=False, frustration=0.0, human_request=False, value=value,
            churn=churn, ranking=BANK,
        )  # fmt: skip

    at_risk = score("apply_retention_offer", churn=0.7, value=0.5)
    assert at_risk["terms"]["retention"] == pytest.approx(0.35)
    assert at_risk["terms"]["fit"] == pytest.approx(0.8)  # Banking77 terminate_account → 1.0
    assert at_risk["score"] == pytest.approx(
        sum(at_risk["weights"][k] * v for k, v in at_risk["terms"].items())
    )
    safe = score("apply_retention_offer", churn=0.1, value=0.5)
    assert safe["score"] < at_risk["score"]
    assert score("answer_from_knowledge", churn=0.7, value=1.0)["terms"]["retention"] == 0.0


def test_escalation_urgency_grows_with_value() -> None:
    low = score_candidate(
        "escalate_to_human",
        intent="complaint",
        confidence=1.0,
        resolutions=[],
        continues_memory=False,
        frustration=0.8,
        human_request=False,
        value=0.0,
    )
    high = score_candidate(
        "escalate_to_human",
        intent="complaint",
        confidence=1.0,
        resolutions=[],
        continues_memory=False,
        frustration=0.8,
        human_request=False,
        value=1.0,
    )
    assert low["terms"]["urgency"] == pytest.approx(0.4)
    assert high["terms"]["urgency"] == pytest.approx(0.8)
    assert high["score"] > low["score"]


async def test_ranked_candidates_are_explained_and_sorted(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered")
    session = new_session()
    await say(agent, session, proof(cust))
    await say(agent, session, f"the {cust['item']} I got arrived broken")
    state = (
        await agent.graph.aget_state({"configurable": {"thread_id": f"retail:{session}"}})
    ).values
    candidates = state["candidates"]
    scores = [c["score"] for c in candidates]
    assert scores == sorted(scores, reverse=True)
    for cand in candidates:
        expected = sum(cand["weights"][k] * v for k, v in cand["terms"].items())
        assert cand["score"] == pytest.approx(expected, abs=1e-3)
    assert candidates[0]["action"] in ("return_items", "exchange_items")
    assert candidates[0]["target"]["id"] == cust["order_id"]
    assert candidates[0]["target"]["kind"] == "order"
    assert any(r["kind"] == "resolution" for r in state["resolutions"])


def test_ineligible_target_halves_fit_so_the_allowed_action_ranks_first() -> None:
    def score(action: str, eligibility: float) -> float:
        out = score_candidate(
            action, intent="exchange", confidence=0.8, resolutions=[], continues_memory=False,
            frustration=0.0, human_request=False, value=0.0, eligibility=eligibility,
        )  # fmt: skip
        return float(out["terms"]["fit"])

    assert score("exchange_items", 1.0) == pytest.approx(0.8)
    # a pending order: the exchange is ruled out, the item change (affinity 0.6) is not
    assert score("exchange_items", 0.5) == pytest.approx(0.4)
    assert score("modify_order", 1.0) == pytest.approx(0.48)
    assert score("modify_order", 1.0) > score("exchange_items", 0.5)


async def test_an_introduction_or_a_goodbye_searches_nothing(
    services: Services, agent: Agent
) -> None:
    cust = await customer_with(services, "delivered")
    session = new_session()
    config: Any = {"configurable": {"thread_id": f"retail:{session}"}}
    hello = await say(agent, session, f"Hi, {proof(cust)}")
    assert hello.intent == "other" and hello.signals["nothing_asked"]
    assert (await agent.graph.aget_state(config)).values["resolutions"] == []
    asked = await say(agent, session, "how long does shipping usually take")
    assert not asked.signals.get("nothing_asked") and asked.decision == "respond"
    assert (await agent.graph.aget_state(config)).values["resolutions"] != []
    bye = await say(agent, session, "Perfect, thanks a lot. Bye!")
    assert bye.signals["nothing_asked"] and "welcome" in bye.reply.lower()
    assert (await agent.graph.aget_state(config)).values["resolutions"] == []
    # thanks with a request in it is a request
    more = await say(agent, session, "thanks, and where is my other order")
    assert not more.signals.get("nothing_asked")
