"""Customer 360: one customer's profile, tier, value, orders, billing, interactions and open issues.

Built from the systems of record in a fixed number of queries for any number of customers (the
sync job builds all of a tenant's 360s at once; the cold path builds one). The result is plain
JSON-serialisable data, the shape served from the Redis hot tier::

    {
      "customer_id": str, "tenant_id": str, "built_at": ISO-8601 str,
      "profile": {"name", "first_name", "last_name", "email", "phone", "address", "zip",
                  "language", "timezone", "channels": [str]},
      "tier": "gold" | "silver" | "standard",       # from value[tenant.tier_basis]
      "value": {"lifetime_spend", "refunds", "net_spend", "order_count", "balances",
                "credit_balance"},                   # currency units
      "orders": [{"order_id", "status", "total", "items": [{"item_id", "product_id", "name",
                  "price", "options"}], "tracking_ids": [str], "payment_method_ids": [str]}],
      "payment_methods": [{"id", "kind", "brand", "last_four", "balance"}],
      "holdings": [{"id", "kind", "product", "status", "balance", "opened_on", "details"}],
      "transactions": [{"id", "holding_id", "date", "description", "amount", "category",
                        "status"}],                   # latest 20, newest first
      "disputes": [{"id", "transaction_id", "reason", "status", "submitted_on"}],
      "billing": [{"id", "holding_id", "paid_on", "amount", "status"}],
      "retention_offers": [{"id", "offer_id", "holding_id", "status", "offered_at",
                            "applied_at", "expires_at"}],      # newest first
      "interactions": [{"id", "channel", "started_at", "ended_at", "intent", "outcome",
                        "summary"}],   # latest 5, newest first
      "open_issues": [{"id", "order_id", "item_ids", "item_names", "kind", "description",
                       "proposed_actions", "opened_in", "contacts", "created_at",
                       "subject_kind", "subject_id", "subject_label"}],  # what it is about
      "threads": [Thread]   # open and recently resolved threads (crm.threads), open first
    }
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from support_agent.crm.threads import load_threads
from support_agent.services import Services
from support_agent.state import Customer360, OrderItem


def iso(value: datetime | None) -> str | None:
    """ISO-8601 text of a timestamp, or ``None``."""
    return value.isoformat() if value is not None else None


async def build_360s(
    services: Services, tenant_id: str, customer_ids: list[str] | None = None
) -> dict[str, Customer360]:
    """Build Customer 360s from PostgreSQL.

    Args:
        services: open services.
        tenant_id: tenant whose customers are read.
        customer_ids: customers to build; ``None`` builds every customer of the tenant.

    Returns:
        ``{customer_id: Customer360}``; ids that do not exist are absent.

    Raises:
        NotFoundError: unknown tenant.
    """
    config = services.tenants.config(tenant_id)
    ids_filter = "" if customer_ids is None else " AND customer_id = ANY(%(ids)s)"
    params: dict[str, Any] = {"t": tenant_id, "ids": customer_ids}
    out: dict[str, Customer360] = {}
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT * FROM customers WHERE tenant_id = %(t)s"
                + ("" if customer_ids is None else " AND id = ANY(%(ids)s)"),
                params,
            )
        ).fetchall()
        for row in rows:
            out[row["id"]] = {
                "customer_id": row["id"],
                "tenant_id": tenant_id,
                "built_at": datetime.now(UTC).isoformat(),
                "profile": {
                    "name": f"{row['first_name']} {row['last_name']}",
                    "first_name": row["first_name"],
                    "last_name": row["last_name"],
                    "email": row["email"],
                    "phone": row["phone"],
                    "address": row["address"],
                    "zip": row["zip"],
                    "language": row["language"],
                    "timezone": row["timezone"],
                    "channels": [],
                },
                "orders": [],
                "payment_methods": [],
                "holdings": [],
                "transactions": [],
                "disputes": [],
                "billing": [],
                "retention_offers": [],
                "interactions": [],
                "open_issues": [],
                "threads": [],
            }
        if not out:
            return out

        items: dict[str, list[OrderItem]] = defaultdict(list)
        for row in await (
            await conn.execute(
                "SELECT oi.order_id, oi.item_id, oi.product_id, oi.name, oi.price, oi.options"
                " FROM order_items oi JOIN orders o"
                " ON o.tenant_id = oi.tenant_id AND o.id = oi.order_id"
                " WHERE oi.tenant_id = %(t)s"
                + ids_filter.replace("customer_id", "o.customer_id")
                + " ORDER BY oi.order_id, oi.line_no",
                params,
            )
        ).fetchall():
            items[row["order_id"]].append(
                {
                    "item_id": row["item_id"],
                    "product_id": row["product_id"],
                    "name": row["name"],
                    "price": float(row["price"]),
                    "options": row["options"],
                }
            )
        tracking: dict[str, list[str]] = defaultdict(list)
        for row in await (
            await conn.execute(
                "SELECT f.order_id, f.tracking_ids FROM order_fulfillments f JOIN orders o"
                " ON o.tenant_id = f.tenant_id AND o.id = f.order_id WHERE f.tenant_id = %(t)s"
                + ids_filter.replace("customer_id", "o.customer_id")
                + " ORDER BY f.order_id, f.line_no",
                params,
            )
        ).fetchall():
            tracking[row["order_id"]].extend(row["tracking_ids"])
        paid: dict[str, float] = defaultdict(float)
        refunded: dict[str, float] = defaultdict(float)
        methods_used: dict[str, list[str]] = defaultdict(list)
        for row in await (
            await conn.execute(
                "SELECT p.order_id, p.kind, p.amount, p.payment_method_id FROM payments p"
                " JOIN orders o ON o.tenant_id = p.tenant_id AND o.id = p.order_id"
                " WHERE p.tenant_id = %(t)s"
                + ids_filter.replace("customer_id", "o.customer_id")
                + " ORDER BY p.order_id, p.seq",
                params,
            )
        ).fetchall():
            if row["kind"] == "payment":
                paid[row["order_id"]] += float(row["amount"])
                methods_used[row["order_id"]].append(row["payment_method_id"])
            else:
                refunded[row["order_id"]] += float(row["amount"])
        for row in await (
            await conn.execute(
                "SELECT id, customer_id, status FROM orders WHERE tenant_id = %(t)s"
                + ids_filter
                + " ORDER BY id",
                params,
            )
        ).fetchall():
            oid = row["id"]
            out[row["customer_id"]]["orders"].append(
                {
                    "order_id": oid,
                    "status": row["status"],
                    "total": round(sum(i["price"] for i in items[oid]), 2),
                    "items": items[oid],
                    "tracking_ids": tracking[oid],
                    "payment_method_ids": methods_used[oid],
                    "paid": round(paid[oid], 2),
                    "refunded": round(refunded[oid], 2),
                }
            )
        for row in await (
            await conn.execute(
                "SELECT id, customer_id, kind, brand, last_four, balance FROM payment_methods"
                " WHERE tenant_id = %(t)s" + ids_filter + " ORDER BY id",
                params,
            )
        ).fetchall():
            out[row["customer_id"]]["payment_methods"].append(
                {
                    "id": row["id"],
                    "kind": row["kind"],
                    "brand": row["brand"],
                    "last_four": row["last_four"],
                    "balance": None if row["balance"] is None else float(row["balance"]),
                }
            )
        for row in await (
            await conn.execute(
                "SELECT customer_id, kind, channel FROM customer_identities"
                " WHERE tenant_id = %(t)s AND channel IS NOT NULL" + ids_filter,
                params,
            )
        ).fetchall():
            channels = out[row["customer_id"]]["profile"]["channels"]
            if row["channel"] not in channels:
                channels.append(row["channel"])
        for row in await (
            await conn.execute(
                "SELECT * FROM (SELECT id, customer_id, channel, started_at, ended_at, intent,"
                " outcome, summary, row_number() OVER (PARTITION BY customer_id"
                " ORDER BY started_at DESC) AS rn FROM interactions WHERE tenant_id = %(t)s"
                " AND customer_id IS NOT NULL" + ids_filter + ") x WHERE rn <= 5"
                " ORDER BY customer_id, started_at DESC",
                params,
            )
        ).fetchall():
            c360 = out[row["customer_id"]]
            c360["interactions"].append(
                {
                    "id": row["id"],
                    "channel": row["channel"],
                    "started_at": iso(row["started_at"]),
                    "ended_at": iso(row["ended_at"]),
                    "intent": row["intent"],
                    "outcome": row["outcome"],
                    "summary": row["summary"],
                }
            )
            if row["channel"] not in c360["profile"]["channels"]:
                c360["profile"]["channels"].append(row["channel"])
        for row in await (
            await conn.execute(
                "SELECT * FROM issues WHERE tenant_id = %(t)s AND status = 'open'"
                + ids_filter
                + " ORDER BY updated_at DESC",
                params,
            )
        ).fetchall():
            out[row["customer_id"]]["open_issues"].append(
                {
                    "id": row["id"],
                    "order_id": row["order_id"],
                    "item_ids": row["item_ids"],
                    "kind": row["kind"],
                    "description": row["description"],
                    "proposed_actions": row["proposed_actions"],
                    "opened_in": row["opened_in"],
                    "contacts": row["contacts"],
                    "created_at": iso(row["created_at"]),
                    "subject_kind": row["subject_kind"],
                    "subject_id": row["subject_id"],
                    "subject_label": row["subject_label"],
                }
            )
        for row in await (
            await conn.execute(
                "SELECT id, customer_id, kind, product, status, balance, opened_on, details"
                " FROM holdings WHERE tenant_id = %(t)s" + ids_filter + " ORDER BY id",
                params,
            )
        ).fetchall():
            out[row["customer_id"]]["holdings"].append(
                {
                    "id": row["id"],
                    "kind": row["kind"],
                    "product": row["product"],
                    "status": row["status"],
                    "balance": None if row["balance"] is None else float(row["balance"]),
                    "opened_on": row["opened_on"].isoformat() if row["opened_on"] else None,
                    "details": row["details"],
                }
            )
        for row in await (
            await conn.execute(
                "SELECT * FROM (SELECT id, customer_id, holding_id, occurred_on, description,"
                " amount, category, status, row_number() OVER (PARTITION BY customer_id"
                " ORDER BY occurred_on DESC, id) AS rn FROM transactions"
                " WHERE tenant_id = %(t)s" + ids_filter + ") x WHERE rn <= 20"
                " ORDER BY customer_id, occurred_on DESC, id",
                params,
            )
        ).fetchall():
            out[row["customer_id"]]["transactions"].append(
                {
                    "id": row["id"],
                    "holding_id": row["holding_id"],
                    "date": row["occurred_on"].isoformat(),
                    "description": row["description"],
                    "amount": float(row["amount"]),
                    "category": row["category"],
                    "status": row["status"],
                }
            )
        for row in await (
            await conn.execute(
                "SELECT id, customer_id, transaction_id, reason, status, submitted_on"
                " FROM disputes WHERE tenant_id = %(t)s" + ids_filter + " ORDER BY id",
                params,
            )
        ).fetchall():
            out[row["customer_id"]]["disputes"].append(
                {
                    "id": row["id"],
                    "transaction_id": row["transaction_id"],
                    "reason": row["reason"],
                    "status": row["status"],
                    "submitted_on": row["submitted_on"].isoformat()
                    if row["submitted_on"]
                    else None,
                }
            )
        for row in await (
            await conn.execute(
                "SELECT id, customer_id, holding_id, paid_on, amount, status FROM billing_payments"
                " WHERE tenant_id = %(t)s" + ids_filter + " ORDER BY paid_on DESC, id",
                params,
            )
        ).fetchall():
            out[row["customer_id"]]["billing"].append(
                {
                    "id": row["id"],
                    "holding_id": row["holding_id"],
                    "paid_on": row["paid_on"].isoformat(),
                    "amount": float(row["amount"]),
                    "status": row["status"],
                }
            )
        for row in await (
            await conn.execute(
                "SELECT id, customer_id, offer_id, holding_id, status, offered_at, applied_at,"
                " expires_at FROM retention_offers WHERE tenant_id = %(t)s"
                + ids_filter
                + " ORDER BY offered_at DESC, id",
                params,
            )
        ).fetchall():
            out[row["customer_id"]]["retention_offers"].append(
                {
                    "id": row["id"],
                    "offer_id": row["offer_id"],
                    "holding_id": row["holding_id"],
                    "status": row["status"],
                    "offered_at": iso(row["offered_at"]),
                    "applied_at": iso(row["applied_at"]),
                    "expires_at": iso(row["expires_at"]),
                }
            )
        await load_threads(conn, out, ids_filter, params)
    for c360 in out.values():
        names = {i["item_id"]: i["name"] for o in c360["orders"] for i in o["items"]}
        for issue in c360["open_issues"]:
            issue["item_names"] = [names[i] for i in issue["item_ids"] if i in names]
        spend = round(sum(o["paid"] for o in c360["orders"]), 2)
        refunds = round(sum(o["refunded"] for o in c360["orders"]), 2)
        deposits = [h["balance"] or 0.0 for h in c360["holdings"]
                    if h["kind"].endswith(("checking", "saving", "savings"))]  # fmt: skip
        credit = [h["balance"] or 0.0 for h in c360["holdings"] if h["kind"] == "credit_card"]
        c360["value"] = {
            "lifetime_spend": spend,
            "refunds": refunds,
            "net_spend": round(spend - refunds, 2),
            "order_count": len(c360["orders"]),
            "balances": round(sum(deposits), 2),
            "credit_balance": round(sum(credit), 2),
        }
        basis = c360["value"][config.tier_basis]
        c360["tier"] = config.tier_for(float(basis))
    return out


async def build_360(services: Services, tenant_id: str, customer_id: str) -> Customer360 | None:
    """Build one customer's 360 from PostgreSQL; ``None`` if the customer does not exist."""
    return (await build_360s(services, tenant_id, [customer_id])).get(customer_id)
