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

from support_agent.context import Context
from support_agent.crm.repository import find_customer_by_identity, find_customers_by_name_zip
from support_agent.intents.signals import extract_identifiers
from support_agent.nodes._text import last_customer_text
from support_agent.services import get_services
from support_agent.state import State
from support_agent.tenants import load_tenant_config

logger = logging.getLogger(__name__)


async def identify(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Resolve the customer of this conversation.

    Returns:
        ``identification`` (``status``: authenticated | identified_unverified | unknown | missing
        | conflict, ``detail``) and, when resolved, ``customer_id``, ``authenticated``,
        ``auth_method``; ``turn`` is incremented.
    """
    services = await get_services()
    ctx = runtime.context
    config = load_tenant_config(ctx.tenant_id)
    text = last_customer_text(state.get("messages"))
    given = {k: v for k, v in (state.get("identity") or {}).items() if v}
    hints = {**extract_identifiers(text), **given}
    turn = state.get("turn", 0) + 1

    resolved: dict[str, str | None] = {}
    for kind in ("email", "phone", "customer_id"):
        if kind in hints:
            resolved[kind] = await find_customer_by_identity(
                services, ctx.tenant_id, kind, hints[kind]
            )
    if "zip" in hints:
        first = last = None
        if "name" in given and len(given["name"].split()) >= 2:
            first, last = given["name"].split()[0], given["name"].split()[-1]
        matches = await find_customers_by_name_zip(
            services, ctx.tenant_id, hints["zip"], first, last, text=text
        )
        if matches or first is not None:
            resolved["name_zip"] = matches[0] if len(matches) == 1 else None

    found = {cid for cid in resolved.values() if cid is not None}
    current = state.get("customer_id")
    update: dict[str, Any] = {"turn": turn}

    if current is not None:
        if found - {current}:
            update["identification"] = {
                "status": "conflict",
                "detail": "a different customer was presented; one customer per conversation",
            }
            logger.info("identity_conflict", extra={"tenant_id": ctx.tenant_id})
            return update
        if not state.get("authenticated"):
            method = next((m for m in config.auth_methods if resolved.get(m) == current), None)
            if method is not None:
                update.update(authenticated=True, auth_method=method)
        verified = update.get("authenticated", state.get("authenticated", False))
        update["identification"] = {
            "status": "authenticated" if verified else "identified_unverified",
            "detail": "",
            "new": "auth_method" in update,
        }
        return update

    if not hints:
        update["identification"] = {"status": "missing", "detail": "no identifier given"}
        return update
    if len(found) != 1:
        detail = "identifiers match different customers" if found else "no matching customer"
        update["identification"] = {"status": "unknown", "detail": detail}
        logger.info("identification_failed", extra={"tenant_id": ctx.tenant_id, "why": detail})
        return update
    (customer_id,) = found
    method = next((m for m in config.auth_methods if resolved.get(m) == customer_id), None)
    update.update(customer_id=customer_id, authenticated=method is not None)
    if method is not None:
        update["auth_method"] = method
    update["identification"] = {
        "status": "authenticated" if method else "identified_unverified",
        "detail": "" if method else "account id alone does not verify identity",
        "new": method is not None,
    }
    return update
