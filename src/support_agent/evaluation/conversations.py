"""``support-agent eval conversations``: the agent on τ²-bench retail tasks, end to end.

For each task: the task's customer is reset (erased, then reloaded from ``db.json``), a
:class:`~support_agent.evaluation.customer.ScriptedCustomer` holds a chat session with the agent
through :func:`~support_agent.conversation.run_turn` (the code path of ``/v1/chat``), and the run
compares the customer's records afterwards with the expected end state (the task's write calls
replayed on a copy of the database, :mod:`support_agent.evaluation.world`). Facts the task says
the agent must state (``communicate_info``) are looked for in the agent's replies. Every customer
touched is reset again at the end, so the tenant is left as loaded.

Note: resetting erases the task customers' sessions and memory in the tenant it runs on; run it on
an evaluation database, not a production one.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

from support_agent.conversation import Agent, TurnResult, run_turn
from support_agent.errors import NotFoundError
from support_agent.evaluation.customer import ScriptedCustomer
from support_agent.evaluation.world import (
    WRITE_TOOLS,
    actual_view,
    differences,
    expected_view,
    replay,
)
from support_agent.memory_store.erasure import erase_customer
from support_agent.memory_store.hot import refresh_features
from support_agent.verification.codes import wait_for_sends
from support_agent.verticals.bank.loader import load_bank_crm
from support_agent.verticals.retail.loader import load_retail, read_db

logger = logging.getLogger(__name__)

MAX_TURNS = 40  # per task, a guard against loops


def task_user(task: dict[str, Any], db: dict[str, Any]) -> str:
    """The task's customer id.

    From its expected calls (user id, an order, email, name + zip) or, when it expects none,
    from its known info.

    Raises:
        NotFoundError: the calls name no customer.
    """
    for call in task["evaluation_criteria"]["actions"]:
        args = call["arguments"]
        if "user_id" in args and args["user_id"] in db["users"]:
            return str(args["user_id"])
        if "order_id" in args and args["order_id"] in db["orders"]:
            return str(db["orders"][args["order_id"]]["user_id"])
        for uid, user in db["users"].items():
            if args.get("email") == user["email"] or (
                args.get("zip") == user["address"]["zip"]
                and args.get("first_name") == user["name"]["first_name"]
                and args.get("last_name") == user["name"]["last_name"]
            ):
                return str(uid)
    known = task["user_scenario"]["instructions"].get("known_info") or ""
    for uid, user in db["users"].items():  # no calls: what the customer knows of themselves
        name = f"{user['name']['first_name']} {user['name']['last_name']}"
        if uid in known or (name in known and user["address"]["zip"] in known):
            return str(uid)
    raise NotFoundError(f"task {task['id']} names no customer")


async def reset_customer(agent: Agent, tenant_id: str, user_id: str, source: Path) -> None:
    """Erase one customer everywhere; reload their records and online features.

    Leaves the customer as ``support-agent load`` does: records from the tenant's data file
    (``source`` for a retail tenant, Rho-Bank's ``db.json.gz`` for a bank tenant), features in
    the online feature store (the hot 360 is rebuilt on the next read).

    Raises:
        NotFoundError: the tenant's vertical has no per-customer reload (neither retail nor bank).
    """
    vertical = agent.services.tenants.config(tenant_id).vertical.name
    if vertical not in ("retail", "bank"):
        raise NotFoundError(f"no per-customer reload for the {vertical!r} vertical")
    try:
        await erase_customer(agent.services, tenant_id, user_id)
    except NotFoundError:
        pass  # not loaded yet: nothing to erase
    if vertical == "bank":
        await load_bank_crm(agent.services, tenant_id, users={user_id})
    else:
        await load_retail(agent.services, tenant_id, source, users={user_id})
    await refresh_features(agent.services, tenant_id, [user_id])


def _norm(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3})", "", text).lower()


def fact_said(fact: str, replies: list[str]) -> bool:
    """Whether a fact (``"8276.23"``, ``"polyester"``) appears in the agent's replies.

    Numbers match with or without thousands separators and trailing zeros ("180.1" and
    "$180.10").
    """
    said = _norm(" ".join(replies))
    if re.fullmatch(r"\d+(\.\d+)?", fact):
        value = float(fact)
        return any(abs(float(n) - value) < 0.005 for n in re.findall(r"\d+(?:\.\d+)?", said))
    return _norm(fact) in said


async def run_task(
    agent: Agent, tenant_id: str, task: dict[str, Any], db: dict[str, Any], source: Path
) -> dict[str, Any]:
    """One task, end to end; the per-task record of the report (transcript included)."""
    calls = task["evaluation_criteria"]["actions"]
    writes = [c for c in calls if c["name"] in WRITE_TOOLS]
    user_id = task_user(task, db)
    await reset_customer(agent, tenant_id, user_id, source)
    settings = agent.services.settings
    mailbox = settings.code_outbox or settings.data_dir / "outbox" / "codes.jsonl"
    customer = ScriptedCustomer(task, db, user_id, mailbox)
    transcript: list[dict[str, Any]] = []
    session: str | None = None
    handed_off = False
    turns = 0

    async def say(text: str) -> TurnResult:
        nonlocal session, handed_off, turns
        turns += 1
        result = await run_turn(agent, tenant_id=tenant_id, channel="chat", message=text,
                                session_id=session)  # fmt: skip
        session = result.session_id
        handed_off = handed_off or result.handoff is not None
        transcript.append({"customer": text, "agent": result.reply, "intent": result.intent,
                           "decision": result.decision, "approval": result.approval,
                           "actions": result.actions, "node_ms": result.node_ms})  # fmt: skip
        return result

    result = await say(customer.identify())
    if "6-digit code" in result.reply:  # verified by the code sent to the email on file
        await wait_for_sends()
        if (code := customer.code()) is not None:
            result = await say(f"The code is {code}.")
    consents: list[dict[str, Any]] = []
    for n, call in enumerate(writes):
        if handed_off or turns >= MAX_TURNS:
            break
        result = await say(customer.request(call))
        asked = 0
        while not handed_off and turns < MAX_TURNS:
            if result.approval is not None:
                ok = customer.consents_to(result.approval, call)
                consents.append({"call": n, "approved": ok,
                                 "proposed": result.approval["action_requests"]})  # fmt: skip
                result = await say("yes" if ok else "no")
                if ok:
                    break
                asked += 1
                if asked > 2:
                    break
                result = await say(customer.request(call, detailed=True))
                continue
            answer = customer.answer(result.reply, call, asked)
            if answer is None:
                break
            asked += 1
            result = await say(answer)
    for question in customer.questions(everything=not writes):
        if handed_off or turns >= MAX_TURNS:
            break
        result = await say(question)
        if result.approval is not None:  # nothing more was asked for: decline
            consents.append({"call": None, "approved": False,
                             "proposed": result.approval["action_requests"]})  # fmt: skip
            result = await say("no")

    base = expected_view(db, user_id)
    world, rejected = replay(db, calls)
    want = expected_view(world, user_id)
    got = await actual_view(agent.services, tenant_id, user_id)
    diff = differences(got, want, base)
    replies = [t["agent"] for t in transcript]
    facts = task["evaluation_criteria"].get("communicate_info") or []
    expects_handoff = any(c["name"] == "transfer_to_human_agents" for c in calls)
    return {
        "id": task["id"],
        "user_id": user_id,
        "writes": [c["name"] for c in writes],
        "passed": not diff["missing"] and not diff["unwanted"],
        "missing": diff["missing"],
        "unwanted": diff["unwanted"],
        "expects_handoff": expects_handoff,
        "handed_off": handed_off,
        "facts": {f: fact_said(f, replies) for f in facts},
        "refused_in_replay": rejected,
        "consents": consents,
        "turns": turns,
        "transcript": transcript,
        "state": {"want": {k: _at(want, k) for k in diff["missing"]},
                  "got": {k: _at(got, k) for k in diff["missing"] + diff["unwanted"]}},
    }  # fmt: skip


def _at(view: dict[str, Any], path: str) -> Any:
    for key in path.split("/", 1):
        view = (view or {}).get(key)  # type: ignore[assignment]
    return view


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's report.

    Returns:
        ``{n_tasks, pass_rate, pass_rate_with_writes, by_action, handoff_when_expected,
        handoff_when_not_expected, unwanted_write_tasks, facts_said_rate, failures}``; rates
        are fractions in [0, 1] (``None`` when nothing to count).
    """

    def rate(hits: int, total: int) -> float | None:
        return round(hits / total, 3) if total else None

    with_writes = [r for r in records if r["writes"]]
    by_action: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    passes: Counter[str] = Counter()
    for r in with_writes:
        for name in set(r["writes"]):
            counts[name] += 1
            passes[name] += r["passed"]
    for name in sorted(counts):
        by_action[name] = {"tasks": counts[name], "pass_rate": rate(passes[name], counts[name])}
    expected = [r for r in records if r["expects_handoff"]]
    unexpected = [r for r in records if not r["expects_handoff"]]
    facts = [ok for r in records for ok in r["facts"].values()]
    return {
        "n_tasks": len(records),
        "pass_rate": rate(sum(r["passed"] for r in records), len(records)),
        "pass_rate_with_writes": rate(sum(r["passed"] for r in with_writes), len(with_writes)),
        "by_action": by_action,
        "handoff_when_expected": rate(sum(r["handed_off"] for r in expected), len(expected)),
        "handoff_when_not_expected": rate(
            sum(r["handed_off"] for r in unexpected), len(unexpected)
        ),
        "unwanted_write_tasks": sum(bool(r["unwanted"]) for r in records),
        "facts_said_rate": rate(sum(facts), len(facts)),
        "failures": [
            {
                "id": r["id"],
                "missing": r["missing"],
                "unwanted": r["unwanted"],
                "handed_off": r["handed_off"],
            }
            for r in records
            if not r["passed"]
        ],  # fmt: skip
    }


async def evaluate_conversations(
    agent: Agent,
    tenant_id: str,
    tasks_path: Path,
    out_dir: Path,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """Run the tasks of ``tasks_path`` and write ``report.json`` and one transcript per task.

    Args:
        agent: the open agent.
        tenant_id: a retail tenant (its records are the τ² database).
        tasks_path: τ² ``tasks_*.json``.
        out_dir: where ``report.json`` and ``task-<id>.json`` go (created).
        only: run only these task ids.

    Returns:
        The summary (:func:`summarize`).

    Raises:
        NotFoundError: the tasks file or the retail data does not exist.
    """
    if not tasks_path.is_file():
        raise NotFoundError(f"tasks not found at {tasks_path}")
    tasks = json.loads(tasks_path.read_text())
    if only:
        tasks = [t for t in tasks if t["id"] in only]
    source = agent.services.settings.shared_data_dir / "tau2-retail" / "db.json.gz"
    db = read_db(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, touched = [], set()
    for task in tasks:
        record = await run_task(agent, tenant_id, task, db, source)
        touched.add(record["user_id"])
        records.append(record)
        (out_dir / f"task-{task['id']}.json").write_text(json.dumps(record, indent=1, default=str))
        logger.info("eval_task", extra={"task": task["id"], "passed": record["passed"]})
    for user_id in sorted(touched):  # leave the tenant as loaded
        await reset_customer(agent, tenant_id, user_id, source)
    summary = summarize(records)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=1))
    return summary
