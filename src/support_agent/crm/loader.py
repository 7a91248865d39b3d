"""Loaders that import a tenant's public data set into the systems of record.

``load_retail`` imports ``tau2-retail/db.json.gz`` (sierra-research/tau2-bench, MIT): 500 users,
1,000 orders, 50 products with variants, payment methods and payment history, as tenant
``retail``. Every insert is ``ON CONFLICT DO NOTHING`` on the natural key, so loading twice changes
nothing, and rows changed since (an order the agent cancelled) are never reverted.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support_agent.errors import NotFoundError
from support_agent.services import Services

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """Rows inserted per table by one load (0 everywhere on a repeated load)."""

    inserted: dict[str, int]

    @property
    def total(self) -> int:
        """Rows inserted across all tables."""
        return sum(self.inserted.values())


def normalize_email(email: str) -> str:
    """Lower-case and strip an email address (the identity key)."""
    return email.strip().lower()


def normalize_phone(phone: str) -> str:
    """Keep digits only, with a leading ``+`` dropped (``+1 (555) 010-0000`` → ``15550100000``)."""
    return "".join(ch for ch in phone if ch.isdigit())


async def insert_rows(
    services: Services, table: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> int:
    """Insert rows with ON CONFLICT DO NOTHING; returns how many were new."""
    if not rows:
        return 0
    placeholders = ", ".join(["%s"] * len(columns))
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
    )
    async with services.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.executemany(sql, rows)
        # psycopg >= 3.1: rowcount after executemany is the sum over all statements.
        return max(cur.rowcount, 0)


async def ensure_tenant(services: Services, tenant_id: str, name: str) -> None:
    """Create the tenant row if missing."""
    async with services.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (tenant_id, name),
        )


async def load_retail(services: Services, source: Path | None = None) -> LoadReport:
    """Import the tau2-bench retail database as tenant ``retail``.

    Args:
        services: open services.
        source: path of ``db.json.gz``; default ``SHARED_DATA_DIR/tau2-retail/db.json.gz``.

    Returns:
        Rows inserted per table.

    Raises:
        NotFoundError: the data file does not exist.
    """
    source = source or services.settings.shared_data_dir / "tau2-retail" / "db.json.gz"
    if not source.is_file():
        raise NotFoundError(f"retail data not found at {source}")
    db = json.loads(gzip.decompress(source.read_bytes()))
    tenant = "retail"
    await ensure_tenant(services, tenant, "Retail store")

    customers, identities, methods = [], [], []
    for user in db["users"].values():
        uid, addr = user["user_id"], user["address"]
        customers.append(
            (
                tenant,
                uid,
                user["name"]["first_name"],
                user["name"]["last_name"],
                normalize_email(user["email"]),
                None,
                json.dumps(addr),
                addr.get("zip"),
                "en",
                None,
            )
        )
        identities.append((tenant, "email", normalize_email(user["email"]), uid, None))
        identities.append((tenant, "customer_id", uid.lower(), uid, None))
        for pm in user["payment_methods"].values():
            methods.append(
                (
                    tenant,
                    pm["id"],
                    uid,
                    pm["source"],
                    pm.get("brand"),
                    pm.get("last_four"),
                    pm.get("balance"),
                )
            )
    products, variants = [], []
    for prod in db["products"].values():
        products.append((tenant, prod["product_id"], prod["name"]))
        for var in prod["variants"].values():
            variants.append(
                (
                    tenant,
                    var["item_id"],
                    prod["product_id"],
                    json.dumps(var["options"]),
                    var["available"],
                    var["price"],
                )
            )
    orders, items, fulfillments, payments = [], [], [], []
    for order in db["orders"].values():
        oid = order["order_id"]
        orders.append(
            (tenant, oid, order["user_id"], order["status"], json.dumps(order["address"]))
        )
        for n, item in enumerate(order["items"]):
            items.append(
                (
                    tenant,
                    oid,
                    n,
                    item["item_id"],
                    item["product_id"],
                    item["name"],
                    item["price"],
                    json.dumps(item["options"]),
                )
            )
        for n, ful in enumerate(order["fulfillments"]):
            fulfillments.append((tenant, oid, n, ful["tracking_id"], ful["item_ids"]))
        for n, pay in enumerate(order["payment_history"]):
            payments.append(
                (tenant, oid, n, pay["transaction_type"], pay["amount"], pay["payment_method_id"])
            )

    inserted = {
        "customers": await insert_rows(
            services,
            "customers",
            [
                "tenant_id",
                "id",
                "first_name",
                "last_name",
                "email",
                "phone",
                "address",
                "zip",
                "language",
                "timezone",
            ],
            customers,
        ),
        "customer_identities": await insert_rows(
            services,
            "customer_identities",
            ["tenant_id", "kind", "value", "customer_id", "channel"],
            identities,
        ),
        "payment_methods": await insert_rows(
            services,
            "payment_methods",
            ["tenant_id", "id", "customer_id", "kind", "brand", "last_four", "balance"],
            methods,
        ),
        "products": await insert_rows(services, "products", ["tenant_id", "id", "name"], products),
        "product_variants": await insert_rows(
            services,
            "product_variants",
            ["tenant_id", "item_id", "product_id", "options", "available", "price"],
            variants,
        ),
        "orders": await insert_rows(
            services, "orders", ["tenant_id", "id", "customer_id", "status", "address"], orders
        ),
        "order_items": await insert_rows(
            services,
            "order_items",
            [
                "tenant_id",
                "order_id",
                "line_no",
                "item_id",
                "product_id",
                "name",
                "price",
                "options",
            ],
            items,
        ),
        "order_fulfillments": await insert_rows(
            services,
            "order_fulfillments",
            ["tenant_id", "order_id", "line_no", "tracking_ids", "item_ids"],
            fulfillments,
        ),
        "payments": await insert_rows(
            services,
            "payments",
            ["tenant_id", "order_id", "seq", "kind", "amount", "payment_method_id"],
            payments,
        ),
    }
    from support_agent.resolutions import seed_resolutions

    inserted["resolution_records"] = await seed_resolutions(services, tenant)
    await analyze(services, inserted)
    report = LoadReport(inserted=inserted)
    logger.info("tenant_loaded", extra={"tenant_id": tenant, "inserted": report.total})
    return report


async def analyze(services: Services, inserted: dict[str, int]) -> None:
    """Refresh the planner statistics of the tables a load filled (``inserted``: rows per table).

    Without them a freshly loaded tenant is planned as if its tables were empty until autovacuum
    catches up.
    """
    tables = [t for t, n in inserted.items() if n > 0]
    if not tables:
        return
    async with services.pool.connection() as conn:
        for table in tables:
            await conn.execute(f"ANALYZE {table}")  # names are this module's own, not input


async def _load_bank(services: Services) -> LoadReport:
    from support_agent.crm.bank import load_bank

    return await load_bank(services)


LOADERS = {"retail": load_retail, "bank": _load_bank}
