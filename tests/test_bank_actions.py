"""Bank decisions end to end: offers, Banking77 intents, card and transaction actions, retention.

Every conversation runs the compiled graph against the real embedded PostgreSQL and Redis with
the bank tenant loaded (``support-agent load bank``); the bank's intent model is trained on the
Banking77 training split the first time it is needed.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from support_agent.conversation import Agent, TurnResult, end_session, run_turn
from support_agent.crm.customer360 import build_360s
from support_agent.demo import pick_bank_customer, run_bank_demo
from support_agent.evaluation.conversations import reset_customer
from support_agent.memory_store.hot import sync_hot_tier
from support_agent.memory_store.pipeline import MemoryWorker
from support_agent.retrieval.hybrid import hybrid_search
from support_agent.services import Services
from support_agent.templates import money
from support_agent.verticals.bank.catalog import card_catalog
from support_agent.verticals.bank.loader import load_bank
from tests.conftest import new_session

DOCS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "tau2-banking" / "documents.jsonl.gz"
)


@pytest.fixture(scope="module")
async def bank(agent: Agent) -> Agent:
    await load_bank(agent.services)
    await sync_hot_tier(agent.services, "bank")
    return agent


async def bank_say(agent: Agent, session_id: str, message: str) -> TurnResult:
    return await run_turn(
        agent, tenant_id="bank", channel="chat", message=message, session_id=session_id
    )


async def _one(services: Services, sql: str, *params: object) -> dict[str, Any] | None:
    async with services.pool.connection() as conn:
        row = await (await conn.execute(sql, params)).fetchone()
    return None if row is None else dict(row)


async def _proof(services: Services, customer_id: str) -> str:
    """What a bank customer types to verify: two facts on file (email and date of birth)."""
    row = await _one(services, "SELECT email, date_of_birth FROM customers"
                     " WHERE tenant_id='bank' AND id=%s", customer_id)  # fmt: skip
    assert row is not None and row["date_of_birth"] is not None
    return f"my email is {row['email']}, date of birth {row['date_of_birth']:%m/%d/%Y}"


def test_card_catalog_reads_terms_and_paths_from_the_documents() -> None:
    docs = [json.loads(line) for line in gzip.decompress(DOCS.read_bytes()).splitlines() if line]
    rows = {r["id"]: r for r in card_catalog(docs)}
    gold = rows["card:gold_rewards_card"]["terms"]
    assert (gold["annual_fee"], gold["cash_back_pct"], gold["apr_pct"]) == (0.0, 2.5, 17.99)
    diamond = rows["card:diamond_elite_card"]["terms"]
    assert diamond["annual_fee"] == 495.0 and diamond["tier"] == "premium"
    # "Available No-Annual-Fee Card Options": personal → Bronze, business → Business Bronze
    assert diamond["downgrade_to"] == "Bronze Rewards Card"
    assert rows["card:business_gold_rewards_card"]["terms"]["downgrade_to"] == (
        "Business Bronze Rewards Card"
    )
    assert gold["upgrade_to"] is not None and gold["downgrade_to"] is None
    promo = rows["promo:credit_cards_silver_rewards_card_009"]
    assert promo["kind"] == "promo_rate"
    assert promo["terms"]["intro_apr_pct"] == 0.0 and promo["terms"]["standard_apr_pct"] == 18.99
    assert promo["terms"]["window_end"] == "2025-12-31"


async def test_offers_are_retrievable_and_expired_promotions_are_not(bank: Agent) -> None:
    query = "credit card with no annual fee and cash back"
    vector = bank.services.embeddings.embed_query(query)
    hits = await hybrid_search(bank.services, "bank", query, vector, sources=("offer",), limit=30)
    assert hits and all(h.kind == "offer" for h in hits)
    ids = {h.id for h in hits}
    assert "card:bronze_rewards_card" in ids
    async with bank.services.pool.connection() as conn:
        expired = {
            r["id"]
            for r in await (
                await conn.execute(
                    "SELECT id FROM offers WHERE tenant_id='bank' AND valid_until < now()"
                )
            ).fetchall()
        }
    assert expired, "the data's promotions ended in 2024-2026"
    assert not ids & expired


async def test_disputed_fee_is_filed_once_after_confirmation(bank: Agent) -> None:
    cust = await pick_bank_customer(bank.services)
    sid = new_session()
    await bank_say(bank, sid, "Hi, " + await _proof(bank.services, cust["id"]))
    fee = money(float(cust["amount"]))
    proposed = await bank_say(bank, sid, f"Why was I charged a {fee} fee? That's wrong.")
    assert proposed.decision == "confirm"
    assert proposed.policy["action"] == "dispute_transaction"
    assert proposed.policy["target"]["id"] == cust["transaction_id"]
    sql = "SELECT count(*) AS n FROM disputes WHERE tenant_id='bank' AND transaction_id=%s"
    assert (await _one(bank.services, sql, cust["transaction_id"]))["n"] == 0  # type: ignore[index]
    done = await bank_say(bank, sid, "yes")
    assert done.decision == "execute"
    assert (await _one(bank.services, sql, cust["transaction_id"]))["n"] == 1  # type: ignore[index]
    # the same fee again: the policy denies it (already disputed), nothing is filed twice
    again = await bank_say(bank, new_session(), await _proof(bank.services, cust["id"]))
    again = await bank_say(bank, again.session_id, f"Why was I charged a {fee} fee?")
    assert again.decision == "deny"
    failed = [r["rule"] for r in again.policy["rules"] if not r["passed"]]
    assert failed[0] == "transaction_status_allows_action"
    assert (await _one(bank.services, sql, cust["transaction_id"]))["n"] == 1  # type: ignore[index]
    logged = await _one(
        bank.services,
        "SELECT count(*) AS n FROM account_actions WHERE tenant_id='bank'"
        " AND action='dispute_transaction' AND interaction_id = ANY(%s)",
        [sid, again.session_id],
    )
    assert logged is not None and logged["n"] == 1  # one write over both conversations


async def test_lost_card_is_frozen_only_after_yes_and_only_once(bank: Agent) -> None:
    card = await _one(
        bank.services,
        "SELECT id, customer_id, details->>'last_four' AS four FROM holdings WHERE tenant_id='bank'"
        " AND kind='debit_card' AND status='ACTIVE' ORDER BY id LIMIT 1",
    )
    assert card is not None
    sid = new_session()
    await bank_say(bank, sid, await _proof(bank.services, card["customer_id"]))
    asked = await bank_say(bank, sid, f"I lost my debit card ending {card['four']}")
    assert asked.decision == "confirm" and asked.policy["action"] == "freeze_card"
    status = "SELECT status FROM holdings WHERE tenant_id='bank' AND id=%s"
    assert (await _one(bank.services, status, card["id"]))["status"] == "ACTIVE"  # type: ignore[index]
    await bank_say(bank, sid, "yes")
    assert (await _one(bank.services, status, card["id"]))["status"] == "FROZEN"  # type: ignore[index]
    again = await bank_say(bank, sid, f"I lost my debit card ending {card['four']}, freeze it")
    assert again.decision == "deny"
    assert "card is frozen" in again.policy["reason"]


async def test_several_cards_are_asked_about_not_guessed(bank: Agent) -> None:
    row = await _one(
        bank.services,
        "SELECT customer_id FROM holdings WHERE tenant_id='bank' AND kind='debit_card'"
        " AND status='ACTIVE' GROUP BY customer_id HAVING count(*) > 1 ORDER BY customer_id"
        " LIMIT 1",
    )
    assert row is not None
    sid = new_session()
    await bank_say(bank, sid, await _proof(bank.services, row["customer_id"]))
    result = await bank_say(bank, sid, "I lost my debit card")
    assert result.policy["outcome"] == "clarify"
    assert "Which card do you mean" in result.reply and "ending" in result.reply


async def test_replacement_card_is_ordered_on_yes(bank: Agent) -> None:
    row = await _one(
        bank.services,
        "SELECT h.id, h.customer_id, h.product FROM holdings h WHERE h.tenant_id='bank'"
        " AND h.kind='credit_card' AND h.status='ACTIVE' AND (SELECT count(*) FROM holdings x"
        " WHERE x.tenant_id='bank' AND x.customer_id=h.customer_id"
        " AND x.kind IN ('credit_card','debit_card')) = 1 ORDER BY h.id LIMIT 1",
    )
    assert row is not None
    sid = new_session()
    await bank_say(bank, sid, await _proof(bank.services, row["customer_id"]))
    asked = await bank_say(
        bank, sid, "My card is damaged and doesn't work anymore, I need a new one"
    )
    assert asked.policy["action"] == "order_replacement_card" and asked.decision == "confirm"
    done = await bank_say(bank, sid, "yes")
    assert done.decision == "execute" and "7-10 business days" in done.reply
    order = await _one(bank.services, "SELECT status FROM card_orders WHERE tenant_id='bank'"
                       " AND holding_id=%s", row["id"])  # fmt: skip
    assert order == {"status": "ORDERED"}


async def test_retention_offer_follows_policy_and_is_not_repeated(bank: Agent) -> None:
    row = await _one(
        bank.services,
        "SELECT h.customer_id FROM holdings h JOIN offers o ON o.tenant_id=h.tenant_id"
        " AND o.kind='card_product' AND o.terms->>'product'=h.product WHERE h.tenant_id='bank'"
        " AND h.kind='credit_card' AND h.status='ACTIVE' AND (o.terms->>'annual_fee')::float > 0"
        " ORDER BY h.customer_id LIMIT 1",
    )
    assert row is not None
    sid = new_session()
    await bank_say(bank, sid, await _proof(bank.services, row["customer_id"]))
    offered = await bank_say(
        bank, sid, "Honestly I'd rather close this card, paying the yearly fee makes no sense"
    )
    offer = offered.policy["retention_offer"]
    assert offer is not None, offered.reply
    tenure = int(offered.memory["features"]["tenure_days"])
    # "2+ years: waive the annual fee for one year; less than 2 years: downgrade"
    assert offer["offer_id"] == (
        "annual_fee_waiver" if tenure >= 730 else "downgrade_no_annual_fee"
    )
    assert "Terms:" in offered.reply  # the policy requires the disclosure
    assert money(offer["terms"]["annual_fee"]) in offered.reply
    applied = await bank_say(bank, sid, "yes")
    assert applied.decision == "execute", applied.reply
    ledger = await _one(bank.services, "SELECT status FROM retention_offers WHERE tenant_id='bank'"
                        " AND customer_id=%s", row["customer_id"])  # fmt: skip
    assert ledger == {"status": "applied"}
    # a new conversation: one retention offer per year, whatever the customer says
    sid2 = new_session()
    await bank_say(bank, sid2, await _proof(bank.services, row["customer_id"]))
    again = await bank_say(bank, sid2, "I'm switching to a competitor, so shut my card down please")
    assert again.policy["retention_offer"] is None
    audit = await _one(
        bank.services,
        "SELECT rules FROM policy_audit WHERE tenant_id='bank' AND interaction_id=%s"
        " AND outcome='deny' ORDER BY id DESC LIMIT 1",
        sid2,
    )
    assert audit is not None
    assert "offer_frequency" in [r["rule"] for r in audit["rules"] if not r["passed"]]


async def test_knowledge_answer_quotes_a_public_article(bank: Agent) -> None:
    result = await bank_say(bank, new_session(), "How long does a replacement card take to arrive?")
    assert result.policy["action"] == "answer_from_knowledge"
    assert result.reply.startswith("From our help article")
    assert "internal" not in result.reply.lower()
    docs = {json.loads(line)["title"] for line in gzip.decompress(DOCS.read_bytes()).splitlines()}
    title = result.reply.split('"')[1]
    assert title in docs


async def test_high_value_billing_dispute_is_a_warm_handoff(bank: Agent) -> None:
    async with bank.services.pool.connection() as conn:
        ids = [r["id"] for r in await (await conn.execute(
            "SELECT id FROM customers WHERE tenant_id='bank' ORDER BY id")).fetchall()]  # fmt: skip
    c360s = await build_360s(bank.services, "bank", ids)
    gold = next(
        c for c in c360s.values()
        if c["tier"] == "gold" and any(t["amount"] < 0 for t in c["transactions"])
    )  # fmt: skip
    sid = new_session()
    await bank_say(bank, sid, await _proof(bank.services, gold["customer_id"]))
    result = await bank_say(bank, sid, "There's a charge on my statement I don't recognise")
    assert result.decision == "escalate"
    panel = result.handoff or {}
    assert panel["reason"] == "high-value customer with a billing dispute"
    for field in ("header", "summary", "tried", "timeline", "suggested_resolutions",
                  "quick_actions"):  # fmt: skip
        assert panel[field], field
    assert panel["header"]["vip"] is True and panel["header"]["clv"] > 0


async def test_bank_demo_scenario_holds_on_repeated_runs(bank: Agent) -> None:
    assert await run_bank_demo(bank) == 0
    assert await run_bank_demo(bank) == 0  # a repeat picks the next fee, or replays a disputed one


@pytest.mark.parametrize("answer", ["wait, not yet", "no", "do it later"])
async def test_bank_write_waits_for_a_clear_yes(bank: Agent, answer: str) -> None:
    """The same consent rule as retail: the proposal is an interrupt naming the exact card; a
    hedge or a no changes nothing and says no "Done"; a later stray yes confirms nothing."""
    card = await _one(
        bank.services,
        "SELECT id, customer_id, details->>'last_four' AS four FROM holdings WHERE"
        " tenant_id='bank' AND kind='debit_card' AND status='ACTIVE' ORDER BY id DESC LIMIT 1",
    )
    assert card is not None
    sid = new_session()
    await bank_say(bank, sid, await _proof(bank.services, card["customer_id"]))
    asked = await bank_say(bank, sid, f"I lost my debit card ending {card['four']}")
    assert asked.decision == "confirm" and asked.approval is not None
    (request,) = asked.approval["action_requests"]
    assert request["name"] == "freeze_card" and request["args"]["target_id"] == card["id"]
    status = "SELECT status FROM holdings WHERE tenant_id='bank' AND id=%s"
    replied = await bank_say(bank, sid, answer)
    assert "Done" not in replied.reply and replied.decision != "execute"
    assert (await _one(bank.services, status, card["id"]))["status"] == "ACTIVE"  # type: ignore[index]
    if replied.approval is None:  # rejected: a stray yes now has nothing to confirm
        stray = await bank_say(bank, sid, "yes")
        assert "Done" not in stray.reply
        assert (await _one(bank.services, status, card["id"]))["status"] == "ACTIVE"  # type: ignore[index]


def test_a_card_named_by_its_product_is_the_closest_name() -> None:
    """ "My Gold Rewards Card" means the Gold one, not every card sharing "Rewards"."""
    from support_agent.verticals.bank.targets import bank_entities, resolve_card

    def card(id_: str, product: str) -> dict[str, object]:
        return {"id": id_, "kind": "credit_card", "product": product, "status": "ACTIVE",
                "details": {}}  # fmt: skip

    c360: Any = {"holdings": [card("s", "Silver Rewards Card"), card("g", "Gold Rewards Card"),
                              card("bg", "Business Gold Rewards Card")]}  # fmt: skip
    found = resolve_card(bank_entities("My Gold Rewards Card is damaged"), c360)
    assert found == (None, ["g", "bg"])  # both Gold cards fit equally: ask which
    found = resolve_card(bank_entities("My Business Gold Rewards Card is damaged"), c360)
    assert found == ("bg", ["bg"])
    found = resolve_card(bank_entities("my silver card is damaged"), c360)
    assert found == ("s", ["s"])


async def test_a_bank_promise_is_kept_when_the_promised_dispute_is_filed(bank: Agent) -> None:
    """A dispute left unanswered is a pending promise; filing it in a later session keeps it."""
    services = bank.services
    cust = await pick_bank_customer(services, any_fee=True)
    source = services.settings.shared_data_dir / "tau2-retail" / "db.json.gz"
    await reset_customer(bank, "bank", str(cust["id"]), source)  # no dispute from earlier tests
    fee = money(float(cust["amount"]))
    sql = (
        "SELECT status FROM promises WHERE tenant_id = 'bank' AND customer_id = %s"
        " AND subject_id = %s"
    )
    for answer in (None, "yes"):  # the first conversation ends with the proposal waiting
        sid = new_session()
        await bank_say(bank, sid, "Hi, " + await _proof(bank.services, cust["id"]))
        proposed = await bank_say(bank, sid, f"Why was I charged a {fee} fee? That's wrong.")
        assert proposed.decision == "confirm", proposed.reply
        assert proposed.policy["target"]["id"] == cust["transaction_id"]
        if answer is not None:
            await bank_say(bank, sid, answer)
        await end_session(bank, tenant_id="bank", session_id=sid)
        await MemoryWorker(services, backoff_base_s=0.0).drain()
        promise = await _one(services, sql, cust["id"], cust["transaction_id"])
        assert promise is not None
        assert promise["status"] == ("pending" if answer is None else "kept")
