"""The demo: one real retail customer, two sessions on two channels, memory carried across.

Session 1 (chat): the customer identifies by name + zip, reports a broken item of a delivered
order, the agent proposes a return or an exchange, and the customer leaves before confirming; the
idle sweep ends the session and the memory worker writes its episode and updates the layers.
Session 2 (phone), later: the customer identifies and says only "any update?"; the reply names the
order and the open issue from session 1. Each turn prints the nodes visited, the intent, the
decision and the four memory layers loaded.

The demo checks its own claim: it exits non-zero if session 2's reply does not name the order.
Running it again works: the data load is idempotent and each run's sessions are new ones. The
customer and the open issue are the same across runs, so on the second run session 2 is the third
contact about that issue and the agent makes a warm handoff, naming the order it hands over.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from support_agent.conversation import TurnResult, end_session, run_turn, sweep_idle_sessions
from support_agent.crm.loader import load_retail
from support_agent.memory_store.episodes import latest_episodes
from support_agent.memory_store.hot import sync_hot_tier
from support_agent.memory_store.pipeline import MemoryWorker
from support_agent.services import Services

TENANT = "retail"


async def pick_customer(services: Services) -> dict[str, Any]:
    """Pick the demo's real customer (deterministic: lowest id among those that fit).

    The customer has exactly one delivered order, a unique name + zip, and an item in that order
    whose product appears in none of their other orders.

    Raises:
        RuntimeError: no customer fits (the retail data is not loaded).
    """
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                """
                WITH delivered AS (
                    SELECT customer_id, min(id) AS order_id FROM orders
                    WHERE tenant_id = %(t)s AND status = 'delivered'
                    GROUP BY customer_id HAVING count(*) = 1
                ), unique_name_zip AS (
                    SELECT first_name, last_name, zip FROM customers WHERE tenant_id = %(t)s
                    GROUP BY first_name, last_name, zip HAVING count(*) = 1
                ), candidate_items AS (
                    SELECT d.customer_id, d.order_id, oi.name
                    FROM delivered d JOIN order_items oi
                      ON oi.tenant_id = %(t)s AND oi.order_id = d.order_id
                    WHERE NOT EXISTS (
                        SELECT 1 FROM orders o2 JOIN order_items i2
                          ON i2.tenant_id = o2.tenant_id AND i2.order_id = o2.id
                        WHERE o2.tenant_id = %(t)s AND o2.customer_id = d.customer_id
                          AND o2.id <> d.order_id AND i2.name = oi.name)
                    GROUP BY d.customer_id, d.order_id, oi.name HAVING count(*) = 1
                )
                SELECT c.id, c.first_name, c.last_name, c.zip, ci.order_id, min(ci.name) AS item
                FROM candidate_items ci
                JOIN customers c ON c.tenant_id = %(t)s AND c.id = ci.customer_id
                JOIN unique_name_zip u ON u.first_name = c.first_name
                  AND u.last_name = c.last_name AND u.zip = c.zip
                GROUP BY c.id, c.first_name, c.last_name, c.zip, ci.order_id
                ORDER BY c.id LIMIT 1
                """,
                {"t": TENANT},
            )
        ).fetchone()
    if row is None:
        raise RuntimeError("no suitable demo customer in the retail data")
    return dict(row)


def show(session: str, message: str, result: TurnResult) -> None:
    """Print one turn, with the memory layers loaded for it."""
    mem = result.memory
    issue = mem.get("open_issue")
    print(f"\n[{session}] customer: {message}")
    print(f"  nodes:    {' → '.join(result.nodes)}")
    print(
        f"  intent:   {result.intent} ({(result.intent_confidence or 0):.2f})"
        f"   decision: {result.decision}   action: {result.policy.get('action')}"
        f" → {result.policy.get('outcome')}"
    )
    if result.customer_id:
        l1, l2, l4 = (
            mem.get("l1_identity") or {},
            mem.get("l2_history") or {},
            (mem.get("l4_prefs_mood") or {}),
        )
        print(f"  memory:   360 + layers from {mem.get('source')}; budget {mem.get('budget')}")
        print(
            f"    L1 identity: channels={l1.get('channels')} language={l1.get('language')} "
            f"timezone={l1.get('timezone')}"
        )
        print(
            f"    L2 history:  conversations={l2.get('totalConversations')} "
            f"trust={l2.get('trustScore')} churn={l2.get('churnRisk')} "
            f"firstContact={l2.get('firstContact')}"
        )
        print(f"    L3 episodes: {mem.get('episodes', [])}")
        print(
            f"    L4 prefs/mood: mood={l4.get('lastMood')} tone={l4.get('tonePref')} "
            f"openIssues={l4.get('openIssues')} "
            f"promises={[p['text'] for p in l4.get('promises', []) if p['status'] == 'pending']}"
        )
        print(
            "    open issue: "
            + (f"{issue['id']} on order {issue['order_id']}" if issue else "none")
        )
    print(f"  agent:    {result.reply}")


async def run_demo(services: Services) -> int:
    """Run the two-session demo; returns the process exit code (0 when the claim holds)."""
    report = await load_retail(services)
    await sync_hot_tier(services, TENANT)
    print(f"Loaded tenant '{TENANT}': {report.total} new rows (0 on a repeat run).")
    cust = await pick_customer(services)
    name = f"{cust['first_name']} {cust['last_name']}"
    order_id, item = cust["order_id"], cust["item"]
    before = await latest_episodes(services.store, TENANT, cust["id"], limit=100)
    print(
        f"Customer: {cust['id']} (delivered order {order_id}, item {item}); "
        f"{len(before)} episode(s) in memory before this run."
    )

    run = uuid.uuid4().hex[:8]
    chat = f"demo-{run}-chat"
    print("\n=== Session 1 · chat ===")
    for message in (
        f"Hi, I'm {name}, zip {cust['zip']}.",
        f"The {item} I received arrived broken.",
    ):
        show(
            "chat",
            message,
            await run_turn(
                services, tenant_id=TENANT, channel="chat", message=message, session_id=chat
            ),
        )
    print("\n  (the customer closes the chat without confirming)")
    later = datetime.now(UTC) + timedelta(seconds=services.settings.session_idle_timeout_s + 60)
    ended = await sweep_idle_sessions(services, now=later)
    applied = await MemoryWorker(services).drain()
    episodes = await latest_episodes(services.store, TENANT, cust["id"], limit=100)
    written = next((e for e in episodes if e["conversationId"] == chat), None)
    print(
        f"  idle sweep ended {len(ended)} session(s); memory worker applied {applied} job(s); "
        f"episode written: {written['summary'] if written else 'NONE'}"
    )
    if written is not None:
        print(
            f"  open issues: {[i['id'] for i in written['openIssues']]}; "
            f"promises: {written['promises']}"
        )

    phone = f"demo-{run}-phone"
    print("\n=== Session 2 · phone, later ===")
    last: TurnResult | None = None
    for message in (f"Hello, this is {name}, zip code {cust['zip']}.", "Any update?"):
        last = await run_turn(
            services, tenant_id=TENANT, channel="phone", message=message, session_id=phone
        )
        show("phone", message, last)
    await end_session(services, tenant_id=TENANT, session_id=phone)  # the customer hangs up
    await MemoryWorker(services).drain()
    after = await latest_episodes(services.store, TENANT, cust["id"], limit=100)
    ok = last is not None and order_id in last.reply and written is not None
    print(
        f"\nEpisodes for {cust['id']}: {len(before)} before, {len(after)} now (one per ended "
        "session, never duplicated)."
    )
    print(
        ("PASS" if ok else "FAIL") + f": session 2's reply {'names' if ok else 'does not name'} "
        f"order {order_id} without the customer repeating it."
    )
    return 0 if ok else 1
