"""Loader: real counts from the tau2 retail data, and a second load changes nothing."""

from __future__ import annotations

from support_agent.services import Services
from support_agent.verticals.retail.loader import load_retail

TABLES = [
    "customers",
    "customer_identities",
    "payment_methods",
    "products",
    "product_variants",
    "orders",
    "order_items",
    "order_fulfillments",
    "payments",
    "resolution_records",
]


async def _counts(services: Services) -> dict[str, int]:
    out = {}
    async with services.pool.connection() as conn:
        for table in TABLES:
            row = await (
                await conn.execute(f"SELECT count(*) AS n FROM {table} WHERE tenant_id = 'retail'")
            ).fetchone()
            assert row is not None
            out[table] = int(row["n"])
    return out


async def test_load_matches_source_counts(services: Services) -> None:
    counts = await _counts(services)
    assert counts["customers"] == 500
    assert counts["orders"] == 1000
    assert counts["products"] == 50
    assert counts["customer_identities"] == 1000  # an email and an account id per customer
    assert counts["resolution_records"] == 14


async def test_second_load_changes_nothing(services: Services) -> None:
    before = await _counts(services)
    report = await load_retail(services)
    assert report.total == 0
    assert all(v == 0 for v in report.inserted.values())
    assert await _counts(services) == before
