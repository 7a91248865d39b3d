"""The faces' pages and the human agents' console feeds.

Pages (static, no key: they ask for one): ``/widget.js`` (the chat widget, embedded with one
``<script>`` tag), ``/widget/demo`` (a page embedding it), ``/console`` and ``/console.js`` (the
human agents' console; the agent signs in with an ``agent`` or ``secret`` key). No key or token
ever travels in a URL (URLs are written to access logs, browser history and ``Referer``
headers): the demo page takes its key from a form or the address's fragment (``#key=pk_…``,
which browsers never send), ``/widget/demo?key=…`` or ``?token=…`` is refused with 422, and the
console sends its key in the ``Authorization`` header of ``fetch`` calls, feeds included.

Feeds of the console (server keys only), as server-sent events that poll PostgreSQL once per
:data:`POLL_S` and send only changes:

- ``GET /api/tenants/me/handoffs/stream``: ``queue`` events, the open handoff queue whenever it
  changes (the first event at once);
- ``GET /api/tenants/me/sessions/{session_id}/messages/stream``: ``message`` events, the
  conversation's messages as they are written (from ``after``, a sequence number);
- ``GET /api/tenants/me/sessions/{session_id}/messages``: the conversation so far;
- ``GET /api/tenants/me/customers/{customer_id}/sentiment``: the customer's sentiment per
  session (−1..1, oldest first), for the trend chart.

A feed re-checks its key every ``api.streams.KEY_RECHECK_S`` seconds: when the key is revoked it
sends an ``error`` event (``UNAUTHORIZED``) and ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from support_agent.api.deps import UNAUTHORIZED, PrincipalDep, ServicesDep, TenantDep
from support_agent.api.streams import revoked_event, until_revoked
from support_agent.crm.repository import get_interaction
from support_agent.errors import InvalidRequestError, NotFoundError
from support_agent.handoff import list_handoffs
from support_agent.services import Services

#: Seconds between two polls of a feed.
POLL_S = 1.0

pages = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/api/tenants/me", tags=["console"], responses=UNAUTHORIZED)

_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}
}


def _static(name: str) -> str:
    return (resources.files("support_agent.api") / "static" / name).read_text(encoding="utf-8")


@pages.get("/widget.js")
async def widget_js() -> Response:
    """The chat widget (vanilla JavaScript, no build step)."""
    return Response(
        _static("widget.js"),
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


#: Query parameters that would put a credential in a URL: refused on the pages.
_SECRET_PARAMS = frozenset({"key", "token", "api_key", "customer_token"})


@pages.get("/widget/demo")
async def widget_demo(request: Request) -> HTMLResponse:
    """A page embedding the widget; its key comes from a form or ``#key=pk_…`` (never sent).

    Raises:
        InvalidRequestError: (422) a ``key`` or ``token`` in the query string: a credential in a
            URL lands in logs and history; the page takes it in the fragment instead.
    """
    if _SECRET_PARAMS & {name.lower() for name in request.query_params}:
        raise InvalidRequestError(
            "do not put keys or tokens in the URL: open /widget/demo#key=pk_… instead"
        )
    return HTMLResponse(_static("demo.html"), headers={"Referrer-Policy": "no-referrer"})


@pages.get("/console")
async def console_page() -> HTMLResponse:
    """The human agents' console."""
    return HTMLResponse(_static("console.html"))


@pages.get("/console.js")
async def console_js() -> Response:
    """The console's script."""
    return Response(_static("console.js"), media_type="application/javascript")


def _event(event: str, data: Any) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data, default=str), event=event)


async def _messages(
    services: Services, tenant_id: str, session_id: str, after: int
) -> list[dict[str, Any]]:
    async with services.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT seq, role, content, intent, created_at FROM messages"
                " WHERE tenant_id = %s AND interaction_id = %s AND seq > %s ORDER BY seq",
                (tenant_id, session_id, after),
            )
        ).fetchall()
    return [{**r, "created_at": r["created_at"].isoformat()} for r in rows]


async def _session_exists(services: Services, tenant_id: str, session_id: str) -> None:
    if await get_interaction(services, tenant_id, session_id) is None:
        raise NotFoundError("session not found")


@router.get("/handoffs/stream", responses=_SSE)
async def queue_stream(
    request: Request, svc: ServicesDep, tenant_id: TenantDep, principal: PrincipalDep
) -> Any:
    """The open handoff queue, live: a ``queue`` event now and whenever it changes.

    Ends (after an ``error`` event) within seconds of its key being revoked.
    """

    async def feed() -> AsyncIterator[ServerSentEvent]:
        last = None
        while not await request.is_disconnected():
            queue = await list_handoffs(svc, tenant_id, "open", 200)
            if queue != last:
                last = queue
                yield _event("queue", queue)
            await asyncio.sleep(POLL_S)

    return EventSourceResponse(until_revoked(svc, principal.key_hash, feed(), last=revoked_event()))


@router.get("/sessions/{session_id}/messages")
async def session_messages(
    session_id: str, svc: ServicesDep, tenant_id: TenantDep
) -> dict[str, Any]:
    """A session's messages so far (``role``: customer | agent), in order."""
    await _session_exists(svc, tenant_id, session_id)
    return {"data": await _messages(svc, tenant_id, session_id, 0)}


@router.get("/sessions/{session_id}/messages/stream", responses=_SSE)
async def session_stream(
    session_id: str,
    request: Request,
    svc: ServicesDep,
    tenant_id: TenantDep,
    principal: PrincipalDep,
    after: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    """A session's messages, live: one ``message`` event per message after ``after``.

    Ends (after an ``error`` event) within seconds of its key being revoked.
    """
    await _session_exists(svc, tenant_id, session_id)

    async def feed() -> AsyncIterator[ServerSentEvent]:
        seen = after
        while not await request.is_disconnected():
            for message in await _messages(svc, tenant_id, session_id, seen):
                seen = message["seq"]
                yield _event("message", message)
            await asyncio.sleep(POLL_S)

    return EventSourceResponse(until_revoked(svc, principal.key_hash, feed(), last=revoked_event()))


@router.get("/customers/{customer_id}/sentiment")
async def sentiment_trend(customer_id: str, svc: ServicesDep, tenant_id: TenantDep) -> Any:
    """The customer's sentiment per ended session (−1 very negative .. 1 very positive)."""
    async with svc.pool.connection() as conn:
        exists = await (
            await conn.execute(
                "SELECT 1 FROM customers WHERE tenant_id = %s AND id = %s",
                (tenant_id, customer_id),
            )
        ).fetchone()
        if exists is None:
            raise NotFoundError("customer not found")
        rows = await (
            await conn.execute(
                "SELECT id, channel, started_at, sentiment FROM interactions"
                " WHERE tenant_id = %s AND customer_id = %s AND sentiment IS NOT NULL"
                " ORDER BY started_at, id LIMIT 100",
                (tenant_id, customer_id),
            )
        ).fetchall()
    return {
        "customer_id": customer_id,
        "data": [
            {
                "session_id": r["id"],
                "channel": r["channel"],
                "at": r["started_at"].isoformat(),
                "sentiment": round(float(r["sentiment"]), 3),
            }
            for r in rows
        ],  # fmt: skip
    }
