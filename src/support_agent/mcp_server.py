"""The Customer 360 as MCP tools (Model Context Protocol, the ``mcp`` Python SDK's FastMCP).

Served two ways: over stdio by ``support-agent mcp --tenant T`` (a local client such as Claude
Desktop or an IDE starts it; the tenant is the command's), and over streamable HTTP at ``/mcp``
of the API, where the caller's bearer API key (``secret`` or ``agent``; a widget key is refused
with 403) is checked by the SDK's own bearer middleware (:class:`ApiKeyVerifier`) and decides the
tenant. Every tool reads only that tenant's data. The key is verified on every HTTP request
against ``api_keys`` (nothing is cached, the SDK keeps no session: ``stateless_http``), so a
revoked key is refused (401) on its next call; answers are single JSON bodies
(``json_response``), so no tool result is ever delivered on a long-lived stream, and the
standalone server-to-client stream (``GET /mcp/``), which a stateless server never uses, is
refused with 405 (as the MCP transport allows), so no stream can outlive its key. The API mounts
this app inside ``api.ratelimit.AuthFailureGuard``: every 401 counts against the client
address's failed authentications (``AUTH_FAILURE_RATE_LIMIT``, one budget with the other
routes) and an address over it gets 429 before :class:`ApiKeyVerifier` looks its key up.

Tools (typed arguments; results trimmed and paginated: ``{"items", "total", "next_offset"}``
for lists, ``next_offset`` ``None`` on the last page):

- ``get_customer_360(customer_id)``: profile, tier, value, open issues and threads, counts;
- ``search_customers(query, limit)``: by partial name, email or phone;
- ``get_orders(customer_id, offset, limit)`` (retail); ``get_holdings`` and
  ``get_transactions`` (bank);
- ``get_interactions(customer_id, offset, limit)``: past sessions, newest first;
- ``get_memory(customer_id)``: the four memory layers;
- ``search_resolutions(query, limit)``: past resolutions and knowledge documents (hybrid search);
- ``get_offers(query, limit)``: the tenant's offers (all, or those matching ``query``);
- ``get_open_handoffs(offset, limit)``: the warm handoff queue.

A tool given an unknown customer answers an MCP error ("customer not found"), never another
tenant's data.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl, Field
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from support_agent.errors import NotFoundError, UnauthorizedError
from support_agent.handoff import list_handoffs
from support_agent.memory_store.hot import get_hot_360
from support_agent.memory_store.profiles import get_profile, search_customers
from support_agent.retrieval.hybrid import Source, hybrid_search
from support_agent.services import Services
from support_agent.tenancy import principal_for_key

#: The scope a key needs on ``/mcp`` (granted to ``secret`` and ``agent`` keys).
MCP_SCOPE = "customer360:read"
#: Most items a list tool returns per page.
MAX_PAGE = 50

Limit = Annotated[int, Field(ge=1, le=MAX_PAGE, description="items per page")]
Offset = Annotated[int, Field(ge=0, description="items to skip (the last page's next_offset)")]
CustomerId = Annotated[str, Field(min_length=1, max_length=100, description="the customer id")]


def _page(items: list[Any], offset: int, limit: int) -> dict[str, Any]:
    window = items[offset : offset + limit]
    end = offset + len(window)
    return {"items": window, "total": len(items), "next_offset": end if end < len(items) else None}


class CustomerTools:
    """The tools' implementations for one process (see the module docstring).

    Args:
        services: open services, or ``None`` until the API's lifespan provides them
            (:meth:`bind`).
        tenant_id: the fixed tenant of a stdio server; ``None`` over HTTP (from the key).
    """

    def __init__(self, services: Services | None = None, tenant_id: str | None = None) -> None:
        self._services = services
        self._tenant = tenant_id

    def bind(self, services: Services) -> None:
        """Use these services (the API's, once its lifespan opened them)."""
        self._services = services

    @property
    def services(self) -> Services:
        """The services.

        Raises:
            RuntimeError: not bound yet (the API has not started).
        """
        if self._services is None:
            raise RuntimeError("the MCP tools are not bound to services yet")
        return self._services

    def tenant(self) -> str:
        """The caller's tenant: the verified key's over HTTP, the server's over stdio.

        Raises:
            UnauthorizedError: no tenant (an HTTP call without a verified key).
        """
        token = get_access_token()
        if token is not None:
            return token.client_id or ""
        if self._tenant is None:
            raise UnauthorizedError("missing bearer API key")
        return self._tenant

    async def c360(self, customer_id: str) -> dict[str, Any]:
        """The full Customer 360 of one of the tenant's customers.

        Raises:
            NotFoundError: no such customer in this tenant.
        """
        c360, _ = await get_hot_360(self.services, self.tenant(), customer_id)
        if c360 is None:
            raise NotFoundError("customer not found")
        return dict(c360)

    async def customer_360(self, customer_id: str) -> dict[str, Any]:
        """A trimmed 360: profile, tier, value, open issues and threads, and what else exists."""
        c360 = await self.c360(customer_id)
        lists = ("orders", "holdings", "transactions", "disputes", "interactions",
                 "payment_methods", "retention_offers", "billing")  # fmt: skip
        return {
            "customer_id": c360["customer_id"],
            "profile": c360.get("profile"),
            "tier": c360.get("tier"),
            "value": c360.get("value"),
            "open_issues": (c360.get("open_issues") or [])[:10],
            "threads": (c360.get("threads") or [])[:10],
            "counts": {name: len(c360.get(name) or []) for name in lists},
        }

    async def listing(self, customer_id: str, name: str, offset: int, limit: int) -> dict[str, Any]:
        """One list of the 360 (``orders``, ``holdings``, ...), a page at a time."""
        c360 = await self.c360(customer_id)
        return _page(list(c360.get(name) or []), offset, limit)

    async def search(self, query: str, sources: tuple[Source, ...], limit: int) -> list[Any]:
        """Hybrid search of the tenant's resolutions, documents or offers."""
        embeddings = self.services.embeddings
        vector = await asyncio.to_thread(embeddings.embed_query, query)
        hits = await hybrid_search(
            self.services,
            self.tenant(),
            query,
            vector,
            sources=sources,
            limit=limit,
        )
        return [
            {"kind": h.kind, "id": h.id, "score": round(h.score, 4),
             "title": h.row.get("title"), "text": str(h.row.get("text") or "")[:500],
             "success_rate": h.row.get("success_rate")}
            for h in hits
        ]  # fmt: skip


class ApiKeyVerifier(TokenVerifier):
    """Bearer tokens are our API keys: the key's tenant is the MCP client's ``client_id``.

    A ``secret`` or ``agent`` key gets :data:`MCP_SCOPE`; a widget key gets no scope, so the
    SDK's bearer middleware answers 403 ``insufficient_scope``; an unknown key 401.
    """

    def __init__(self, tools: CustomerTools) -> None:
        self._tools = tools

    async def verify_token(self, token: str) -> AccessToken | None:
        """The access token of an API key, or ``None`` for an unknown or revoked key.

        Called by the SDK's bearer middleware on every request (read from ``api_keys`` each
        time: a key revoked a moment ago is refused).
        """
        try:
            principal = await principal_for_key(self._tools.services, token)
        except UnauthorizedError:
            return None
        scopes = [MCP_SCOPE] if principal.kind in ("secret", "agent") else []
        return AccessToken(token=token, client_id=principal.tenant_id, scopes=scopes)


class _NoStandaloneStream:
    """ASGI middleware: ``GET`` (the standalone SSE stream) answers 405 ``Allow: POST``.

    A stateless server sends nothing on that stream, but it would stay open as long as the client
    wished, past its key's revocation.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            body = {"error": {"code": "METHOD_NOT_ALLOWED",
                              "message": "no server-to-client stream: POST requests"}}  # fmt: skip
            await JSONResponse(body, status_code=405, headers={"Allow": "POST"})(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


class _StatelessMCP(FastMCP[Any]):
    """FastMCP whose HTTP app offers no standalone stream (:class:`_NoStandaloneStream`)."""

    def streamable_http_app(self) -> Starlette:
        """The SDK's app, with ``GET`` refused."""
        app = super().streamable_http_app()
        app.add_middleware(_NoStandaloneStream)
        return app


def build_mcp(tools: CustomerTools, *, http: bool) -> FastMCP[Any]:
    """The FastMCP server with the Customer 360 tools.

    Args:
        tools: the implementations (bound to services, or bound later by the API).
        http: build for streamable HTTP under ``/mcp`` (bearer API keys, stateless, JSON
            responses); otherwise for stdio.
    """
    auth: dict[str, Any] = {}
    if http:
        auth = {
            "token_verifier": ApiKeyVerifier(tools),
            "auth": AuthSettings(
                issuer_url=AnyHttpUrl("http://localhost"),
                resource_server_url=None,
                required_scopes=[MCP_SCOPE],
            ),
        }
    mcp: FastMCP[Any] = _StatelessMCP(
        "support-agent customer 360",
        instructions="Read-only Customer 360 of the support agent's tenant: customers, orders or"
        " holdings, interactions, the four memory layers, past resolutions, offers and the"
        " handoff queue.",
        stateless_http=True,
        json_response=True,
        streamable_http_path="/",
        # the API's own host check and CORS apply; MCP clients are not browsers
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        **auth,
    )

    @mcp.tool()
    async def get_customer_360(customer_id: CustomerId) -> dict[str, Any]:
        """A customer's 360: profile, tier, value, open issues and threads, and list sizes."""
        return await tools.customer_360(customer_id)

    @mcp.tool(name="search_customers")
    async def search_customers_tool(
        query: Annotated[str, Field(min_length=1, max_length=100)], limit: Limit = 10
    ) -> dict[str, Any]:
        """Customers whose name, email or phone contains ``query``."""
        try:
            found = await search_customers(tools.services, tools.tenant(), query, limit)
        except NotFoundError:
            found = {"results": []}
        return _page(found["results"], 0, limit)

    @mcp.tool()
    async def get_orders(
        customer_id: CustomerId, offset: Offset = 0, limit: Limit = 10
    ) -> dict[str, Any]:
        """A retail customer's orders, newest first, a page at a time."""
        return await tools.listing(customer_id, "orders", offset, limit)

    @mcp.tool()
    async def get_holdings(
        customer_id: CustomerId, offset: Offset = 0, limit: Limit = 10
    ) -> dict[str, Any]:
        """A bank customer's accounts and cards, a page at a time."""
        return await tools.listing(customer_id, "holdings", offset, limit)

    @mcp.tool()
    async def get_transactions(
        customer_id: CustomerId, offset: Offset = 0, limit: Limit = 10
    ) -> dict[str, Any]:
        """A bank customer's transactions, newest first, a page at a time."""
        return await tools.listing(customer_id, "transactions", offset, limit)

    @mcp.tool()
    async def get_interactions(
        customer_id: CustomerId, offset: Offset = 0, limit: Limit = 10
    ) -> dict[str, Any]:
        """A customer's past sessions (channel, intent, outcome, sentiment), newest first."""
        return await tools.listing(customer_id, "interactions", offset, limit)

    @mcp.tool()
    async def get_memory(customer_id: CustomerId) -> dict[str, Any]:
        """The four memory layers: l1_identity, l2_history, l3_episodes, l4_prefs_mood."""
        profile = await get_profile(tools.services, tools.tenant(), customer_id)
        memory = dict(profile.get("memory") or {})
        memory["l3_episodes"] = (memory.get("l3_episodes") or [])[:MAX_PAGE]
        return memory

    @mcp.tool()
    async def search_resolutions(
        query: Annotated[str, Field(min_length=1, max_length=500)], limit: Limit = 5
    ) -> dict[str, Any]:
        """Past resolutions (with success rates) and knowledge documents matching ``query``."""
        return _page(await tools.search(query, ("resolution", "document"), limit), 0, limit)

    @mcp.tool()
    async def get_offers(
        query: Annotated[str, Field(max_length=500)] = "", limit: Limit = 10
    ) -> dict[str, Any]:
        """The tenant's offers: all of them, or those matching ``query``."""
        if query.strip():
            return _page(await tools.search(query, ("offer",), limit), 0, limit)
        async with tools.services.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT id, title, description, terms, valid_until FROM offers"
                    " WHERE tenant_id = %s ORDER BY id",
                    (tools.tenant(),),
                )
            ).fetchall()
        return _page([{**r, "valid_until": str(r["valid_until"] or "")} for r in rows], 0, limit)

    @mcp.tool()
    async def get_open_handoffs(offset: Offset = 0, limit: Limit = 10) -> dict[str, Any]:
        """The warm handoff queue, oldest first: header (tier, CLV, churn risk) and summary."""
        queue = await list_handoffs(tools.services, tools.tenant(), "open", 200)
        return _page(queue["data"], offset, limit)

    return mcp
