"""identify: find the customer from email, phone, account id or name + zip, on any channel.

Identifiers come from the request (``identity``, e.g. a logged-in widget or caller id) or from the
message text. Each identifier is resolved against ``customer_identities`` / ``customers``; the node
never guesses: several different customers, or none, means the agent asks again. Authentication
follows the tenant's accepted methods (retail: email, or name + zip; an account id alone only
identifies). Once a conversation has a customer, a different one is a conflict (one customer per
conversation), never a switch.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from support_agent.context import Context, turn_of
from support_agent.crm.repository import (
    customer_zip,
    find_customer_by_identity,
    find_customers_by_name_zip,
)
from support_agent.intents.signals import extract_identifiers
from support_agent.state import State
from support_agent.verticals.protocol import Turn

logger = logging.getLogger(__name__)

#: The identity key under which the API passes a customer id it verified from the tenant site's
#: signed token (``site_token`` authentication, whatever the tenant's ``auth_methods``).
SITE_TOKEN_KEY = "verified_customer_id"


async def resolve_identifiers(this: Turn) -> tuple[dict[str, str | None], bool]:
    """Each identifier given (request or message) resolved to a customer id or ``None``.

    Returns:
        ``({method: customer id or None}, any identifier given)``; methods are ``email``,
        ``phone``, ``customer_id``, ``name_zip``, ``customer_id_zip`` and ``site_token`` (the
        API verified the tenant site's signed token for this customer id; never read from
        text).
    """
    services, tenant_id, text = this.deps.services, this.tenant_id, this.text
    given = {k: v for k, v in (this.state.get("identity") or {}).items() if v}
    hints = {**extract_identifiers(text), **given}
    resolved: dict[str, str | None] = {}
    for kind in ("email", "phone", "customer_id"):
        if kind in hints:
            resolved[kind] = await find_customer_by_identity(services, tenant_id, kind, hints[kind])
    if verified := given.get(SITE_TOKEN_KEY):
        resolved["site_token"] = await find_customer_by_identity(
            services, tenant_id, "customer_id", verified
        )
    if "zip" in hints:
        first = last = None
        if "name" in given and len(given["name"].split()) >= 2:
            first, last = given["name"].split()[0], given["name"].split()[-1]
        matches = await find_customers_by_name_zip(
            services, tenant_id, hints["zip"], first, last, text=text
        )
        if matches or first is not None:
            resolved["name_zip"] = matches[0] if len(matches) == 1 else None
        if (account := resolved.get("customer_id")) is not None:  # account id + zip on file
            on_file = await customer_zip(services, tenant_id, account)
            resolved["customer_id_zip"] = account if on_file == hints["zip"].strip() else None
    return resolved, bool(hints)


def _continuing(this: Turn, resolved: dict[str, str | None], current: str) -> dict[str, Any]:
    """A session that has its customer: a conflict, or maybe verified now."""
    state = this.state
    found = {cid for cid in resolved.values() if cid is not None}
    if found - {current}:
        logger.info(
            "identity_conflict",
            extra={"tenant_id": this.tenant_id, "session_id": this.session_id, "node": "identify"},
        )
        return {"identification": {"status": "conflict", "detail":
                "a different customer was presented; one customer per conversation"}}  # fmt: skip
    update: dict[str, Any] = {}
    if not state.get("authenticated"):
        methods = (*this.deps.config.auth_methods, "site_token")
        method = next((m for m in methods if resolved.get(m) == current), None)
        if method is not None:
            update.update(authenticated=True, auth_method=method)
    verified = update.get("authenticated", state.get("authenticated", False))
    update["identification"] = {
        "status": "authenticated" if verified else "identified_unverified",
        "detail": "",
        "new": "auth_method" in update,
    }
    return update


def _first(this: Turn, resolved: dict[str, str | None], hinted: bool) -> dict[str, Any]:
    """A session without a customer yet: found (verified or not), unknown, or nothing given."""
    found = {cid for cid in resolved.values() if cid is not None}
    if not hinted:
        return {"identification": {"status": "missing", "detail": "no identifier given"}}
    if len(found) != 1:
        detail = "identifiers match different customers" if found else "no matching customer"
        logger.info("identification_failed", extra={"tenant_id": this.tenant_id, "why": detail,
                                                    "session_id": this.session_id,
                                                    "node": "identify"})  # fmt: skip
        return {"identification": {"status": "unknown", "detail": detail}}
    (customer_id,) = found
    methods = (*this.deps.config.auth_methods, "site_token")
    method = next((m for m in methods if resolved.get(m) == customer_id), None)
    update: dict[str, Any] = {"customer_id": customer_id, "authenticated": method is not None}
    if method is not None:
        update["auth_method"] = method
    update["identification"] = {
        "status": "authenticated" if method else "identified_unverified",
        "detail": "" if method else "account id alone does not verify identity",
        "new": method is not None,
    }
    return update


async def identify(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Resolve the customer of this conversation.

    Returns:
        ``identification`` (``status``: authenticated | identified_unverified | unknown | missing
        | conflict, ``detail``) and, when resolved, ``customer_id``, ``authenticated``,
        ``auth_method``; ``turn`` is incremented.
    """
    this = turn_of(state, runtime)
    resolved, hinted = await resolve_identifiers(this)
    current = state.get("customer_id")
    found = _continuing(this, resolved, current) if current else _first(this, resolved, hinted)
    return {"turn": state.get("turn", 0) + 1, **found}
