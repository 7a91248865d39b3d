"""Verticals behind one protocol: a third business from the test tree, served by the graph.

The ``library`` tenant's pack (``tests/packs/library``) names its vertical by import path
(``tests.library_vertical:LibraryVertical``); nothing under ``src/`` knows it. A reader verifies,
asks to renew a book, confirms, and the renewal is written once, through the same policy engine,
idempotent action ledger and memory as retail and bank.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from support_agent.conversation import Agent, run_turn
from support_agent.errors import InvalidRequestError
from support_agent.tenants import TenantConfig
from support_agent.verticals import load_vertical, vertical_class
from tests.conftest import TEST_PACKS, new_session
from tests.library_vertical import LibraryVertical

SRC = Path(__file__).resolve().parents[1] / "src"
READER = {"id": "reader_0001", "email": "ada.reader@library.example"}
DUE = date(2026, 12, 10)


@pytest.fixture(scope="module")
async def library(agent: Agent) -> Agent:
    async with agent.services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO customers (tenant_id, id, first_name, last_name, email, zip)"
            " VALUES ('library', %s, 'Ada', 'Reader', %s, '10001') ON CONFLICT DO NOTHING",
            (READER["id"], READER["email"]),
        )
        await conn.execute(
            "INSERT INTO customer_identities (tenant_id, kind, value, customer_id)"
            " VALUES ('library', 'email', %s, %s) ON CONFLICT DO NOTHING",
            (READER["email"], READER["id"]),
        )
        for loan, title in (("loan-1", "Dune"), ("loan-2", "Middlemarch")):
            await conn.execute(
                "INSERT INTO holdings (tenant_id, id, customer_id, kind, product, status, details)"
                " VALUES ('library', %s, %s, 'book_loan', %s, 'ACTIVE', %s) ON CONFLICT DO NOTHING",
                (loan, READER["id"], title, json.dumps({"due": DUE.isoformat(), "renewals": 0})),
            )
    return agent


async def _loan(agent: Agent, loan_id: str) -> dict[str, Any]:
    async with agent.services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT details FROM holdings WHERE tenant_id = 'library' AND id = %s", (loan_id,)
            )
        ).fetchone()
    assert row is not None
    return dict(row["details"])


async def test_a_third_vertical_runs_a_confirmed_action_through_the_graph(library: Agent) -> None:
    assert isinstance(library.verticals["library"], LibraryVertical)
    sid = new_session()

    async def say(message: str) -> Any:
        return await run_turn(library, tenant_id="library", channel="chat", message=message,
                              session_id=sid)  # fmt: skip

    hello = await say(f"hi, my email is {READER['email']}")
    assert hello.customer_id == READER["id"]
    proposed = await say("can I renew Dune please")
    assert proposed.decision == "confirm", proposed.reply
    assert proposed.policy["action"] == "renew_loan"
    assert proposed.policy["target"] == {
        **proposed.policy["target"],
        "kind": "loan",
        "id": "loan-1",
    }
    assert '"Dune" for 14 more days' in proposed.reply
    assert (await _loan(library, "loan-1"))["renewals"] == 0  # nothing before the "yes"
    done = await say("yes")
    assert done.decision == "execute", done.reply
    renewed = await _loan(library, "loan-1")
    assert renewed == {"due": (DUE + timedelta(days=14)).isoformat(), "renewals": 1}
    assert renewed["due"] in done.reply
    assert await _loan(library, "loan-2") == {"due": DUE.isoformat(), "renewals": 0}
    again = await say("yes")  # a repeated "yes" has nothing to confirm and changes nothing
    assert again.decision != "execute"
    assert (await _loan(library, "loan-1"))["renewals"] == 1
    async with library.services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT action, params FROM account_actions WHERE tenant_id = 'library'"
                " AND interaction_id = %s",
                (sid,),
            )
        ).fetchall()
    assert [(r["action"], r["params"]["subject_id"]) for r in rows] == [("renew_loan", "loan-1")]


async def test_the_policy_still_decides_for_a_third_vertical(library: Agent) -> None:
    sid = new_session()
    first = await run_turn(library, tenant_id="library", channel="chat",
                           message="please renew Middlemarch", session_id=sid)  # fmt: skip
    assert first.decision == "ask_identification"  # authentication before account access
    failed = [r["rule"] for r in first.policy["rules"] if not r["passed"]]
    assert failed[0] == "authenticate_before_account_access"  # the rule that decided
    assert first.policy["outcome"] == "ask_identification"
    assert await _loan(library, "loan-2") == {"due": DUE.isoformat(), "renewals": 0}


def test_nothing_under_src_knows_the_third_vertical() -> None:
    for path in SRC.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".yaml", ".csv", ".sql", ".json"):
            text = path.read_text(encoding="utf-8")
            for name in ("library_vertical", "LibraryVertical", "book_loan", "renew_loan"):
                assert name not in text, (path, name)


def test_vertical_settings_are_validated_at_start_up() -> None:
    data = yaml.safe_load((TEST_PACKS / "library" / "tenant.yaml").read_text())
    data["vertical"]["settings"] = {"renewal_days": 14, "max_renewalz": 2}  # a typo
    config = TenantConfig.model_validate(
        {**data, "tenant_id": "library", "pack_dir": TEST_PACKS / "library"}
    )
    with pytest.raises(InvalidRequestError, match="invalid vertical settings"):
        load_vertical(config)
    with pytest.raises(InvalidRequestError, match="cannot be imported"):
        vertical_class("tests.no_such_module:Nothing")
    with pytest.raises(InvalidRequestError, match="not a Vertical"):
        vertical_class("tests.library_vertical:LibrarySettings")
