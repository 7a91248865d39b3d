"""rank_actions: next-best-action ranking of the candidate actions, every score explained.

The candidates are the actions the tenant's ranking table gives the intent (plus a human and
general help, the follow-up of an open issue, the proposal being answered, and the retention offer
made in this session when the customer is at risk), kept to those the tenant's policy declares.
The tenant's vertical resolves what each is about (``Vertical.resolve_targets``); the formula and
its terms are ``ranking.score_candidate``.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context, turn_of
from support_agent.ranking import reference_clv, score_candidate
from support_agent.state import Candidate, State
from support_agent.verticals.protocol import Turn

FOLLOW_UP = "follow_up_open_issue"


def _answering(this: Turn) -> bool:
    """The customer answers the pending proposal (a "yes", or the detail it asked for)."""
    signals = this.signals
    return this.pending is not None and (
        signals.get("confirmation") == "yes" or bool(signals.get("answers_pending"))
    )


def candidate_names(this: Turn) -> set[str]:
    """The actions worth scoring this turn (before the policy's declared list filters them)."""
    ranking, retention = this.deps.config.ranking, this.deps.policy.retention
    names = ranking.candidates(this.intent)
    apply = retention.apply_action
    if apply is not None and not this.state.get("offer"):
        names.discard(apply)  # only an offer made in this session can be applied
    elif apply is not None and (
        this.signals.get("churn_threat") or this.intent in retention.at_risk_intents
    ):
        names.add(apply)
    if this.open_issue:
        names.add(FOLLOW_UP)
    if _answering(this) and this.pending is not None:
        names.add(this.pending["action"])
    return names


def _continues(name: str, this: Turn) -> bool:
    """The action continues the customer's open issue, or the proposal being answered."""
    pending = this.pending
    if _answering(this) and pending is not None and name == pending["action"]:
        return True
    return (
        name == FOLLOW_UP
        and this.open_issue is not None
        and this.intent in this.deps.config.ranking.follow_up_intents
        and not this.deps.vertical.names_subject(this.entities)
    )


async def rank_actions(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Rank the candidate next-best-actions for this turn.

    Returns:
        ``candidates``: ``[{"action", "score", "terms", "weights", "target"}]``, best first.
    """
    this = turn_of(state, runtime)
    config, policy, vertical = this.deps.config, this.deps.policy, this.deps.vertical
    features = this.memory.get("features") or {}
    value = min(1.0, max(0.0, float(features.get("clv", 0.0))) / reference_clv(config))
    churn = min(1.0, max(0.0, float(features.get("churn_propensity", 0.0))))
    rules = {n: policy.actions[n] for n in sorted(candidate_names(this)) if n in policy.actions}
    targets = await vertical.resolve_targets(rules, this)
    confidence = float(state.get("intent_confidence", 0.0))
    candidates: list[Candidate] = []
    for name, rule in rules.items():
        target = targets[name]
        continues = _continues(name, this)
        answering = continues and _answering(this)
        prior = 1.0 if answering else vertical.prior(name, this)
        scored = score_candidate(
            name,
            weights=config.ranking.weights,
            affinity=config.ranking.affinity(this.intent, name) if prior is None else prior,
            confidence=confidence,
            resolutions=state.get("resolutions") or [],
            continues_memory=continues,
            frustration=float(this.signals.get("frustration", 0.0)),
            human_request=bool(this.signals.get("human_request")),
            value=value,
            churn=churn,
            retention_action=policy.retention.apply_action,
            eligibility=1.0
            if vertical.eligible(name, rule, target)
            else config.ranking.ineligible_factor,
        )
        candidates.append({"action": name, **scored, "target": target})  # type: ignore[typeddict-item]
    candidates.sort(key=lambda c: (-c["score"], c["action"]))
    return {"candidates": candidates}
