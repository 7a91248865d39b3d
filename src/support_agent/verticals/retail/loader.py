"""The retail vertical's data: the tau2-bench retail database as a tenant's systems of record.

``tau2-retail/db.json.gz`` (sierra-research/tau2-bench, MIT): 500 users, 1,000 orders, 50
products with variants, payment methods and payment history. Every insert is ``ON CONFLICT DO
NOTHING`` on the natural key, so loading twice changes nothing.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import Any

from support_agent.crm.loader import (
    LoadReport,
    analyze,
    ensure_tenant,
    insert_rows,
    normalize_email,
)
from support_agent.crm.resolutions import seed_resolutions
from support_agent.errors import NotFoundError
from support_agent.services import Services

logger = logging.getLogger(__name__)


def read_db(source: Path) -> dict[str, Any]:
    """The tau2-bench retail database: ``{"users", "orders", "products"}`` keyed by id.

    Raises:
        NotFoundError: the data file does not exist.
    """
    if not source.is_file():
        raise NotFoundError(f"retail data not found at {source}")
    db: dict[str, Any] = json.loads(gzip.decompress(source.read_bytes()))
    return db


async def load_retail(
    services: Services,
    tenant_id: str = "retail",
    source: Path | None = None,
    *,
    users: set[str] | None = None,
) -> LoadReport:
    """Import the tau2-bench retail database as ``tenant_id``'s systems of record.

    Args:
        services: open services.
        tenant_id: the tenant to load into (its pack's name becomes the tenant's name).
        source: path of ``db.json.gz``; default ``SHARED_DATA_DIR/tau2-retail/db.json.gz``.
        users: only these users (their profile, payment methods and orders), e.g. to restore
            a customer after an evaluation task; resolutions are then not seeded again.

    Returns:
        Rows inserted per table.

    Raises:
        NotFoundError: the data file does not exist.
    """
    source = source or services.settings.shared_data_dir / "tau2-retail" / "db.json.gz"
    db = read_db(source)
    tenant = tenant_id
    await ensure_tenant(services, tenant, services.tenants.config(tenant).name)

    customers, identities, methods = [], [], []
    for user in db["users"].values():
        if users is not None and user["user_id"] not in users:
            continue
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
        if users is not None and order["user_id"] not in users:
            continue
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
    if users is not None:
        return LoadReport(inserted=inserted)
    inserted["resolution_records"] = await seed_resolutions(services, tenant)
    await analyze(services, inserted)
    report = LoadReport(inserted=inserted)
    logger.info("tenant_loaded", extra={"tenant_id": tenant, "inserted": report.total})
    return report
