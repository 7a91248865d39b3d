"""Open threads: everything a customer has going on with us, as one memory concept.

A thread is anything the customer may come back about: an issue they raised (retail item
problems, complaints, bank card or transaction issues), a dispute, a warm handoff (queued, or
resolved with the human agent's resolution and the customer's satisfaction), a pending promise,
an action whose effect is still under way (a return or exchange requested, a replacement card
ordered) or an applied retention offer. Each thread says what it concerns, where it stands, what
was done or promised, when and on which channel, in one shape for every vertical::

    {"id": "issue:ISS-…", "kind": "issue" | "dispute" | "handoff" | "promise" | "return" |
     "exchange" | "card_order" | "retention_offer",
     "status": "open" | "in_progress" | "resolved",
     "state": the record's own status ("SUBMITTED", "return requested", …),
     "subject_kind", "subject_id", "subject_label": what it concerns, in the customer's words,
     "what": what was raised or done, "outcome": how it ended (resolved threads),
     "channel", "opened_at", "updated_at": ISO-8601}

Resolved threads keep their outcome and are always reported as outcomes, never as open; those
resolved more than ``RECENT_DAYS`` ago are dropped. Built with the Customer 360
(:func:`load_threads`, a fixed number of queries for any number of customers) and served with
it from the hot tier, so recall costs no extra round trip on a turn.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from support_agent.state import Customer360, Thread
from support_agent.templates import money

#: Resolved threads older than this many days are no longer recalled.
RECENT_DAYS = 90
#: Dispute statuses that end a dispute (anything else is still under review).
_DISPUTE_DONE = ("RESOLVED", "REJECTED", "CLOSED", "WON", "LOST", "DENIED", "APPROVED")
#: Order statuses whose effect is still under way after an action.
_UNDER_WAY = {"return requested": "return", "exchange requested": "exchange"}


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


async def load_threads(
    conn: AsyncConnection[Any],
    out: dict[str, Customer360],
    ids_filter: str,
    params: dict[str, Any],
    now: datetime | None = None,
) -> None:
    """Fill ``c360["threads"]`` for every customer of ``out`` (open first, newest first).

    Args:
        conn: an open connection (dict rows).
        out: the 360s being built, by customer id (orders, holdings and issues already read).
        ids_filter: the builder's ``AND customer_id = ANY(%(ids)s)`` clause, or ``""``.
        params: the builder's query parameters (``t``, ``ids``).
        now: the time "recent" is measured from (default: now, UTC).
    """
    now = now or datetime.now(UTC)
    since = now - timedelta(days=RECENT_DAYS)
    threads: dict[str, list[Thread]] = defaultdict(list)
    item_names = {
        cid: {i["item_id"]: i["name"] for o in c["orders"] for i in o["items"]}
        for cid, c in out.items()
    }
    params = {**params, "since": since}
    issues_by_id: dict[str, Thread] = {}
    for row in await (
        await conn.execute(
            "SELECT i.*, x.channel FROM issues i LEFT JOIN interactions x"
            " ON x.tenant_id = i.tenant_id AND x.id = i.opened_in WHERE i.tenant_id = %(t)s"
            " AND (i.status = 'open' OR i.updated_at >= %(since)s)"
            + ids_filter.replace("customer_id", "i.customer_id")
            + " ORDER BY i.updated_at DESC",
            params,
        )
    ).fetchall():
        names = [item_names[row["customer_id"]].get(i) for i in row["item_ids"]]
        label = _issue_label({"order_id": row["order_id"], "subject_label": row["subject_label"],
                              "item_names": [n for n in names if n]})  # fmt: skip
        thread: Thread = {
            "id": f"issue:{row['id']}",
            "kind": "issue",
            "status": "open" if row["status"] == "open" else "resolved",
            "state": row["status"],
            "subject_kind": row["subject_kind"],
            "subject_id": row["subject_id"] or row["order_id"],
            "subject_label": label,
            "what": row["description"],
            "outcome": None,
            "channel": row["channel"],
            "opened_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
        }
        issues_by_id[row["id"]] = thread
        threads[row["customer_id"]].append(thread)
    for row in await (
        await conn.execute(
            "SELECT h.id, h.customer_id, h.status, h.reason, h.resolution, h.created_at,"
            " h.resolved_at, h.panel->'current_issue' AS issue, x.channel"
            " FROM handoffs h LEFT JOIN interactions x ON x.tenant_id = h.tenant_id"
            " AND x.id = h.session_id WHERE h.tenant_id = %(t)s AND h.customer_id IS NOT NULL"
            " AND (h.status = 'open' OR h.resolved_at >= %(since)s)"
            + ids_filter.replace("customer_id", "h.customer_id")
            + " ORDER BY h.created_at DESC",
            params,
        )
    ).fetchall():
        issue = row["issue"] or {}
        resolved = row["status"] == "resolved"
        thread = {
            "id": f"handoff:{row['id']}",
            "kind": "handoff",
            "status": "resolved" if resolved else "in_progress",
            "state": row["status"],
            "subject_kind": issue.get("subject_kind"),
            "subject_id": issue.get("subject_id") or issue.get("order_id"),
            "subject_label": issue.get("subject_label") or _issue_label(issue) or "your request",
            "what": f"passed to a colleague ({row['reason']})",
            "outcome": row["resolution"] if resolved else None,
            "channel": row["channel"],
            "opened_at": _iso(row["created_at"]),
            "updated_at": _iso(row["resolved_at"] or row["created_at"]),
        }
        linked = issues_by_id.get(str(issue.get("id") or ""))
        if linked is not None and resolved:  # the issue's outcome is the colleague's resolution
            linked["outcome"] = row["resolution"]
        threads[row["customer_id"]].append(thread)
    for row in await (
        await conn.execute(
            "SELECT p.id, p.customer_id, p.text, p.subject_id, p.created_at,"
            " x.channel FROM promises p LEFT JOIN interactions x ON x.tenant_id = p.tenant_id"
            " AND x.id = p.session_id WHERE p.tenant_id = %(t)s AND p.status = 'pending'"
            + ids_filter.replace("customer_id", "p.customer_id")
            + " ORDER BY p.created_at DESC",
            params,
        )
    ).fetchall():
        threads[row["customer_id"]].append({
            "id": f"promise:{row['id']}", "kind": "promise", "status": "open",
            "state": "pending", "subject_kind": None, "subject_id": row["subject_id"],
            "subject_label": row["subject_id"] or "what we promised", "what": row["text"],
            "outcome": None, "channel": row["channel"], "opened_at": _iso(row["created_at"]),
            "updated_at": _iso(row["created_at"]),
        })  # fmt: skip
    for row in await (
        await conn.execute(
            "SELECT d.id, d.customer_id, d.transaction_id, d.reason, d.status, d.submitted_on,"
            " t.description, t.amount, t.occurred_on FROM disputes d LEFT JOIN transactions t"
            " ON t.tenant_id = d.tenant_id AND t.id = d.transaction_id WHERE d.tenant_id = %(t)s"
            + ids_filter.replace("customer_id", "d.customer_id")
            + " ORDER BY d.submitted_on DESC NULLS LAST, d.id",
            params,
        )
    ).fetchall():
        done = str(row["status"]).upper() in _DISPUTE_DONE
        submitted = row["submitted_on"]
        if done and submitted is not None and submitted < since.date():
            continue
        what = f"transaction {row['transaction_id']}"
        if row["amount"] is not None:
            what = f"the {money(float(row['amount']))} {row['description']} payment"
        if row["occurred_on"] is not None:
            what += f" of {row['occurred_on'].isoformat()}"
        threads[row["customer_id"]].append({
            "id": f"dispute:{row['id']}", "kind": "dispute",
            "status": "resolved" if done else "in_progress", "state": row["status"],
            "subject_kind": "transaction", "subject_id": row["transaction_id"],
            "subject_label": what, "what": f"disputed ({row['reason']})",
            "outcome": str(row["status"]).lower() if done else None, "channel": None,
            "opened_at": _iso(submitted), "updated_at": _iso(submitted),
        })  # fmt: skip
    for row in await (
        await conn.execute(
            "SELECT c.id, c.customer_id, c.holding_id, c.reason, c.status, c.ordered_at,"
            " h.product, h.details->>'last_four' AS four FROM card_orders c LEFT JOIN holdings h"
            " ON h.tenant_id = c.tenant_id AND h.id = c.holding_id WHERE c.tenant_id = %(t)s"
            " AND c.ordered_at >= %(since)s"
            + ids_filter.replace("customer_id", "c.customer_id")
            + " ORDER BY c.ordered_at DESC",
            params,
        )
    ).fetchall():
        card = f"your {row['product'] or 'card'}" + (
            f" ending in {row['four']}" if row["four"] else ""
        )
        threads[row["customer_id"]].append({
            "id": f"card_order:{row['id']}", "kind": "card_order",
            "status": "in_progress" if row["status"] == "ORDERED" else "resolved",
            "state": row["status"], "subject_kind": "card", "subject_id": row["holding_id"],
            "subject_label": card, "what": f"a replacement card ordered ({row['reason']})",
            "outcome": None if row["status"] == "ORDERED" else str(row["status"]).lower(),
            "channel": None, "opened_at": _iso(row["ordered_at"]),
            "updated_at": _iso(row["ordered_at"]),
        })  # fmt: skip
    for cid, c360 in out.items():
        covered = {  # an open issue about an order already tells where its return stands
            t["subject_id"] for t in threads[cid] if t["kind"] == "issue" and t["status"] == "open"
        }
        for order in c360["orders"]:
            kind = _UNDER_WAY.get(order["status"])
            if kind is None:
                continue
            for thread in threads[cid]:  # an issue about the order now says where it stands
                if thread["kind"] == "issue" and thread["subject_id"] == order["order_id"]:
                    thread["state"] = order["status"]
            if order["order_id"] in covered:
                continue
            held = " and the ".join(sorted({i["name"] for i in order["items"]}))
            threads[cid].append({
                "id": f"order:{order['order_id']}", "kind": kind, "status": "in_progress",
                "state": order["status"], "subject_kind": "order",
                "subject_id": order["order_id"],
                "subject_label": f"order {order['order_id']} (the {held})",
                "what": f"{kind} requested", "outcome": None, "channel": None,
                "opened_at": None, "updated_at": None,
            })  # fmt: skip
        for offer in c360.get("retention_offers", []):
            if (
                offer["status"] == "applied"
                and (offer.get("applied_at") or "") >= since.isoformat()
            ):
                threads[cid].append({
                    "id": f"retention_offer:{offer['id']}", "kind": "retention_offer",
                    "status": "resolved", "state": "applied", "subject_kind": "card",
                    "subject_id": offer.get("holding_id"),
                    "subject_label": "the " + str(offer["offer_id"]).replace("_", " "),
                    "what": "a retention offer accepted", "outcome": "applied",
                    "channel": None, "opened_at": offer.get("offered_at"),
                    "updated_at": offer.get("applied_at"),
                })  # fmt: skip
        rank = {"open": 0, "in_progress": 0, "resolved": 1}
        ordered = sorted(threads[cid], key=lambda t: t.get("updated_at") or "", reverse=True)
        ordered.sort(key=lambda t: rank[t["status"]])  # stable: newest first in each group
        c360["threads"] = ordered


def _issue_label(issue: dict[str, Any]) -> str:
    """What an issue concerns, in the customer's words.

    "the Kettle and the Lamp from order #W…", else the issue's own label, else "order #W…"
    ("" when it names nothing).
    """
    names, order_id = issue.get("item_names") or [], issue.get("order_id")
    if order_id and names:
        return f"the {' and the '.join(names)} from order {order_id}"
    return str(issue.get("subject_label") or (f"order {order_id}" if order_id else ""))
