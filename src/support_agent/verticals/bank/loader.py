"""The bank vertical's data: Rho-Bank (tau2-bench banking, MIT) as a tenant's systems of record.

- ``db.json.gz``: users → customers and identities (email, phone, account id); checking and
  savings accounts, credit card accounts and debit cards → ``holdings``; bank and card
  transactions → ``transactions`` (money out negative); disputes → ``disputes``; card payments →
  ``billing_payments``. Card security codes are dropped.
- ``documents.jsonl.gz``: 698 documents ``{id, title, content}`` → ``knowledge_documents`` with an
  embedding of ``title. content`` (MiniLM reads the first ~256 word pieces; full-text search covers
  the whole content); card products, promotions and retention offers → ``offers``
  (``verticals.bank.catalog``).

Every insert is ``ON CONFLICT DO NOTHING`` on the natural key: loading twice changes nothing.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from support_agent.crm.loader import (
    LoadReport,
    analyze,
    ensure_tenant,
    insert_rows,
    normalize_email,
    normalize_phone,
)
from support_agent.crm.resolutions import seed_resolutions
from support_agent.errors import NotFoundError
from support_agent.retrieval.hybrid import vector_literal
from support_agent.services import Services
from support_agent.verticals.bank.catalog import card_catalog, retention_offers
from support_agent.verticals.bank.settings import BankSettings

logger = logging.getLogger(__name__)

CUSTOMER_COLUMNS = ["tenant_id", "id", "first_name", "last_name", "email", "phone", "address",
                    "zip", "language", "timezone", "date_of_birth"]  # fmt: skip


def _read_documents(services: Services, source: Path | None) -> list[dict[str, Any]]:
    """The bank's documents ``[{id, title, content}]``.

    Raises:
        NotFoundError: the documents file does not exist.
    """
    source = source or services.settings.shared_data_dir / "tau2-banking" / "documents.jsonl.gz"
    if not source.is_file():
        raise NotFoundError(f"bank documents not found at {source}")
    return [json.loads(line) for line in gzip.decompress(source.read_bytes()).splitlines() if line]


async def _missing(
    services: Services, tenant_id: str, table: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The ``rows`` whose ``id`` the tenant's ``table`` does not hold yet.

    The tenant row is created if needed. ``table`` is one of this module's own table names.
    """
    await ensure_tenant(services, tenant_id, services.tenants.config(tenant_id).name)
    async with services.pool.connection() as conn:
        cur = await conn.execute(f"SELECT id FROM {table} WHERE tenant_id = %s", (tenant_id,))
        have = {r["id"] for r in await cur.fetchall()}
    return [r for r in rows if r["id"] not in have]


async def load_bank_knowledge(
    services: Services, tenant_id: str = "bank", source: Path | None = None
) -> int:
    """Insert the bank's knowledge documents that are missing; returns how many.

    Raises:
        NotFoundError: the documents file does not exist.
    """
    docs = _read_documents(services, source)
    missing = await _missing(services, tenant_id, "knowledge_documents", docs)
    if not missing:
        return 0
    vectors = await asyncio.to_thread(
        services.embeddings.embed_documents, [f"{d['title']}. {d['content']}" for d in missing]
    )
    async with services.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO knowledge_documents (tenant_id, id, title, content, embedding)"
            " VALUES (%s, %s, %s, %s, %s::vector) ON CONFLICT DO NOTHING",
            [
                (tenant_id, d["id"], d["title"], d["content"], vector_literal(v))
                for d, v in zip(missing, vectors, strict=True)
            ],
        )
        inserted = max(cur.rowcount, 0)
    logger.info("knowledge_loaded", extra={"tenant_id": tenant_id, "documents": inserted})
    return inserted


async def load_bank_offers(
    services: Services,
    tenant_id: str = "bank",
    source: Path | None = None,
    credit_by_card_tier: dict[str, float] | None = None,
) -> int:
    """Insert the offers catalog rows (``verticals.bank.catalog``) missing; returns how many.

    Each offer is embedded (``title. description``) for semantic retrieval;
    ``credit_by_card_tier`` (USD) describes the retention statement credit.

    Raises:
        NotFoundError: the documents file does not exist.
    """
    docs = _read_documents(services, source)
    rows = card_catalog(docs) + retention_offers(credit_by_card_tier or {})
    missing = await _missing(services, tenant_id, "offers", rows)
    if not missing:
        return 0
    vectors = await asyncio.to_thread(
        services.embeddings.embed_documents, [f"{o['title']}. {o['description']}" for o in missing]
    )
    async with services.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO offers (tenant_id, id, kind, title, description, terms, valid_until,"
            " embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::vector) ON CONFLICT DO NOTHING",
            [
                (
                    tenant_id,
                    o["id"],
                    o["kind"],
                    o["title"],
                    o["description"],
                    json.dumps(o["terms"]),
                    o["valid_until"],
                    vector_literal(v),
                )
                for o, v in zip(missing, vectors, strict=True)
            ],  # fmt: skip
        )
        inserted = max(cur.rowcount, 0)
    logger.info("offers_loaded", extra={"tenant_id": tenant_id, "offers": inserted})
    return inserted


async def load_bank(services: Services, tenant_id: str = "bank") -> LoadReport:
    """Load a bank tenant: systems of record, the knowledge base (698 documents) and offers.

    Raises:
        NotFoundError: a data file does not exist, or the tenant has no pack.
    """
    inserted = await load_bank_crm(services, tenant_id)
    inserted["knowledge_documents"] = await load_bank_knowledge(services, tenant_id)
    settings = BankSettings.model_validate(services.tenants.config(tenant_id).vertical.settings)
    inserted["offers"] = await load_bank_offers(
        services, tenant_id, credit_by_card_tier=settings.statement_credits()
    )
    inserted["resolution_records"] = await seed_resolutions(services, tenant_id)
    await analyze(services, inserted)
    return LoadReport(inserted=inserted)


def _money(value: object) -> float | None:
    """``"$1,234.50"`` / ``"129.02"`` / ``12.5`` → float; ``None`` for missing."""
    if value is None or value == "":
        return None
    return float(str(value).replace("$", "").replace(",", ""))


def _date(value: str | None) -> date | None:
    """``MM/DD/YYYY`` or ISO ``YYYY-MM-DD`` (both occur in the data) → date.

    Raises:
        ValueError: any other format.
    """
    if not value:
        return None
    if "/" in value:
        return datetime.strptime(value, "%m/%d/%Y").date()
    return date.fromisoformat(value[:10])


async def load_bank_crm(
    services: Services,
    tenant_id: str = "bank",
    source: Path | None = None,
    users: set[str] | None = None,
) -> dict[str, int]:
    """Import Rho-Bank's customers, holdings, transactions, disputes and card payments.

    Card security codes (CVV) are never stored. Returns rows inserted per table; a repeated load
    inserts nothing. ``users`` restricts the load to those customers' records (e.g. to restore
    one customer after an erasure).

    Raises:
        NotFoundError: the data file does not exist.
    """
    source = source or services.settings.shared_data_dir / "tau2-banking" / "db.json.gz"
    if not source.is_file():
        raise NotFoundError(f"bank data not found at {source}")
    db = {k: v["data"] for k, v in json.loads(gzip.decompress(source.read_bytes())).items()}
    await ensure_tenant(services, tenant_id, services.tenants.config(tenant_id).name)
    t = tenant_id
    customers, identities = [], []
    for u in db["users"].values():
        first, _, last = u["name"].partition(" ")
        zip_match = re.search(r"\b(\d{5})\b\s*$", u["address"])
        state_match = re.search(r",\s*([A-Z]{2})\b", u["address"])
        address = {"line": u["address"], "state": state_match.group(1) if state_match else None}
        customers.append((t, u["user_id"], first, last or "-", normalize_email(u["email"]),
                          normalize_phone(u["phone_number"]), json.dumps(address),
                          zip_match.group(1) if zip_match else None, "en", None,
                          _date(u.get("date_of_birth"))))  # fmt: skip
        identities += [
            (t, "email", normalize_email(u["email"]), u["user_id"], None),
            (t, "phone", normalize_phone(u["phone_number"]), u["user_id"], None),
            (t, "customer_id", u["user_id"].lower(), u["user_id"], None),
        ]
    holdings = []
    for a in db["accounts"].values():
        holdings.append((t, a["account_id"], a["user_id"], a["class"], a["level"], a["status"],
                         _money(a["current_holdings"]), _date(a["date_opened"]), "{}"))  # fmt: skip
    for c in db["credit_card_accounts"].values():
        details = {"reward_points": c.get("reward_points")}
        holdings.append((t, c["account_id"], c["user_id"], "credit_card", c["card_type"],
                         c.get("status") or "ACTIVE", _money(c.get("current_balance")),
                         _date(c.get("date_of_account_open")), json.dumps(details)))  # fmt: skip
    for d in db["debit_cards"].values():
        details = {"account_id": d["account_id"], "last_four": d["last_4_digits"],
                   "expires": d.get("expiration_date")}  # no CVV, ever  # fmt: skip
        holdings.append((t, d["card_id"], d["user_id"], "debit_card", "Debit card", d["status"],
                         None, _date(d.get("issue_date")), json.dumps(details)))  # fmt: skip
    owner = {a["account_id"]: a["user_id"] for a in db["accounts"].values()}
    cards = {(c["user_id"], c["card_type"]): c["account_id"]
             for c in db["credit_card_accounts"].values()}  # fmt: skip
    txns = []
    for x in db["bank_account_transaction_history"].values():
        txns.append((t, x["transaction_id"], owner[x["account_id"]], x["account_id"],
                     _date(x["date"]), x["description"], x["amount"], x.get("type"),
                     x["status"]))  # fmt: skip
    for x in db["credit_card_transaction_history"].values():
        txns.append((t, x["transaction_id"], x["user_id"],
                     cards.get((x["user_id"], x["credit_card_type"])), _date(x["transaction_date"]),
                     x["merchant_name"], -(_money(x["transaction_amount"]) or 0.0),
                     x.get("category"), x["status"]))  # fmt: skip
    disputes = []
    for d in db["transaction_disputes"].values():
        keep = {k: d.get(k) for k in ("card_action", "resolution_requested", "contacted_merchant",
                                      "eligible_for_provisional_credit",
                                      "provisional_credit_given")}  # fmt: skip
        disputes.append((t, d["dispute_id"], d["user_id"], d["transaction_id"],
                         d["dispute_reason"], d["status"], _date(d.get("submitted_at")),
                         json.dumps(keep)))  # fmt: skip
    payments = [
        (t, p["payment_id"], p["user_id"], p["credit_card_account_id"], _date(p["payment_date"]),
         _money(p["amount"]), p["status"])
        for p in db["payment_history"].values()
    ]  # fmt: skip
    if users is not None:  # the customer id is column 1 of a customer, 3 of an identity, else 2
        customers = [r for r in customers if r[1] in users]
        identities = [r for r in identities if r[3] in users]
        holdings = [r for r in holdings if r[2] in users]
        txns = [r for r in txns if r[2] in users]
        disputes = [r for r in disputes if r[2] in users]
        payments = [r for r in payments if r[2] in users]
    plan: list[tuple[str, list[str], list[Any]]] = [
        ("customers", CUSTOMER_COLUMNS, customers),
        ("customer_identities", ["tenant_id", "kind", "value", "customer_id", "channel"],
         identities),
        ("holdings", ["tenant_id", "id", "customer_id", "kind", "product", "status", "balance",
                      "opened_on", "details"], holdings),
        ("transactions", ["tenant_id", "id", "customer_id", "holding_id", "occurred_on",
                          "description", "amount", "category", "status"], txns),
        ("disputes", ["tenant_id", "id", "customer_id", "transaction_id", "reason", "status",
                      "submitted_on", "details"], disputes),
        ("billing_payments", ["tenant_id", "id", "customer_id", "holding_id", "paid_on",
                              "amount", "status"], payments),
    ]  # fmt: skip
    counts = {table: await insert_rows(services, table, cols, rows) for table, cols, rows in plan}
    async with services.pool.connection() as conn:  # a database loaded before 0012 has none
        await conn.execute(
            "UPDATE customers c SET date_of_birth = d.dob FROM unnest(%s::text[], %s::date[])"
            " AS d(id, dob) WHERE c.tenant_id = %s AND c.id = d.id AND c.date_of_birth IS NULL",
            ([r[1] for r in customers], [r[-1] for r in customers], t),
        )
    return counts
