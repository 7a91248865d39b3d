"""The suites of ``support-agent eval``: each a dataset, a target and evaluators (see ``runner``).

==============  ===============================================================================
intents         CLINC150 trained on train + oos_train (+ our out-of-scope exposure set),
                measured on val + oos_val: accuracy, macro-F1, in-scope accuracy, out-of-scope
                recall, per intent, confusions, and the cross-validated estimates of the last two;
                Banking77 5-fold cross-validation accuracy (no database)
retrieval       bank knowledge queries (short ones and long multi-sentence descriptions) →
                relevant document ids: recall@k, nDCG@k, MRR for hybrid, semantic and keyword
conversations   τ²-bench retail train tasks with the scripted customer: exact writes, facts
                said, handoffs
consent         the labelled consent replies: approve precision and recall, accuracy (no
                database)
memory          the multi-session scenario families: carry, re-asks, stale, leaks, per family
trajectory      scripted conversations: each turn's node path (agentevals' graph trajectory
                strict match) and decision against the expected ones
==============  ===============================================================================

``fast=True`` gives each suite a small subset (for ``make test``): the figures of a fast run are
not the product's figures and its targets are not checked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.evaluation.runner import Row, Suite, SuiteOptions, Target

#: Every suite, in the order ``all`` runs them.
SUITES = ("intents", "consent", "retrieval", "trajectory", "conversations", "memory")
#: Suites that need the database (an open :class:`~support_agent.conversation.Agent`).
NEEDS_AGENT = frozenset({"retrieval", "conversations", "memory", "trajectory"})
#: The graph's eight nodes, the path of every turn (an answer to a proposal starts at
#: ``await_consent``).
TURN_PATH = ["identify", "load_360", "classify_intent", "retrieve_resolutions", "rank_actions",
             "policy_check", "respond_or_escalate", "write_memory"]  # fmt: skip


def _score(key: str, value: float | bool | None) -> dict[str, Any]:
    return {"key": key, "score": None if value is None else float(value)}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _outputs(rows: list[Row]) -> list[dict[str, Any]]:
    return [r.outputs for r in rows if r.outputs is not None]


# ---------------------------------------------------------------------------------------------
# consent


def consent_suite(options: SuiteOptions) -> Suite:
    """The consent reader on ``evals/consent.csv`` (reply, label, action)."""
    from support_agent.consent import evaluate, read_consent, read_labelled

    labelled = read_labelled(options.evals_dir / "consent.csv")

    async def target(inputs: dict[str, Any]) -> dict[str, Any]:
        return {"verdict": read_consent(inputs["reply"], inputs["action"]).verdict}

    def correct(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict[str, Any]:
        return _score("correct", (outputs or {}).get("verdict") == reference_outputs["label"])

    def no_false_approval(
        outputs: dict[str, Any], reference_outputs: dict[str, Any]
    ) -> dict[str, Any]:
        wrong = (outputs or {}).get("verdict") == "approve" != reference_outputs["label"]
        return _score("no_false_approval", not wrong)

    def summarize(rows: list[Row]) -> dict[str, Any]:
        return evaluate(
            [{"reply": r.inputs["reply"], "action": r.inputs["action"],
              "label": r.reference["label"]} for r in rows],
            verdicts=[(r.outputs or {}).get("verdict", "error") for r in rows],
        )  # fmt: skip

    return Suite(
        name="consent",
        description="The consent reader on 608 labelled replies to a proposed write.",
        examples=[
            ({"reply": r["reply"], "action": r["action"]}, {"label": r["label"]}) for r in labelled
        ],  # fmt: skip
        target=target,
        evaluators=[correct, no_false_approval],
        summarize=summarize,
        targets=(Target("approve_precision", ">=", 1.0), Target("approve_recall", ">=", 0.95)),
        max_concurrency=8,
    )


# ---------------------------------------------------------------------------------------------
# retrieval


#: The rankings the retrieval suite compares: ours (fused, and each list alone) and
#: langchain-postgres' PGVectorStore hybrid search.
MODES = ("hybrid", "semantic", "keyword", "pgvectorstore")


def _read_kind(path: Path, kind: str, limit: int | None) -> list[dict[str, Any]]:
    from support_agent.retrieval.evaluation import read_queries

    return [{**q, "kind": kind} for q in read_queries(path)[:limit]]


async def retrieval_suite(agent: Any, options: SuiteOptions) -> Suite:
    """Bank knowledge retrieval: short queries and long descriptions → relevant documents.

    Each query is ranked by our hybrid search, its semantic and keyword lists alone, and
    ``PGVectorStore`` (``evaluation/pgvectorstore.py``).
    """
    from support_agent.evaluation.pgvectorstore import PGVectorStoreRetriever
    from support_agent.retrieval.evaluation import mrr
    from support_agent.retrieval.evaluation import summarize as summarize_rankings
    from support_agent.retrieval.hybrid import hybrid_search

    tenant = options.tenant or "bank"
    limit = 10 if options.fast else None
    queries = _read_kind(options.evals_dir / "bank_retrieval_queries.jsonl", "short", limit)
    queries += _read_kind(options.evals_dir / "bank_retrieval_long.jsonl", "long", limit)
    await agent.deps(tenant).vertical.load(agent.services, tenant)
    services = agent.services
    store = PGVectorStoreRetriever(services, tenant)
    await store.open()

    async def target(inputs: dict[str, Any]) -> dict[str, Any]:
        vector = await asyncio.to_thread(services.embeddings.embed_query, inputs["query"])
        out: dict[str, Any] = {}
        for mode in ("hybrid", "semantic", "keyword"):
            hits = await hybrid_search(services, tenant, inputs["query"], vector,
                                       sources=("document",), limit=10, mode=mode)  # fmt: skip
            out[mode] = [h.id for h in hits]
        out["pgvectorstore"] = await store.search(inputs["query"], k=10)
        return out

    def recall_10(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict[str, Any]:
        relevant = set(reference_outputs["relevant_ids"])
        found = set(((outputs or {}).get("hybrid") or [])[:10])
        return _score("recall@10", len(found & relevant) / len(relevant))

    def reciprocal_rank(
        outputs: dict[str, Any], reference_outputs: dict[str, Any]
    ) -> dict[str, Any]:
        return _score("mrr", mrr([(outputs or {}).get("hybrid") or []],
                                 [reference_outputs]))  # fmt: skip

    def summarize(rows: list[Row]) -> dict[str, Any]:
        metrics: dict[str, Any] = {"n": len(rows)}
        for kind in ("all", "short", "long"):
            chosen = [r for r in rows if kind == "all" or r.inputs["kind"] == kind]
            if not chosen:
                continue
            refs = [r.reference for r in chosen]
            prefix = "" if kind == "all" else f"{kind}_"
            for mode in MODES:
                rankings = [(r.outputs or {}).get(mode) or [] for r in chosen]
                scores = {**summarize_rankings(rankings, refs), "mrr": mrr(rankings, refs)}
                mode_prefix = prefix + ("" if mode == "hybrid" else f"{mode}_")
                for key in ("recall@1", "recall@5", "recall@10", "ndcg@10", "mrr"):
                    metrics[f"{mode_prefix}{key}"] = scores[key]
            metrics[f"{prefix}n"] = len(chosen)
        return metrics

    return Suite(
        name="retrieval",
        description="Bank knowledge retrieval: short queries and multi-sentence descriptions.",
        examples=[
            ({"query": q["query"], "kind": q["kind"]}, {"relevant_ids": q["relevant_ids"]})
            for q in queries
        ],  # fmt: skip
        target=target,
        evaluators=[recall_10, reciprocal_rank],
        summarize=summarize,
        targets=(Target("short_recall@10", ">=", 0.85), Target("long_recall@10", ">=", 0.85)),
        plots=draw_retrieval,
        close=store.close,
    )


def draw_retrieval(metrics: dict[str, Any], _rows: list[Row], out: Path) -> list[Path]:
    """Recall@10 and nDCG@10 by query kind and mode, as grouped bars (``retrieval.png``)."""
    from support_agent.intents.evaluation import pyplot, save_figure

    plt = pyplot()
    kinds = [k for k in ("short", "long") if f"{k}_n" in metrics]
    modes = MODES
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key in zip(axes, ("recall@10", "ndcg@10"), strict=True):
        for i, mode in enumerate(modes):
            values = [metrics.get(f"{k}_{'' if mode == 'hybrid' else mode + '_'}{key}") or 0.0
                      for k in kinds]  # fmt: skip
            xs = [j + (i - 1.5) * 0.2 for j in range(len(kinds))]
            bars = ax.bar(xs, values, width=0.19, label=mode)
            for bar, v in zip(bars, values, strict=True):
                ax.text(bar.get_x() + bar.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center",
                        fontsize=8)  # fmt: skip
        ax.set_xticks(range(len(kinds)), [f"{k} (n={metrics[f'{k}_n']})" for k in kinds])
        ax.set_ylim(0, 1.1)
        ax.set_title(key)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Bank knowledge retrieval by query kind and mode")
    png = out / "retrieval.png"
    save_figure(plt, fig, png)
    return [png]


# ---------------------------------------------------------------------------------------------
# conversations


async def conversations_suite(agent: Any, options: SuiteOptions) -> Suite:
    """τ²-bench retail train tasks played by the scripted customer (customers reset after)."""
    tenant = options.tenant or "retail"
    from support_agent.evaluation.conversations import reset_customer, run_task, summarize
    from support_agent.verticals.retail.loader import read_db

    tasks_path = options.shared_data_dir / "tau2-retail" / "tasks_train.json"
    if not tasks_path.is_file():
        raise NotFoundError(f"tasks not found at {tasks_path}")
    tasks = json.loads(tasks_path.read_text())[: 3 if options.fast else None]
    by_id = {t["id"]: t for t in tasks}
    source = options.shared_data_dir / "tau2-retail" / "db.json.gz"
    db = read_db(source)
    await agent.deps(tenant).vertical.load(agent.services, tenant)
    touched: set[str] = set()

    async def target(inputs: dict[str, Any]) -> dict[str, Any]:
        record = await run_task(agent, tenant, by_id[inputs["task_id"]], db, source)
        touched.add(record["user_id"])
        return {**record, "node_ms": [t["node_ms"] for t in record["transcript"]]}

    def passed(outputs: dict[str, Any]) -> dict[str, Any]:
        return _score("passed", bool((outputs or {}).get("passed")))

    def no_unwanted_write(outputs: dict[str, Any]) -> dict[str, Any]:
        return _score("no_unwanted_write", outputs is not None and not outputs["unwanted"])

    def facts_said(outputs: dict[str, Any]) -> dict[str, Any]:
        facts = (outputs or {}).get("facts") or {}
        return _score("facts_said", sum(facts.values()) / len(facts) if facts else None)

    def summarize_rows(rows: list[Row]) -> dict[str, Any]:
        records = _outputs(rows)
        summary = summarize(records)
        summary["errors"] = len(rows) - len(records)
        return summary

    async def close() -> None:
        for user_id in sorted(touched):  # leave the tenant as loaded
            await reset_customer(agent, tenant, user_id, source)

    return Suite(
        name="conversations",
        description="τ²-bench retail train tasks with a scripted customer (no LLM).",
        examples=[({"task_id": t["id"]},
                   {"writes": [c["name"] for c in t["evaluation_criteria"]["actions"]]})
                  for t in tasks],  # fmt: skip
        target=target,
        evaluators=[passed, no_unwanted_write, facts_said],
        summarize=summarize_rows,
        targets=(Target("pass_rate_with_writes", ">=", 0.9),
                 Target("unwanted_write_tasks", "<=", 0), Target("facts_said_rate", ">=", 0.8)),
        close=close,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# memory


async def memory_suite(agent: Any, options: SuiteOptions) -> Suite:
    """The memory scenario families, ``memory_per_family`` conversations each (1 when fast)."""
    from support_agent.evaluation.memory_suite import FAMILIES, MemoryPlayer, summarize_memory

    for tenant in ("retail", "bank"):
        await agent.deps(tenant).vertical.load(agent.services, tenant)
    player = MemoryPlayer(agent)
    per_family = 1 if options.fast else options.memory_per_family

    async def target(inputs: dict[str, Any]) -> dict[str, Any]:
        conv = await player.play(inputs["family"])
        if conv is None:
            return {"skipped": True, "node_ms": []}
        return {**conv.__dict__, "skipped": False,
                "node_ms": [t["node_ms"] for t in conv.turns]}  # fmt: skip

    def passed(outputs: dict[str, Any]) -> dict[str, Any]:
        if not outputs or outputs.get("skipped"):
            return _score("passed", None if outputs else False)
        return _score("passed", not outputs["failures"])

    def no_leak(outputs: dict[str, Any]) -> dict[str, Any]:
        if not outputs or outputs.get("skipped"):
            return _score("no_leak", None)
        return _score("no_leak", outputs["counts"]["leaks"] == 0)

    def summarize(rows: list[Row]) -> dict[str, Any]:
        from support_agent.evaluation.memory_suite import Conversation

        played = [o for o in _outputs(rows) if not o.get("skipped")]
        done = [Conversation(family=o["family"], tenant=o["tenant"], customer=o["customer"],
                             turns=o["turns"], failures=o["failures"], counts=o["counts"])
                for o in played]  # fmt: skip
        summary = summarize_memory(done)
        summary["pass_rate"] = _mean([float(not c.failures) for c in done])
        summary["errors"] = sum(r.outputs is None for r in rows)
        return summary

    return Suite(
        name="memory",
        description="Multi-session memory scenario families with real customers.",
        examples=[
            ({"family": family, "index": n}, {"family": family})
            for family in FAMILIES
            for n in range(per_family)
        ],  # fmt: skip
        target=target,
        evaluators=[passed, no_leak],
        summarize=summarize,
        targets=(
            Target("pass_rate", ">=", 1.0),
            Target("leaks", "<=", 0),
            Target("stale", "<=", 0),
            Target("reask_rate", "<=", 0),
        ),  # fmt: skip
        close=player.close,
    )


# ---------------------------------------------------------------------------------------------
# trajectory


def read_trajectories(path: Path) -> list[dict[str, Any]]:
    """The scripted conversations of ``evals/trajectories.json``.

    Raises:
        InvalidRequestError: a conversation lacks ``id``, ``tenant`` or turns with ``say`` and
            ``decision``.
    """
    conversations = json.loads(path.read_text(encoding="utf-8")).get("conversations") or []
    for c in conversations:
        turns = c.get("turns") or []
        if (
            not c.get("id")
            or not c.get("tenant")
            or not turns
            or not all(
                isinstance(t.get("say"), str) and isinstance(t.get("decision"), str) for t in turns
            )
        ):
            raise InvalidRequestError(f"{path.name}: conversation {c.get('id')!r} is malformed")
    if not conversations:
        raise InvalidRequestError(f"{path.name}: no conversations")
    return list(conversations)


def expected_steps(turn: dict[str, Any]) -> list[str]:
    """A turn's expected node path: the eight nodes, after ``await_consent`` for an answer.

    A turn answering a proposed write resumes the run where it stopped for consent.
    """
    return (["await_consent"] if turn.get("answers_proposal") else []) + TURN_PATH


async def trajectory_suite(agent: Any, options: SuiteOptions) -> Suite:
    """Scripted conversations; node paths and decisions per turn against the expected ones."""
    from agentevals.graph_trajectory.strict import graph_trajectory_strict_match

    from support_agent.conversation import end_session, run_turn
    from support_agent.evaluation.conversations import reset_customer

    conversations = read_trajectories(options.evals_dir / "trajectories.json")
    conversations = conversations[:3] if options.fast else conversations
    for tenant in sorted({c["tenant"] for c in conversations}):
        await agent.deps(tenant).vertical.load(agent.services, tenant)
    touched: set[tuple[str, str]] = set()
    sources = {"retail": options.shared_data_dir / "tau2-retail" / "db.json.gz",
               "bank": options.shared_data_dir / "tau2-banking" / "db.json.gz"}  # fmt: skip

    async def target(inputs: dict[str, Any]) -> dict[str, Any]:
        tenant, session = inputs["tenant"], None
        steps, decisions, replies, node_ms = [], [], [], []
        for message in inputs["messages"]:
            result = await run_turn(agent, tenant_id=tenant, channel="chat", message=message,
                                    session_id=session)  # fmt: skip
            session = result.session_id
            if result.customer_id:
                touched.add((tenant, result.customer_id))
            steps.append(result.nodes)
            decisions.append(result.decision)
            replies.append({"reply": result.reply})
            node_ms.append(result.node_ms)
        if session is not None:
            await end_session(agent, tenant_id=tenant, session_id=session)
        return {"inputs": [{"message": m} for m in inputs["messages"]], "results": replies,
                "steps": steps, "decisions": decisions, "node_ms": node_ms}  # fmt: skip

    def trajectory_match(
        outputs: dict[str, Any], reference_outputs: dict[str, Any]
    ) -> dict[str, Any]:
        if not outputs:
            return _score("graph_trajectory_strict_match", False)
        result = graph_trajectory_strict_match(
            outputs={"inputs": outputs["inputs"], "results": outputs["results"],
                     "steps": outputs["steps"]},
            reference_outputs={"inputs": None, "results": [], "steps": reference_outputs["steps"]},
        )  # fmt: skip
        return _score("graph_trajectory_strict_match", bool(result["score"]))

    def decisions_match(
        outputs: dict[str, Any], reference_outputs: dict[str, Any]
    ) -> dict[str, Any]:
        got = (outputs or {}).get("decisions")
        return _score("decisions_match", got == reference_outputs["decisions"])

    def summarize(rows: list[Row]) -> dict[str, Any]:
        mismatches = [
            {"id": r.inputs["id"], "decisions": (r.outputs or {}).get("decisions"),
             "expected": r.reference["decisions"], "steps": (r.outputs or {}).get("steps")}
            for r in rows
            if r.scores.get("graph_trajectory_strict_match") != 1.0
            or r.scores.get("decisions_match") != 1.0
        ]  # fmt: skip
        return {
            "n": len(rows),
            "trajectory_match_rate": _mean(
                [r.scores.get("graph_trajectory_strict_match") or 0.0 for r in rows]
            ),
            "decision_match_rate": _mean([r.scores.get("decisions_match") or 0.0 for r in rows]),
            "turns": sum(len(r.inputs["messages"]) for r in rows),
            "mismatches": mismatches,
        }

    async def close() -> None:
        for tenant, customer in sorted(touched):
            await reset_customer(agent, tenant, customer, sources[tenant])

    return Suite(
        name="trajectory",
        description="Scripted conversations: node path and decision of every turn.",
        examples=[
            (
                {"id": c["id"], "tenant": c["tenant"], "messages": [t["say"] for t in c["turns"]]},
                {
                    "steps": [expected_steps(t) for t in c["turns"]],
                    "decisions": [t["decision"] for t in c["turns"]],
                },
            )
            for c in conversations
        ],  # fmt: skip
        target=target,
        evaluators=[trajectory_match, decisions_match],
        summarize=summarize,
        targets=(
            Target("trajectory_match_rate", ">=", 1.0),
            Target("decision_match_rate", ">=", 1.0),
        ),  # fmt: skip
        close=close,
    )


# ---------------------------------------------------------------------------------------------


SuiteBuilder = Callable[[Any, SuiteOptions], Awaitable[Suite]]


async def build_suite(name: str, agent: Any, options: SuiteOptions) -> Suite:
    """The suite called ``name``.

    Args:
        name: one of :data:`SUITES`.
        agent: an open :class:`~support_agent.conversation.Agent` (``None`` is enough for the
            suites outside :data:`NEEDS_AGENT`).
        options: data and output locations, subsets.

    Raises:
        InvalidRequestError: unknown suite, or a database suite without an agent.
        NotFoundError: a data file is missing.
    """
    if name not in SUITES:
        raise InvalidRequestError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    if name in NEEDS_AGENT and agent is None:
        raise InvalidRequestError(f"suite {name} needs the database")
    if name == "consent":
        return consent_suite(options)
    if name == "intents":
        from support_agent.evaluation.intents_suite import intents_suite

        return await asyncio.to_thread(intents_suite, options)
    builders: dict[str, SuiteBuilder] = {
        "retrieval": retrieval_suite,
        "conversations": conversations_suite,
        "memory": memory_suite,
        "trajectory": trajectory_suite,
    }
    return await builders[name](agent, options)
