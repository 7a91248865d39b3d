"""The demo: a retail customer's memory across channels, then a bank customer's disputed fee.

Retail: one real customer, two sessions on two channels, memory carried across.

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

Bank (:func:`run_bank_demo`): a real Rho-Bank customer questions a fee, the policy approves a
dispute after they confirm, and their growing frustration ends in a warm handoff with the full
panel.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from support_agent.conversation import (
    Agent,
    TurnResult,
    end_session,
    run_turn,
    sweep_idle_sessions,
)
from support_agent.crm.customer360 import build_360s
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
        about = (issue or {}).get("subject_label")
        print("    open issue: " + (f"{issue['id']} on {about}" if issue else "none"))
    print(f"  agent:    {result.reply}")


async def _load(agent: Agent, tenant_id: str) -> int:
    """Load a tenant's data set through its vertical and sync its hot tier; rows inserted."""
    inserted = await agent.deps(tenant_id).vertical.load(agent.services, tenant_id)
    await sync_hot_tier(agent.services, tenant_id)
    return sum(inserted.values())


async def run_demo(agent: Agent) -> int:
    """Run the two-session demo; returns the process exit code (0 when the claim holds)."""
    services = agent.services
    print(f"Loaded tenant '{TENANT}': {await _load(agent, TENANT)} new rows (0 on a repeat run).")
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
                agent, tenant_id=TENANT, channel="chat", message=message, session_id=chat
            ),
        )
    print("\n  (the customer closes the chat without confirming)")
    later = datetime.now(UTC) + timedelta(seconds=services.settings.session_idle_timeout_s + 60)
    ended = await sweep_idle_sessions(agent, now=later, only=[chat])  # never others' sessions
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
            agent, tenant_id=TENANT, channel="phone", message=message, session_id=phone
        )
        show("phone", message, last)
    await end_session(agent, tenant_id=TENANT, session_id=phone)  # the customer hangs up
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


async def run_demos(agent: Agent) -> int:
    """The retail memory demo, then the bank decisions demo; 0 when both claims hold."""
    retail = await run_demo(agent)
    bank = await run_bank_demo(agent)
    return retail or bank


BANK = "bank"
#: Every field of the human agent's panel the bank scenario checks (``handoff.build_panel``).
PANEL_FIELDS = ("header", "summary", "current_issue", "tried", "reason", "timeline",
                "suggested_resolutions", "quick_actions")  # fmt: skip
HEADER_FIELDS = ("name", "tier", "tenure_days", "clv", "churn_risk", "sentiment", "vip")


async def pick_bank_customer(services: Services, *, any_fee: bool = False) -> dict[str, Any]:
    """Pick the bank scenario's real customer and the fee they dispute (deterministic).

    Among customers outside the high-value tiers (whose billing disputes go straight to a human),
    the one with the most fee transactions among their 20 latest that have no dispute yet (ties:
    lowest id); the fee is their latest such one whose amount no other recent debit of
    theirs shares, so "a $X fee" names exactly one transaction. Once earlier runs have disputed
    every such fee, disputed ones count too (``any_fee``): the policy then denies a second dispute
    and the scenario still ends in the warm handoff.

    Returns:
        ``{"id", "email", "date_of_birth", "first_name", "transaction_id", "description",
        "amount", "date"}``.

    Raises:
        RuntimeError: no customer fits (the bank data is not loaded, or every fee is disputed).
    """
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                """
                WITH recent AS (
                    SELECT t.*, row_number() OVER (PARTITION BY customer_id
                        ORDER BY occurred_on DESC, id) AS rn
                    FROM transactions t WHERE tenant_id = %(t)s
                ), debits AS (
                    SELECT * FROM recent WHERE rn <= 20 AND amount < 0
                ), fees AS (
                    SELECT d.* FROM debits d
                    WHERE d.description ~* '\\mfees?\\M'
                      AND (%(any)s OR NOT EXISTS (SELECT 1 FROM disputes x
                           WHERE x.tenant_id = %(t)s AND x.transaction_id = d.id))
                      AND (SELECT count(*) FROM debits o WHERE o.customer_id = d.customer_id
                           AND o.amount = d.amount) = 1
                ), ranked AS (
                    SELECT customer_id, count(*) AS n FROM fees GROUP BY customer_id
                )
                SELECT c.id, c.email, c.date_of_birth, c.first_name, f.id AS transaction_id,
                       f.description,
                       -f.amount AS amount, f.occurred_on AS date
                FROM ranked r JOIN customers c ON c.tenant_id = %(t)s AND c.id = r.customer_id
                JOIN LATERAL (SELECT * FROM fees WHERE customer_id = r.customer_id
                              ORDER BY occurred_on DESC, id LIMIT 1) f ON true
                ORDER BY r.n DESC, c.id
                """,
                {"t": BANK, "any": any_fee},
            )
        ).fetchall()
    high_value = services.tenants.config(BANK).handoff.high_value_tiers
    tiers = {
        cid: c["tier"]
        for cid, c in (await build_360s(services, BANK, [r["id"] for r in rows])).items()
    }
    row = next((r for r in rows if tiers.get(r["id"]) not in high_value), None)
    if row is None and not any_fee:  # every fee disputed by earlier runs: replay the latest one
        return await pick_bank_customer(services, any_fee=True)
    if row is None:
        raise RuntimeError("no bank customer with a fee: run `support-agent load bank`")
    return dict(row)


async def run_bank_demo(agent: Agent) -> int:
    """The bank scenario: a disputed fee, growing frustration, a resolution and a warm handoff.

    A real Rho-Bank customer verifies with two facts on file (email and date of birth, the bank's
    policy) and questions a fee from their statement; the
    policy engine approves a dispute once they confirm, and it is filed on the systems of record.
    The customer then grows angry about the fees; the frustration trigger hands them to a human
    with the whole panel pre-loaded. Returns 0 when the dispute exists in the CRM or the customer
    was handed off, and any handoff's panel has every field.
    """
    services = agent.services
    print(f"\nLoaded tenant '{BANK}': {await _load(agent, BANK)} new rows (0 on a repeat run).")
    cust = await pick_bank_customer(services)
    fee = f"${float(cust['amount']):.2f}"
    print(f"Customer: {cust['id']}; fee questioned: {cust['description']} {fee} on {cust['date']}")
    session = f"demo-{uuid.uuid4().hex[:8]}-bank"
    results: list[TurnResult] = []
    messages = (
        f"Hi, my email is {cust['email']} and my date of birth is {cust['date_of_birth']:%m/%d/%Y}",
        f"Why was I charged a {fee} fee on {cust['date']:%b %d}? That doesn't look right to me.",
        "yes",
        "And there are more of these fees every week. This is ridiculous, I'm fed up with it.",
    )
    print("\n=== Bank · chat ===")
    for message in messages:
        result = await run_turn(
            agent, tenant_id=BANK, channel="chat", message=message, session_id=session
        )
        results.append(result)
        show("bank", message, result)
        if result.decision == "escalate":
            break
    async with services.pool.connection() as conn:
        dispute = await (
            await conn.execute(
                "SELECT id, status FROM disputes WHERE tenant_id = %s AND transaction_id = %s",
                (BANK, cust["transaction_id"]),
            )
        ).fetchone()
    panel = results[-1].handoff or {}
    missing = [f for f in PANEL_FIELDS if not panel.get(f)]
    missing += [f"header.{f}" for f in HEADER_FIELDS if (panel.get("header") or {}).get(f) is None]
    if panel:
        print("\n  Human agent's panel (warm handoff):")
        header = panel["header"]
        print("    header:  " + ", ".join(f"{k}={header.get(k)}" for k in HEADER_FIELDS))
        print(f"    summary: {panel['summary']}")
        print(f"    reason:  {panel['reason']}")
        print(f"    issue:   {(panel.get('current_issue') or {}).get('subject_label')}")
        print(f"    tried:   {panel['tried']}")
        print(f"    timeline: {len(panel['timeline'])} entries")
        suggested = [(r["title"], r["success_rate"]) for r in panel["suggested_resolutions"]]
        print(f"    suggested resolutions: {suggested}")
        print(f"    quick actions: {[a['action'] for a in panel['quick_actions']]}")
    await end_session(agent, tenant_id=BANK, session_id=session)
    await MemoryWorker(services).drain()
    # either ending the issue allows: the policy-approved dispute, or a warm handoff (here the
    # frustration trigger; on a customer already in contact about the fee, possibly earlier)
    ok = (dispute is not None or bool(panel)) and not (panel and missing)
    print(
        ("PASS" if ok else "FAIL")
        + f": dispute {dispute['id'] if dispute else 'NOT FILED'}"
        + (", warm handoff with every panel field" if panel and not missing else "")
        + (f"; missing panel fields {missing}" if missing else "")
        + ("" if panel else "; no handoff")
        + "."
    )
    return 0 if ok else 1
