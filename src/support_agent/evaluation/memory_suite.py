"""``support-agent eval memory``: does memory carry every open thread across sessions?

Scenario families, each played ``n`` times with a different real customer, every session on
another channel and with another identifier (email; name + zip or user id + zip in retail; phone
in the bank), through :func:`~support_agent.conversation.run_turn` (the code path of
``/v1/chat``), sessions ended as a client ends them:

==================  =============================================================================
three_sessions      a problem raised; the return accepted in session 2; "did my return go
                    through?" in session 3
open_threads        two problems on two orders in one session; "following up on both"
bank_dispute        a fee disputed and filed; "any news on the dispute I opened?"
card_replacement    a damaged card replaced; "any update on my replacement card?"
retention_offer     a retention offer accepted; "any update on the offer you made me?"
handoff_outcome     a human resolves the handoff; the next session opens with the outcome
history             "when did I last contact you?" answered with the date and channel
stale               a return done; "any update?" never calls it open
erasure             the customer erased; the next session recalls nothing
no_leak             another customer's follow-up never shows this customer's data
==================  =============================================================================

Each conversation starts from the customer as loaded (erased, then reloaded from the tenant's
data file) and each family plays distinct customers. The bank data set has 39 customers: a bank
family plays at most as many conversations as it finds customers who fit it outside the
high-value tiers (whose billing disputes go straight to a human); the report gives each
family's ``n``.

Every conversation ends with "thanks, that's all" (a closing reply, no greeting, no action).
Each turn is scored on: carries the thread (the expected facts are in the reply), never re-asks
what a thread identifies ("Which order/transaction/card…"), never stale (a resolved thread told as
open), never leaks (another customer's ids or name), closing replies. Every customer played is
reset to its loaded state afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support_agent.conversation import Agent, TurnResult, end_session, run_turn
from support_agent.crm.customer360 import build_360
from support_agent.errors import NotFoundError
from support_agent.evaluation.conversations import reset_customer
from support_agent.handoff import resolve_handoff
from support_agent.memory_store.erasure import erase_customer
from support_agent.templates import money

_REASK = re.compile(
    r"\b(which (order|transaction|card|item)s? (do you mean|is it|it concerns)|tell me which|"
    r"which order it concerns)\b",
    re.I,
)
_STALE = re.compile(r"\bstill open\b", re.I)


@dataclass
class Conversation:
    """One scenario played with one customer: its turns and every check made."""

    family: str
    tenant: str
    customer: str
    turns: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"turns": 0, "reasks": 0, "stale": 0, "leaks": 0}
    )

    def check(self, ok: bool, what: str) -> None:
        """Record a failed expectation."""
        if not ok:
            self.failures.append(what)


@dataclass
class Ctx:
    """What a scenario needs: the agent, and the other customers' data it must never show."""

    agent: Agent
    foreign: list[str]
    source: Path


async def _say(
    ctx: Ctx,
    conv: Conversation,
    message: str,
    session: str | None,
    channel: str = "chat",
    *,
    expect: tuple[str, ...] = (),
    identifies: bool = True,
) -> TurnResult:
    result = await run_turn(ctx.agent, tenant_id=conv.tenant, channel=channel, message=message,
                            session_id=session)  # fmt: skip
    reply = result.reply
    conv.counts["turns"] += 1
    reask = identifies and _REASK.search(reply) is not None
    stale = _STALE.search(reply) is not None and conv.family in ("stale", "three_sessions")
    leak = any(f and f in reply for f in ctx.foreign)
    conv.counts["reasks"] += reask
    conv.counts["stale"] += stale
    conv.counts["leaks"] += leak
    missing = [e for e in expect if e.lower() not in reply.lower()]
    conv.check(not missing, f"{message!r}: missing {missing} in {reply!r}")
    conv.check(not reask, f"{message!r}: re-asked: {reply!r}")
    conv.check(not stale, f"{message!r}: stale: {reply!r}")
    conv.check(not leak, f"{message!r}: leaked another customer's data: {reply!r}")
    conv.turns.append({"session": result.session_id, "channel": channel, "customer": message,
                       "agent": reply, "decision": result.decision,
                       "node_ms": result.node_ms})  # fmt: skip
    return result


async def _close(ctx: Ctx, conv: Conversation, session: str) -> None:
    """End with thanks: a closing reply, no greeting, no action; then the client ends it."""
    bye = await _say(ctx, conv, "thanks, that's all", session)
    conv.check("welcome" in bye.reply.lower() and "hello" not in bye.reply.lower()
               and bye.decision == "respond", f"closing reply: {bye.reply!r}")  # fmt: skip
    await end_session(ctx.agent, tenant_id=conv.tenant, session_id=session)


async def _rows(agent: Agent, sql: str, *args: object) -> list[dict[str, Any]]:
    async with agent.services.pool.connection() as conn:
        return [dict(r) for r in await (await conn.execute(sql, args)).fetchall()]


_FRESH_RETAIL = """
    SELECT c.id, c.email, c.first_name, c.last_name, c.zip FROM customers c
    WHERE c.tenant_id = 'retail'
      AND (SELECT count(*) FROM customers c2 WHERE c2.tenant_id = 'retail'
           AND c2.first_name = c.first_name AND c2.last_name = c.last_name AND c2.zip = c.zip) = 1
      AND (SELECT count(*) FROM orders o WHERE o.tenant_id = 'retail'
           AND o.customer_id = c.id AND o.status = 'delivered') >= 1
    ORDER BY c.id
"""


async def _retail_customer(ctx: Ctx, taken: set[str], need: int = 1) -> dict[str, Any]:
    """A retail customer (reset to a fresh start) with ``need`` delivered orders.

    Each order holds an item whose product name appears nowhere else in the customer's orders
    (so naming it is unambiguous).
    """
    for row in await _rows(ctx.agent, _FRESH_RETAIL):
        if row["id"] in taken:
            continue
        lines = await _rows(ctx.agent, """
            SELECT o.id, o.status, i.name FROM orders o JOIN order_items i
            ON i.tenant_id = o.tenant_id AND i.order_id = o.id WHERE o.tenant_id = 'retail'
            AND o.customer_id = %s ORDER BY o.id, i.line_no""", row["id"])  # fmt: skip
        names = [line["name"] for line in lines]
        orders: dict[str, str] = {}
        for line in lines:
            if line["status"] == "delivered" and names.count(line["name"]) == 1:
                orders.setdefault(line["id"], line["name"])
        if len(orders) >= need:
            taken.add(row["id"])
            await reset_customer(ctx.agent, "retail", row["id"], ctx.source)  # a fresh start
            (row,) = await _rows(  # its details as reloaded (a test may have changed them)
                ctx.agent,
                "SELECT id, email, first_name, last_name, zip FROM customers"
                " WHERE tenant_id = 'retail' AND id = %s",
                row["id"],
            )
            picked = list(orders.items())[: max(need, 1)]
            return {**row, "orders": [{"id": o, "item": n} for o, n in picked]}
    raise NotFoundError("no fresh retail customer left for the memory suite")


def _retail_ids(c: dict[str, Any]) -> list[tuple[str, str]]:
    """(opening line, channel) per session: email, name + zip, user id + zip."""
    return [
        (f"Hi, my email is {c['email']}, zip code {c['zip']}.", "chat"),
        (f"Hello, I'm {c['first_name']} {c['last_name']}, zip code {c['zip']}.", "phone"),
        (f"Hi, my user id is {c['id']} and my zip code is {c['zip']}.", "email"),
    ]


async def _return_accepted(
    ctx: Ctx, conv: Conversation, order: dict[str, str], session: str, channel: str
) -> None:
    """The customer asks to return the item (naming it, not the order) and says yes."""
    proposal = await _say(ctx, conv, f"I'd like to return the {order['item']}", session, channel,
                          expect=(order["id"],))  # fmt: skip
    conv.check(proposal.decision == "confirm", f"return not proposed: {proposal.reply!r}")
    if proposal.decision == "confirm":
        await _say(ctx, conv, "yes", session, channel, expect=("Done",))


async def three_sessions(ctx: Ctx, conv: Conversation, c: dict[str, Any]) -> None:
    """A problem; the return accepted in session 2; "did my return go through?" in session 3."""
    ids, order = _retail_ids(c), c["orders"][0]
    s1 = (await _say(ctx, conv, ids[0][0], None, ids[0][1])).session_id
    await _say(ctx, conv, f"The {order['item']} from order {order['id']} arrived broken.", s1,
               ids[0][1], expect=(order["id"],))  # fmt: skip
    await _say(ctx, conv, "not now, I need to think about it", s1, ids[0][1])
    await _close(ctx, conv, s1)
    s2 = (await _say(ctx, conv, ids[1][0], None, ids[1][1])).session_id
    await _return_accepted(ctx, conv, order, s2, ids[1][1])
    await _close(ctx, conv, s2)
    s3 = (await _say(ctx, conv, ids[2][0], None, ids[2][1])).session_id
    await _say(ctx, conv, "did my return go through?", s3, ids[2][1],
               expect=(order["id"], "return"))  # fmt: skip
    await _close(ctx, conv, s3)


async def open_threads(ctx: Ctx, conv: Conversation, c: dict[str, Any]) -> None:
    """Two problems in one session; "following up on both" in the next."""
    ids, (a, b) = _retail_ids(c), c["orders"]
    s1 = (await _say(ctx, conv, ids[0][0], None, ids[0][1])).session_id
    await _say(ctx, conv, f"The {a['item']} from order {a['id']} arrived broken.", s1)
    await _say(ctx, conv, f"And the {b['item']} from order {b['id']} is scratched.", s1)
    await _close(ctx, conv, s1)
    s2 = (await _say(ctx, conv, ids[1][0], None, ids[1][1])).session_id
    await _say(ctx, conv, "I'm following up on both of my complaints", s2, ids[1][1],
               expect=(a["id"], b["id"]))  # fmt: skip
    await _close(ctx, conv, s2)


async def handoff_outcome(ctx: Ctx, conv: Conversation, c: dict[str, Any]) -> None:
    """A colleague resolves the handoff; the next session opens with what they did."""
    ids, order = _retail_ids(c), c["orders"][0]
    s1 = (await _say(ctx, conv, ids[0][0], None, ids[0][1])).session_id
    await _say(ctx, conv, f"The {order['item']} from order {order['id']} arrived broken.", s1)
    human = await _say(ctx, conv, "I want to talk to a real person", s1)
    conv.check(human.handoff is not None, f"no handoff: {human.reply!r}")
    if human.handoff is None:
        return
    fix = f"shipped a free replacement {order['item']}"
    await resolve_handoff(ctx.agent.services, "retail", human.handoff["handoff_id"],
                          resolution=fix, satisfaction=5)  # fmt: skip
    opening = await _say(ctx, conv, ids[1][0], None, ids[1][1], expect=(fix,))
    await _say(ctx, conv, "I'm following up on my complaint", opening.session_id, ids[1][1],
               expect=(fix,))  # fmt: skip
    await _close(ctx, conv, opening.session_id)


async def history(ctx: Ctx, conv: Conversation, c: dict[str, Any]) -> None:
    """Asked when they last contacted us: the date and channel of the last session."""
    ids = _retail_ids(c)
    s1 = (await _say(ctx, conv, ids[0][0], None, ids[0][1])).session_id
    await _say(ctx, conv, f"what's the status of order {c['orders'][0]['id']}?", s1)
    await _close(ctx, conv, s1)
    (row,) = await _rows(ctx.agent, "SELECT started_at FROM interactions WHERE"
                         " tenant_id = 'retail' AND id = %s", s1)  # fmt: skip
    s2 = (await _say(ctx, conv, ids[2][0], None, ids[2][1])).session_id
    await _say(ctx, conv, "When did I last contact you?", s2, ids[2][1],
               expect=(row["started_at"].strftime("%b %-d"), ids[0][1]))  # fmt: skip
    await _close(ctx, conv, s2)


async def stale(ctx: Ctx, conv: Conversation, c: dict[str, Any]) -> None:
    """A return done in session 1; "any update?" later never calls the problem open."""
    ids, order = _retail_ids(c), c["orders"][0]
    s1 = (await _say(ctx, conv, ids[0][0], None, ids[0][1])).session_id
    await _say(ctx, conv, f"The {order['item']} from order {order['id']} arrived broken.", s1)
    await _return_accepted(ctx, conv, order, s1, ids[0][1])
    await _close(ctx, conv, s1)
    s2 = (await _say(ctx, conv, ids[1][0], None, ids[1][1])).session_id
    await _say(ctx, conv, "any update on my return?", s2, ids[1][1],
               expect=(order["id"], "return"))  # fmt: skip
    await _close(ctx, conv, s2)


async def erasure(ctx: Ctx, conv: Conversation, c: dict[str, Any]) -> None:
    """Erased: the next session finds no customer and recalls nothing."""
    ids, order = _retail_ids(c), c["orders"][0]
    s1 = (await _say(ctx, conv, ids[0][0], None, ids[0][1])).session_id
    await _say(ctx, conv, f"The {order['item']} from order {order['id']} arrived broken.", s1)
    await _close(ctx, conv, s1)
    await erase_customer(ctx.agent.services, "retail", c["id"])
    ctx.foreign.extend([order["id"], c["first_name"] + " " + c["last_name"]])
    again = await _say(ctx, conv, ids[0][0], None, ids[0][1])
    follow = await _say(ctx, conv, "any update on my complaint?", again.session_id,
                        identifies=False)  # fmt: skip
    conv.check("verified" not in again.reply, f"an erased customer verified: {again.reply!r}")
    conv.check(follow.decision != "execute", "acted for an erased customer")


async def no_leak(ctx: Ctx, conv: Conversation, c: dict[str, Any], other: dict[str, Any]) -> None:
    """Another customer's follow-up never shows this customer's orders or name."""
    ids, order = _retail_ids(c), c["orders"][0]
    s1 = (await _say(ctx, conv, ids[0][0], None, ids[0][1])).session_id
    await _say(ctx, conv, f"The {order['item']} from order {order['id']} arrived broken.", s1)
    await _close(ctx, conv, s1)
    ctx.foreign.extend([order["id"], c["email"], f"{c['first_name']} {c['last_name']}"])
    o_ids = _retail_ids(other)
    s2 = (await _say(ctx, conv, o_ids[1][0], None, o_ids[1][1])).session_id
    await _say(ctx, conv, "any update on my complaint?", s2, o_ids[1][1], identifies=False)
    await _say(ctx, conv, f"what about order {order['id']}?", s2, o_ids[1][1], identifies=False)
    await _close(ctx, conv, s2)


_BANK_FEES = """
    WITH recent AS (SELECT t.*, row_number() OVER (PARTITION BY customer_id
                    ORDER BY occurred_on DESC, id) AS rn FROM transactions t
                    WHERE tenant_id = 'bank'),
         debits AS (SELECT * FROM recent WHERE rn <= 20 AND amount < 0)
    SELECT DISTINCT ON (c.id) c.id, c.email, c.phone, c.date_of_birth,
           d.id AS transaction_id, -d.amount AS amount, d.description
    FROM debits d JOIN customers c ON c.tenant_id = 'bank' AND c.id = d.customer_id
    WHERE c.phone IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM disputes x WHERE x.tenant_id = 'bank'
                      AND x.transaction_id = d.id)
      AND (SELECT count(*) FROM debits o WHERE o.customer_id = d.customer_id
           AND o.amount = d.amount) = 1
    ORDER BY c.id, d.occurred_on DESC, d.id
"""
# An active card the customer can name alone: a debit card by its last four digits, or a credit
# card whose product name no other card of the customer contains.
_BANK_CARDS = """
    SELECT DISTINCT ON (c.id) c.id, c.email, c.phone, c.date_of_birth, h.id AS holding_id,
           h.kind, h.product, h.details->>'last_four' AS four
    FROM customers c JOIN holdings h ON h.tenant_id = c.tenant_id AND h.customer_id = c.id
    WHERE c.tenant_id = 'bank' AND h.status = 'ACTIVE' AND c.phone IS NOT NULL
      AND ((h.kind = 'debit_card' AND h.details->>'last_four' IS NOT NULL)
           OR (h.kind = 'credit_card'
               AND NOT EXISTS (SELECT 1 FROM holdings x WHERE x.tenant_id = 'bank'
                               AND x.customer_id = c.id AND x.id <> h.id
                               AND x.kind = 'credit_card'
                               AND position(lower(h.product) IN lower(x.product)) > 0)))
    ORDER BY c.id, h.kind DESC, h.id
"""
# A customer holding an active credit card with an annual fee (the retention protocol's cards).
_BANK_FEE_CARDS = """
    SELECT DISTINCT c.id, c.email, c.phone, c.date_of_birth
    FROM customers c JOIN holdings h ON h.tenant_id = c.tenant_id AND h.customer_id = c.id
    JOIN offers o ON o.tenant_id = c.tenant_id AND o.kind = 'card_product'
         AND o.terms->>'product' = h.product
    WHERE c.tenant_id = 'bank' AND h.kind = 'credit_card' AND h.status = 'ACTIVE'
      AND c.phone IS NOT NULL AND (o.terms->>'annual_fee')::numeric > 0
    ORDER BY c.id
"""


async def _bank_customer(ctx: Ctx, sql: str, taken: set[str]) -> dict[str, Any]:
    """A bank customer (reset to a fresh start) outside the high-value tiers.

    High-value customers' billing disputes go straight to a human, so they are skipped.

    Raises:
        NotFoundError: no customer of ``sql`` left.
    """
    high = ctx.agent.services.tenants.config("bank").handoff.high_value_tiers
    for row in await _rows(ctx.agent, sql):
        if row["id"] in taken:
            continue
        taken.add(row["id"])
        await reset_customer(ctx.agent, "bank", row["id"], ctx.source)
        c360 = await build_360(ctx.agent.services, "bank", row["id"])
        if c360 is not None and c360.get("tier") not in high:
            return row
    raise NotFoundError("no bank customer left for the memory suite")


async def _bank_done_then_asked(
    ctx: Ctx,
    conv: Conversation,
    c: dict[str, Any],
    *,
    request: str,
    what: str,
    follow_up: str,
    expect: tuple[str, ...],
    offer: bool = False,
) -> None:
    """An action accepted by email, then asked about by phone.

    Session 1: ``request`` and its proposal accepted; session 2: ``follow_up`` must carry
    ``expect``. A write is proposed as a ``confirm`` decision and accepted with "yes"; a
    retention offer rides on a reply (its approval interrupt) and is accepted with "yes, please
    do that".
    """
    born = f"{c['date_of_birth']:%m/%d/%Y}"  # the bank's policy: two facts on file
    s1 = (await _say(ctx, conv, f"Hi, my email is {c['email']}, born {born}", None)).session_id
    proposal = await _say(ctx, conv, request, s1)
    proposed = proposal.approval is not None if offer else proposal.decision == "confirm"
    conv.check(proposed, f"{what} not proposed: {proposal.reply!r}")
    if proposed and offer:
        await _say(ctx, conv, "yes, please do that", s1, expect=("Done",))
    elif proposed:
        await _say(ctx, conv, "yes", s1)
    await _close(ctx, conv, s1)
    s2 = (await _say(ctx, conv, f"hi, my phone is {c['phone']}, born {born}", None,
                     "phone")).session_id  # fmt: skip
    await _say(ctx, conv, follow_up, s2, "phone", expect=expect)
    await _close(ctx, conv, s2)


async def bank_dispute(ctx: Ctx, conv: Conversation, c: dict[str, Any]) -> None:
    """A fee disputed and filed; "any news on the dispute I opened?" by phone."""
    fee = money(float(c["amount"]))
    await _bank_done_then_asked(
        ctx, conv, c, request=f"I want to dispute the {fee} charge from {c['description']}",
        what="dispute", follow_up="Any news on the dispute I opened?", expect=(fee, "submitted"),
    )  # fmt: skip


async def card_replacement(ctx: Ctx, conv: Conversation, c: dict[str, Any]) -> None:
    """A damaged card replaced; "any update on my replacement card?" by phone."""
    card = f"debit card ending in {c['four']}" if c["kind"] == "debit_card" else c["product"]
    await _bank_done_then_asked(
        ctx, conv, c, request=f"My {card} is damaged and doesn't work anymore, I need a new one",
        what="replacement", follow_up="Any update on my replacement card?",
        expect=("replacement card was ordered",),
    )  # fmt: skip


async def retention_offer(ctx: Ctx, conv: Conversation, c: dict[str, Any]) -> None:
    """A retention offer accepted; "any update on the offer you made me?" by phone."""
    await _bank_done_then_asked(
        ctx, conv, c, offer=True,
        request="Honestly I'd rather close my credit card, paying the yearly fee makes no sense",
        what="offer", follow_up="Any update on the offer you made me?", expect=("applied",),
    )  # fmt: skip


Family = Callable[[Ctx, Conversation, set[str]], Awaitable[None]]


def _retail(
    play: Callable[[Ctx, Conversation, dict[str, Any]], Awaitable[None]], need: int = 1
) -> Family:
    async def run(ctx: Ctx, conv: Conversation, taken: set[str]) -> None:
        c = await _retail_customer(ctx, taken, need)
        conv.customer = c["id"]
        await play(ctx, conv, c)

    return run


def _leak(ctx: Ctx, conv: Conversation, taken: set[str]) -> Awaitable[None]:
    async def run() -> None:
        c, other = await _retail_customer(ctx, taken), await _retail_customer(ctx, taken, 0)
        conv.customer = c["id"]
        await no_leak(ctx, conv, c, other)

    return run()


def _bank(sql: str, play: Callable[[Ctx, Conversation, dict[str, Any]], Awaitable[None]]) -> Family:
    async def run(ctx: Ctx, conv: Conversation, taken: set[str]) -> None:
        c = await _bank_customer(ctx, sql, taken)
        conv.customer = c["id"]
        await play(ctx, conv, c)

    return run


FAMILIES: dict[str, tuple[str, Family]] = {
    "three_sessions": ("retail", _retail(three_sessions)),
    "open_threads": ("retail", _retail(open_threads, need=2)),
    "bank_dispute": ("bank", _bank(_BANK_FEES, bank_dispute)),
    "card_replacement": ("bank", _bank(_BANK_CARDS, card_replacement)),
    "retention_offer": ("bank", _bank(_BANK_FEE_CARDS, retention_offer)),
    "handoff_outcome": ("retail", _retail(handoff_outcome)),
    "history": ("retail", _retail(history)),
    "stale": ("retail", _retail(stale)),
    "erasure": ("retail", _retail(erasure)),
    "no_leak": ("retail", _leak),
}


class MemoryPlayer:
    """Plays the families one conversation at a time, each with a fresh, distinct customer.

    :meth:`close` resets every customer played to its loaded state (call it whatever happens).
    """

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.source = agent.services.settings.shared_data_dir / "tau2-retail" / "db.json.gz"
        self._taken: dict[str, set[str]] = {}  # each family plays distinct customers
        self._used: set[tuple[str, str]] = set()

    async def play(self, family: str) -> Conversation | None:
        """Play one conversation of ``family``.

        Returns:
            The conversation, or ``None`` when a bank family has no fitting customer left (the
            bank data set is small).

        Raises:
            KeyError: unknown family.
            NotFoundError: no fresh retail customer left.
        """
        tenant, play = FAMILIES[family]
        taken = self._taken.setdefault(family, set())
        conv = Conversation(family=family, tenant=tenant, customer="")
        try:
            await play(Ctx(agent=self.agent, foreign=[], source=self.source), conv, taken)
        except NotFoundError:
            if tenant == "bank":
                return None
            raise
        finally:
            self._used.update((tenant, c) for c in taken)
        return conv

    async def close(self) -> None:
        """Reset every customer played to its loaded state."""
        for tenant, customer in sorted(self._used):
            await reset_customer(self.agent, tenant, customer, self.source)
        self._used.clear()


async def evaluate_memory(
    agent: Agent, out_dir: Path, per_family: int = 10, families: list[str] | None = None
) -> dict[str, Any]:
    """Play every family ``per_family`` times; write ``report.json`` and the transcripts.

    Returns:
        ``{"conversations", "families": {name: {"n", "pass_rate"}}, "turns", "leaks", "stale",
        "reask_rate", "closing_rate", "failures": [{"family", "customer", "failures"}]}``.

    Raises:
        NotFoundError: not enough fresh customers in a tenant.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    player = MemoryPlayer(agent)
    done: list[Conversation] = []
    try:
        for name in families or list(FAMILIES):
            for n in range(per_family):
                conv = await player.play(name)
                if conv is None:
                    break
                done.append(conv)
                (out_dir / f"{name}-{n}.json").write_text(json.dumps(conv.__dict__, indent=1,
                                                                     default=str))  # fmt: skip
    finally:  # every customer played returns to its loaded state
        await player.close()
    summary = summarize_memory(done)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=1))
    return summary


def summarize_memory(done: list[Conversation]) -> dict[str, Any]:
    """The report of played conversations (see :func:`evaluate_memory`)."""
    turns = sum(c.counts["turns"] for c in done)
    closings = [t for c in done for t in c.turns if t["customer"] == "thanks, that's all"]
    summary = {
        "conversations": len(done),
        "families": {
            name: {
                "n": len([c for c in done if c.family == name]),
                "pass_rate": round(
                    sum(not c.failures for c in done if c.family == name)
                    / max(1, len([c for c in done if c.family == name])),
                    3,
                ),
            }
            for name in dict.fromkeys(c.family for c in done)
        },  # fmt: skip
        "turns": turns,
        "leaks": sum(c.counts["leaks"] for c in done),
        "stale": sum(c.counts["stale"] for c in done),
        "reask_rate": round(sum(c.counts["reasks"] for c in done) / max(1, turns), 4),
        "closing_rate": round(
            sum("welcome" in t["agent"].lower() for t in closings) / max(1, len(closings)), 3
        ),  # fmt: skip
        "failures": [
            {"family": c.family, "customer": c.customer, "failures": c.failures}
            for c in done
            if c.failures
        ],  # fmt: skip
    }
    return summary
