"""identify: verify the customer by the tenant's verification policy, on any channel.

Facts come from the message (email, phone, user id, name + zip, date of birth, address, a
one-time code), from the request (an identity a server-side integration vouches for) or from the
tenant site's signed customer token (checked by the API). ``verification.verify`` checks them
against the systems of record and applies the tenant's declared policy (``tenant.yaml``,
``verification:``): until it is met, the session has no customer, so nothing downstream can load or
say anything about an account, and the reply is the same whether or not the facts belong to a
customer. Once a conversation has its customer, facts that verify a different one are a conflict
(one customer per conversation), never a switch.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from langgraph.runtime import Runtime

from support_agent.context import Context, turn_of
from support_agent.state import State
from support_agent.verification import (
    Attempt,
    verifies_other,
    verify,
    vouched_customer,
)
from support_agent.verticals.protocol import Turn

logger = logging.getLogger(__name__)

#: The identity key under which the API passes a customer id it verified from the tenant site's
#: signed token (``site_token`` verification, when the tenant's policy accepts it).
SITE_TOKEN_KEY = "verified_customer_id"


def _attempt(this: Turn) -> Attempt:
    return Attempt(this.deps.services, this.tenant_id, this.session_id, this.channel,
                   this.deps.config.verification, this.client)  # fmt: skip


async def _trusted(this: Turn, given: dict[str, str]) -> dict[str, str]:
    """Customers established outside the conversation: the site token's, the integration's."""
    trusted: dict[str, str] = {}
    if verified := given.get(SITE_TOKEN_KEY):
        trusted["site_token"] = verified
    vouched = {k: v for k, v in given.items() if k != SITE_TOKEN_KEY}
    if vouched and (cid := await vouched_customer(this.deps.services, this.tenant_id, vouched)):
        trusted["vouched"] = cid
    return trusted


async def _continuing(this: Turn, current: str, trusted: dict[str, str]) -> dict[str, Any]:
    """A session that has its customer: the same one, or a conflict."""
    other = any(cid != current for cid in trusted.values()) or await verifies_other(
        _attempt(this), this.text, current
    )
    if other:
        logger.info(
            "identity_conflict",
            extra={"tenant_id": this.tenant_id, "session_id": this.session_id, "node": "identify"},
        )
        return {"identification": {"status": "conflict", "detail":
                "a different customer was presented; one customer per conversation"}}  # fmt: skip
    return {"identification": {"status": "authenticated", "detail": "", "new": False}}


async def _first(this: Turn, given: dict[str, str], trusted: dict[str, str]) -> dict[str, Any]:
    """A session without a verified customer: verified now, in progress, failed or locked."""
    request = {k: v for k, v in given.items() if k != SITE_TOKEN_KEY}
    prior = cast(dict[str, Any] | None, this.state.get("verification"))
    verdict = await verify(_attempt(this), this.text, prior,
                           request=request, trusted=trusted)  # fmt: skip
    update: dict[str, Any] = {"verification": verdict.progress}
    ident: dict[str, Any] = {"status": verdict.status, "detail": "", "asks": verdict.asks,
                             "code_offered": verdict.code_offered,
                             "fresh": verdict.fresh}  # fmt: skip
    if verdict.status == "authenticated":
        update.update(customer_id=verdict.customer_id, authenticated=True,
                      auth_method=verdict.way, verified_for=verdict.scopes)  # fmt: skip
        ident["new"] = True
    elif verdict.status in ("failed", "locked"):
        logger.info("verification_failed", extra={"tenant_id": this.tenant_id, "node": "identify",
                                                  "session_id": this.session_id,
                                                  "why": verdict.status})  # fmt: skip
    update["identification"] = ident
    return update


async def identify(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Verify the customer of this conversation.

    Returns:
        ``identification`` (``status``: authenticated | partial | failed | locked | missing |
        conflict; ``asks``: the facts still needed; ``code_offered``; ``new``: verified on this
        turn), ``verification`` (progress between messages) and, once verified, ``customer_id``,
        ``authenticated``, ``auth_method`` (the policy's way) and ``verified_for`` (scopes);
        ``turn`` is incremented.
    """
    this = turn_of(state, runtime)
    given = {k: v for k, v in (state.get("identity") or {}).items() if v}
    trusted = await _trusted(this, given)
    current = state.get("customer_id")
    if current and state.get("authenticated"):
        found = await _continuing(this, current, trusted)
    else:
        found = await _first(this, given, trusted)
    return {"turn": state.get("turn", 0) + 1, **found}
