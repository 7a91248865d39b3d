"""The conversation evaluation on τ²-bench retail tasks: its world replay, its scripted customer,
and a real run on two train tasks against the embedded PostgreSQL and Redis."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from support_agent.conversation import Agent
from support_agent.evaluation.conversations import evaluate_conversations, fact_said, task_user
from support_agent.evaluation.customer import ScriptedCustomer, to_first_person
from support_agent.evaluation.world import actual_view, differences, expected_view, replay
from support_agent.memory_store.hot import features_key
from support_agent.settings import Settings

TASKS = "tau2-retail/tasks_train.json"


def _db(settings: Settings) -> dict[str, Any]:
    path = settings.shared_data_dir / "tau2-retail" / "db.json.gz"
    return dict(json.loads(gzip.decompress(path.read_bytes())))


def _tasks(settings: Settings) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in json.loads((settings.shared_data_dir / TASKS).read_text())}


def test_replay_cancel_refunds_every_payment(settings: Settings) -> None:
    db = _db(settings)
    order_id = next(o for o, v in db["orders"].items() if v["status"] == "pending")
    paid = db["orders"][order_id]["payment_history"]
    call = {"name": "cancel_pending_order",
            "arguments": {"order_id": order_id, "reason": "no longer needed"}}  # fmt: skip
    world, rejected = replay(db, [call])
    order = world["orders"][order_id]
    assert rejected == [] and order["status"] == "cancelled"
    assert order["cancel_reason"] == "no longer needed"
    refunds = [p for p in order["payment_history"] if p["transaction_type"] == "refund"]
    assert sorted(p["amount"] for p in refunds) == sorted(p["amount"] for p in paid)
    assert db["orders"][order_id]["status"] == "pending"  # the input is a copy, untouched


def test_replay_refuses_what_the_tools_refuse(settings: Settings) -> None:
    """Task 105 expects an exchange a $17 gift card cannot pay the $21.10 difference of."""
    db, task = _db(settings), _tasks(settings)["105"]
    world, rejected = replay(db, task["evaluation_criteria"]["actions"])
    assert rejected and "gift card" in rejected[0]
    user = task_user(task, db)
    assert expected_view(world, user) == expected_view(db, user)  # nothing changes
    delivered = next(o for o, v in db["orders"].items() if v["status"] == "delivered")
    _, refused = replay(
        db,
        [
            {
                "name": "cancel_pending_order",
                "arguments": {"order_id": delivered, "reason": "no longer needed"},
            }
        ],
    )
    assert refused == ["cancel_pending_order: non-pending order"]


def test_differences_tell_missing_from_unwanted() -> None:
    base = {"address": {}, "balances": {}, "orders": {"#W1": {"status": "pending"},
                                                      "#W2": {"status": "pending"}}}  # fmt: skip
    want = {**base, "orders": {**base["orders"], "#W1": {"status": "cancelled"}}}
    assert differences(want, want, base) == {"missing": [], "unwanted": []}
    assert differences(base, want, base) == {"missing": ["orders/#W1"], "unwanted": []}
    extra = {**want, "orders": {**want["orders"], "#W2": {"status": "cancelled"}}}
    assert differences(extra, want, base) == {"missing": [], "unwanted": ["orders/#W2"]}


def test_customer_speaks_in_the_first_person() -> None:
    said = to_first_person(
        "You want to cancel the grill, but if the agent asks you to confirm, you regret it."
    )
    assert said == "I want to cancel the grill, but if you ask me to confirm, I regret it."
    assert to_first_person("Ask the agent how much your refund is.") == (
        "Can you tell me how much my refund is."
    )


def test_customer_says_yes_only_to_the_expected_write(settings: Settings) -> None:
    db, task = _db(settings), _tasks(settings)["0"]
    customer = ScriptedCustomer(task, db, task_user(task, db))
    call = next(c for c in task["evaluation_criteria"]["actions"]
                if c["name"] == "exchange_delivered_order_items")  # fmt: skip
    args = call["arguments"]
    exact = {"action_requests": [{"name": "exchange_items", "args": {
        "target_id": args["order_id"], "item_ids": list(reversed(args["item_ids"])),
        "new_item_ids": list(reversed(args["new_item_ids"])),
        "payment_method_id": args["payment_method_id"]}}]}  # fmt: skip
    assert customer.consents_to(exact, call)  # the same items, in any order
    fewer = json.loads(json.dumps(exact))
    fewer["action_requests"][0]["args"]["item_ids"] = args["item_ids"][:1]
    assert not customer.consents_to(fewer, call)
    other_card = json.loads(json.dumps(exact))
    other_card["action_requests"][0]["args"]["payment_method_id"] = "paypal_0"
    assert not customer.consents_to(other_card, call)
    assert "mechanical keyboard" in customer.request(call) and args["order_id"] in customer.request(
        call
    )


def test_facts_match_amounts_however_written() -> None:
    assert fact_said("8276.23", ["In total you'll get back $8,276.23."])
    assert fact_said("180.1", ["options: $180.10, $189.57"])
    assert not fact_said("180.1", ["options: $180.11"])
    assert fact_said("polyester", ["The T-Shirt (material Polyester) costs $10.00."])


async def test_eval_run_on_train_tasks(agent: Agent, settings: Settings, tmp_path: Path) -> None:
    """Tasks 54 (two cancellations and a return, the refund total to state) and 105 (an
    exchange the gift card cannot pay: nothing may change) end exactly as τ² expects, and the
    customers are left as loaded."""
    summary = await evaluate_conversations(
        agent, "retail", settings.shared_data_dir / TASKS, tmp_path, only={"54", "105"}
    )
    assert summary["n_tasks"] == 2 and summary["failures"] == [], summary
    assert summary["pass_rate_with_writes"] == 1.0 and summary["unwanted_write_tasks"] == 0
    record = json.loads((tmp_path / "task-54.json").read_text())
    assert record["facts"] == {"3646.68": True}
    assert [c["approved"] for c in record["consents"]] == [True, True, True]
    assert json.loads((tmp_path / "report.json").read_text()) == summary
    db = _db(settings)
    for task_id in ("54", "105"):
        user = task_user(_tasks(settings)[task_id], db)
        assert await actual_view(agent.services, "retail", user) == expected_view(db, user)
        assert await agent.services.redis.exists(features_key("retail", user))
