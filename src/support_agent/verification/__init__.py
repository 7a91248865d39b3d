"""Verification: apply a tenant's verification policy to what a customer gives in conversation.

The policy (``tenants.verification.VerificationPolicy``, declared in the tenant's pack) says which
facts verify a customer and how many. :func:`verify` takes one message's facts (and the request's:
a site token the API checked, or an identity a server-side integration vouched for), finds the
customers they could belong to, checks every fact against each one's record on file
(``facts.matching``; staff-added identities may locate a customer but never prove one), and
decides:

- ``authenticated``: the facts proven for exactly one customer satisfy a way of the policy;
- ``partial``: not enough facts yet; the facts still needed are asked for. The reply is the same
  whether or not the facts given belong to a customer, and takes the same work (a one-time code is
  sent in the background, only to a contact on file);
- ``failed``: enough facts for an attempt, and they verify nobody (wrong, or nobody's): counted,
  recorded, and the customer asked to try again;
- ``locked``: the session, the customer or the client address reached the tenant's failure limit;
  the session can no longer verify and is offered a person;
- ``missing``: nothing given and nothing in progress.

Progress between messages (the candidate customer, the facts proven and given, the failures) is
kept in the checkpointed state's ``verification`` entry, which no public view of a thread shows.
Nothing said in the conversation or stored in memory changes the policy.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import psycopg
from psycopg_pool import PoolTimeout

from support_agent.crm.loader import normalize_phone
from support_agent.crm.repository import find_customer_by_identity, find_customers_by_name_zip
from support_agent.services import Services
from support_agent.tenants.verification import SCOPES, VerificationPolicy
from support_agent.verification.attempts import recent_failures, record_attempt
from support_agent.verification.codes import check_code, in_background, issue_code
from support_agent.verification.facts import (
    SCAN_CHARS,
    Given,
    Record,
    address_words,
    given_in,
    matching,
)

logger = logging.getLogger(__name__)

Status = Literal["authenticated", "partial", "failed", "locked", "missing"]

#: Customers checked at most per message (a date of birth may be shared by a few).
MAX_CANDIDATES = 8

_RESEND = re.compile(
    r"\b(?:resend|re-send|new code|another code|send (?:it|the code|a code) again|"
    r"didn'?t (?:get|receive) (?:the|a|any) code|no code)\b",
    re.I,
)


@dataclass
class Verdict:
    """The outcome of :func:`verify` for one message.

    Attributes:
        status: see the module docstring.
        customer_id: the verified customer (``authenticated`` only).
        way: the name of the policy's way that verified.
        scopes: the scopes verified (``account_data``, ``writes``, ``memory``).
        asks: the facts still needed (``partial``), nearest ways first.
        code_offered: a one-time code is part of what the customer may answer with.
        fresh: this message gave facts (or asked for a new code).
        progress: the new ``verification`` entry of the state.
    """

    status: Status
    customer_id: str | None = None
    way: str | None = None
    scopes: list[str] = field(default_factory=list)
    asks: list[str] = field(default_factory=list)
    code_offered: bool = False
    fresh: bool = False
    progress: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Attempt:
    """Who is verifying, where: the inputs of :func:`verify` besides the message."""

    services: Services
    tenant_id: str
    session_id: str
    channel: str
    policy: VerificationPolicy
    client: str | None = None


async def load_record(services: Services, tenant_id: str, customer_id: str) -> Record | None:
    """The record on file to verify a customer against, or ``None`` (no such customer)."""
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT c.id, c.first_name, c.last_name, c.email, c.phone, c.zip,"
                " c.date_of_birth, c.address,"
                " array_agg(i.value) FILTER (WHERE i.kind = 'email') AS emails,"
                " array_agg(i.value) FILTER (WHERE i.kind = 'phone') AS phones"
                " FROM customers c LEFT JOIN customer_identities i ON i.tenant_id = c.tenant_id"
                " AND i.customer_id = c.id AND i.source = 'record' AND i.kind IN ('email', 'phone')"
                " WHERE c.tenant_id = %s AND c.id = %s GROUP BY c.tenant_id, c.id",
                (tenant_id, customer_id),
            )
        ).fetchone()
    if row is None:
        return None
    address = row["address"] or {}
    line = address.get("line") or " ".join(
        str(address.get(k) or "") for k in ("address1", "address2", "city", "state", "zip")
    )
    return Record(
        customer_id=str(row["id"]),
        first_name=str(row["first_name"] or ""),
        last_name=str(row["last_name"] or ""),
        emails=frozenset(e for e in [row["email"], *(row["emails"] or [])] if e),
        phones=frozenset(
            d for p in [row["phone"], *(row["phones"] or [])] if (d := normalize_phone(p or ""))
        ),
        zip=row["zip"],
        email=row["email"],
        date_of_birth=row["date_of_birth"],
        address_words=address_words(line),
    )


async def _by_birth_date(services: Services, tenant_id: str, dates: tuple[date, ...]) -> list[str]:
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id FROM customers WHERE tenant_id = %s AND date_of_birth = ANY(%s)"
                " ORDER BY id LIMIT %s",
                (tenant_id, list(dates), MAX_CANDIDATES),
            )
        ).fetchall()
    return [str(r["id"]) for r in rows]


async def _candidates(a: Attempt, given: Given, prior: str | None) -> list[str]:
    """Customers the facts could belong to (at most :data:`MAX_CANDIDATES`).

    Located by email, phone, user id, name + zip and date of birth, plus the candidate of earlier
    messages.
    """
    found: list[str] = [prior] if prior else []
    for kind in ("email", "phone", "customer_id"):
        value = getattr(given, kind)
        if value and (cid := await find_customer_by_identity(a.services, a.tenant_id, kind, value)):
            found.append(cid)
    if given.zip:
        found += await find_customers_by_name_zip(
            a.services, a.tenant_id, given.zip, None, None, text=given.text
        )
    if given.dates and any("date_of_birth" in w for w in a.policy.all_ways().values()):
        found += await _by_birth_date(a.services, a.tenant_id, given.dates)
    return list(dict.fromkeys(found))[:MAX_CANDIDATES]


async def _offer_code(
    a: Attempt, given: Given, candidate: Record | None, *, resend: bool = False
) -> bool:
    """Send a one-time code to the email on file, when the policy verifies with codes.

    Sent when the customer typed the email (or asks for a new code). Returns whether a code is
    part of what the customer may answer with.

    The answer, and the work done before it, are the same whether or not the email is a
    customer's: the code is issued, recorded and sent in the background.
    """
    uses_code = any("one_time_code" in w for w in a.policy.all_ways().values())
    if not (uses_code and "email" in a.policy.code_to and (given.email or resend)):
        return False
    typed = given.email.strip().lower() if given.email else None
    to = (typed if typed in candidate.emails else None) if candidate and typed else None
    if candidate is not None and resend and not typed:
        to = candidate.email
    if candidate is not None and to is not None:
        in_background(_send_code(a, candidate.customer_id, to))
    return True  # the same answer whether or not the email is a customer's


async def _send_code(a: Attempt, customer_id: str, to: str) -> None:
    """Issue a code to the email on file, send it and record the attempt (in the background).

    A database that fails here is logged: the customer can ask for a new code.
    """
    try:
        sent = await issue_code(a.services, a.tenant_id, a.session_id, customer_id, "email", to,
                                ttl_s=a.policy.code_ttl_s,
                                per_hour=a.policy.codes_per_hour)  # fmt: skip
        if sent:
            await record_attempt(a.services, a.tenant_id, a.session_id, a.channel,
                                 customer_id=customer_id, factors=["email"], result="code_sent",
                                 client=a.client)  # fmt: skip
    except (psycopg.Error, PoolTimeout) as exc:
        logger.warning(
            "verification_code_not_issued",
            extra={"tenant_id": a.tenant_id, "error": type(exc).__name__},
        )


async def verify(
    a: Attempt,
    text: str,
    prior: dict[str, Any] | None,
    *,
    request: dict[str, str] | None = None,
    trusted: dict[str, str] | None = None,
) -> Verdict:
    """Apply the tenant's policy to one message.

    Args:
        a: the tenant, session, channel, policy and client address.
        text: the customer's message.
        prior: the state's ``verification`` entry from earlier messages (``None``: none).
        request: identifiers the request carried (``email``, ``phone``, ``customer_id``,
            ``name``, ``zip``); read like typed facts.
        trusted: customers the caller established outside the conversation: ``site_token``
            (the API checked the tenant site's signed token) and ``vouched`` (a server-side
            integration passed the identity), each a customer id.

    Returns:
        The :class:`Verdict`; ``progress`` is the state's new ``verification`` entry.
    """
    prior = dict(prior or {})
    policy = a.policy
    for fact, customer_id in (trusted or {}).items():
        if customer_id and policy.way_for({fact}) is not None:
            return await _verified(a, customer_id, {fact}, [fact], prior)
    given = given_in(text, request)
    kinds = given.kinds()
    if prior.get("locked"):
        return Verdict("locked", fresh=bool(kinds), progress=prior)
    code_offered = bool(prior.get("code_offered"))
    if not code_offered:
        kinds.discard("one_time_code")  # six digits with no code sent are something else
    code_owner, code_proves = None, set()
    if "one_time_code" in kinds and given.code:
        checked = await check_code(a.services, a.tenant_id, a.session_id, given.code,
                                   max_tries=policy.code_tries)  # fmt: skip
        if checked is not None:  # the code proves the contact on file it was sent to
            code_owner, code_proves = checked[0], {"one_time_code", checked[1]}
    candidate_id = prior.get("candidate")
    ids = await _candidates(a, given, candidate_id)
    if code_owner and code_owner not in ids:
        ids.append(code_owner)
    records = [r for cid in ids if (r := await load_record(a.services, a.tenant_id, cid))]
    if not ids and (given.email or given.phone):  # the same reads for a contact that is nobody's
        await load_record(a.services, a.tenant_id, "")
    before = set(prior.get("proven") or [])
    best: tuple[int, Record | None, set[str]] = (0, None, set())
    satisfied: list[tuple[Record, set[str]]] = []
    pointed: list[str] = []  # every customer some fact of this attempt was true of
    for record in records:
        proven, wrong = matching(record, given)
        if code_owner == record.customer_id:
            proven |= code_proves
        if record.customer_id == candidate_id:
            proven |= before - wrong
        if proven:
            pointed.append(record.customer_id)
        if policy.way_for(proven) is not None and not wrong:
            satisfied.append((record, proven))
        if not wrong and len(proven) > best[0]:
            best = (len(proven), record, proven)
    every_given = set(prior.get("given") or []) | kinds
    whole = policy.complete_attempt(every_given) or "one_time_code" in kinds
    if whole or satisfied:
        target = satisfied[0][0].customer_id if len(satisfied) == 1 else None
        by_customer, by_client = await recent_failures(
            a.services, a.tenant_id, customer_id=target, client=a.client
        )
        if a.client is not None and by_client >= policy.client_max_failures:
            return await _locked(a, prior, sorted(every_given), pointed)
        if target is not None and by_customer < policy.customer_max_failures:
            return await _verified(a, target, satisfied[0][1], sorted(every_given), prior)
        return await _failed(a, prior, sorted(every_given), pointed)
    if not every_given:
        return Verdict("missing", progress=prior)
    resend = code_offered and wants_new_code(text)
    offered = await _offer_code(a, given, best[1], resend=resend) or code_offered
    progress = {**prior, "candidate": best[1].customer_id if best[1] else candidate_id,
                "proven": sorted(best[2] | (before if best[1] is None else set())),
                "given": sorted(every_given), "code_offered": offered}  # fmt: skip
    if best[1] is None and candidate_id is None:
        progress["candidate"], progress["proven"] = None, []
    return Verdict("partial", asks=policy.missing_for(every_given), code_offered=offered,
                   fresh=bool(kinds) or resend, progress=progress)  # fmt: skip


async def _verified(
    a: Attempt, customer_id: str, proven: set[str], factors: list[str], prior: dict[str, Any]
) -> Verdict:
    way = a.policy.way_for(proven)
    scopes = a.policy.scopes_met(proven)
    await record_attempt(a.services, a.tenant_id, a.session_id, a.channel,
                         customer_id=customer_id, factors=factors or sorted(proven),
                         result="verified", client=a.client)  # fmt: skip
    progress = {"failures": int(prior.get("failures") or 0), "verified_with": way}
    return Verdict("authenticated", customer_id=customer_id, way=way, scopes=scopes,
                   progress=progress)  # fmt: skip


async def _failed(
    a: Attempt, prior: dict[str, Any], factors: list[str], pointed: list[str]
) -> Verdict:
    """A whole attempt that verified nobody: counted, recorded, and maybe the lock.

    The failure is recorded against every customer some of its facts were true of (an attempt
    pairing one customer's email with another's date of birth counts against both), so the
    per-customer limit holds however the wrong facts are chosen.
    """
    failures = int(prior.get("failures") or 0) + 1
    for customer_id in pointed or [""]:
        await record_attempt(a.services, a.tenant_id, a.session_id, a.channel,
                             customer_id=customer_id or None, factors=factors, result="failed",
                             client=a.client)  # fmt: skip
    if failures >= a.policy.max_failures:
        return await _locked(a, {**prior, "failures": failures}, factors, pointed)
    # a new attempt starts from nothing; a code already sent stays usable (its tries are counted)
    progress: dict[str, Any] = {"failures": failures, "locked": False, "candidate": None,
                                "proven": [], "given": [],
                                "code_offered": bool(prior.get("code_offered"))}  # fmt: skip
    return Verdict("failed", asks=a.policy.missing_for(set()), fresh=True, progress=progress)


async def _locked(
    a: Attempt, prior: dict[str, Any], factors: list[str], pointed: list[str]
) -> Verdict:
    """The session can no longer verify: its own or its client address's failures reached the limit.

    Recorded once; the right facts are refused from now on, and a person is offered.
    """
    await record_attempt(a.services, a.tenant_id, a.session_id, a.channel,
                         customer_id=pointed[0] if len(pointed) == 1 else None, factors=factors,
                         result="locked", client=a.client)  # fmt: skip
    progress: dict[str, Any] = {"failures": int(prior.get("failures") or 0), "locked": True,
                                "candidate": None,
                "proven": [], "given": [], "code_offered": False}  # fmt: skip
    return Verdict("locked", fresh=True, progress=progress)


async def verifies_other(a: Attempt, text: str, current: str) -> bool:
    """Whether a message, in a session verified for ``current``, verifies a different customer.

    That is a second customer in one conversation. Identifiers that merely belong to someone else
    do not count: answering differently for them would tell which emails are customers.
    """
    given = given_in(text)
    if not given.kinds():
        return False
    for cid in await _candidates(a, given, None):
        record = None if cid == current else await load_record(a.services, a.tenant_id, cid)
        if record is not None:
            proven, wrong = matching(record, given)
            if not wrong and a.policy.way_for(proven) is not None:
                return True
    return False


async def vouched_customer(
    services: Services, tenant_id: str, identity: dict[str, str]
) -> str | None:
    """The customer a server-side integration's identity names by its record on file, or ``None``.

    Email, phone or name + zip in ``customers``; staff-added identities never count.

    An account id alone names nobody: it identifies without vouching.
    """
    email, phone = identity.get("email"), identity.get("phone")
    name, zip_code = identity.get("name"), identity.get("zip")
    clauses, params = [], [tenant_id]
    if email:
        clauses.append("email = %s")
        params.append(email.strip().lower())
    if phone:
        clauses.append("regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') = %s")
        params.append("".join(ch for ch in phone if ch.isdigit()))
    if name and zip_code and len(name.split()) >= 2:
        clauses.append("(lower(first_name) = %s AND lower(last_name) = %s AND zip = %s)")
        parts = name.lower().split()
        params += [parts[0], parts[-1], zip_code.strip()]
    if not clauses:
        return None
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                f"SELECT id FROM customers WHERE tenant_id = %s AND ({' OR '.join(clauses)})"
                " LIMIT 2",
                params,
            )
        ).fetchall()
    return str(rows[0]["id"]) if len(rows) == 1 else None


def wants_new_code(text: str) -> bool:
    """Whether a message asks for a new one-time code ("resend the code", "I got no code")."""
    return _RESEND.search(text[:SCAN_CHARS]) is not None


__all__ = [
    "SCOPES",
    "Attempt",
    "Verdict",
    "load_record",
    "verifies_other",
    "verify",
    "vouched_customer",
    "wants_new_code",
]
