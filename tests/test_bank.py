"""Bank tenant: systems of record from tau2-bench banking, and its Customer 360."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from support_agent.crm.repository import find_customer_by_identity
from support_agent.memory_store.hot import get_hot_360
from support_agent.services import Services
from support_agent.verticals.bank.loader import load_bank_crm

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tau2-banking" / "db.json.gz"


@pytest.fixture(scope="module")
async def bank(services: Services) -> dict[str, int]:
    return await load_bank_crm(services)


def _db() -> dict[str, dict[str, dict[str, object]]]:
    return {k: v["data"] for k, v in json.loads(gzip.decompress(SOURCE.read_bytes())).items()}


async def test_bank_load_counts_and_idempotence(services: Services, bank: dict[str, int]) -> None:
    db = _db()
    assert bank["customers"] == len(db["users"]) == 39
    assert bank["holdings"] == len(db["accounts"]) + len(db["credit_card_accounts"]) + len(
        db["debit_cards"]
    )
    assert bank["transactions"] == len(db["bank_account_transaction_history"]) + len(
        db["credit_card_transaction_history"]
    )
    assert bank["disputes"] == len(db["transaction_disputes"])
    assert sum((await load_bank_crm(services)).values()) == 0


async def test_card_security_codes_are_never_stored(
    services: Services, bank: dict[str, int]
) -> None:
    cards = _db()["debit_cards"]
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, details FROM holdings WHERE tenant_id = 'bank' AND kind = 'debit_card'"
            )  # fmt: skip
        ).fetchall()
    assert len(rows) == len(cards)
    for row in rows:
        assert "cvv" not in json.dumps(row["details"]).lower()
        assert str(cards[row["id"]]["cvv"]) not in json.dumps(row["details"])


async def test_bank_customer_360_has_holdings_billing_and_disputes(
    services: Services, bank: dict[str, int]
) -> None:
    db = _db()
    dispute = next(iter(db["transaction_disputes"].values()))
    user = db["users"][str(dispute["user_id"])]
    cid = await find_customer_by_identity(services, "bank", "phone", str(user["phone_number"]))
    assert cid == dispute["user_id"]
    assert await find_customer_by_identity(services, "retail", "phone",
                                           str(user["phone_number"])) is None  # fmt: skip
    c360, _ = await get_hot_360(services, "bank", cid)
    assert c360 is not None
    assert [d["id"] for d in c360["disputes"]] == [dispute["dispute_id"]]
    kinds = {h["kind"] for h in c360["holdings"]}
    assert "credit_card" in kinds or "checking" in kinds
    deposits = sum(h["balance"] or 0 for h in c360["holdings"]
                   if h["kind"].endswith(("checking", "saving")))  # fmt: skip
    assert c360["value"]["balances"] == pytest.approx(deposits)
    expected = "gold" if deposits >= 25000 else "silver" if deposits >= 5000 else "standard"
    assert c360["tier"] == expected
    assert len(c360["transactions"]) <= 20
    dates = [t["date"] for t in c360["transactions"]]
    assert dates == sorted(dates, reverse=True)
