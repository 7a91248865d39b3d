"""Invalid keys on ``/mcp`` are limited per client address (issue #26, probe finding F7).

The probe sent 30 ``POST /mcp/`` with ``Authorization: Bearer ak_guess<N>``: all 401, never 429,
and none counted toward the address's failed authentications (``AUTH_FAILURE_RATE_LIMIT``) that
every other route applies; the MCP SDK checks keys in its own middleware. The mounted MCP app is
now wrapped in ``api.ratelimit.AuthFailureGuard``: its 401s count in the address's counter and an
address over the limit gets 429 before any key is looked up, one budget with the other routes.
The API in process (ASGI, its lifespan run), real PostgreSQL and Redis, no mocks.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from support_agent.api.app import create_app
from support_agent.conversation import Agent
from support_agent.services import Services
from support_agent.tenancy import create_api_key

#: A JSON-RPC request any MCP server answers (stateless: no ``initialize`` needed).
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
#: What a streamable-HTTP MCP client accepts.
ACCEPT = {"Accept": "application/json, text/event-stream"}


def _address() -> str:
    """A client address of its own for each test (per-address counters stay apart)."""
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


@pytest.fixture
def limits(services: Services, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set limits for an app created after this (the limiter reads the services' settings)."""

    def apply(**update: Any) -> None:
        monkeypatch.setattr(services, "settings", services.settings.model_copy(update=update))

    return apply


@pytest.fixture
async def make_app(agent: Agent) -> AsyncIterator[Any]:
    """Build the API (after :func:`limits`) with its lifespan entered; left on teardown."""
    entered: list[Any] = []

    async def build() -> FastAPI:
        app = create_app(agent=agent)
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        entered.append(context)
        return app

    yield build
    for context in reversed(entered):
        await context.__aexit__(None, None, None)


def _http(app: FastAPI, address: str) -> httpx.AsyncClient:
    """A client of ``app`` whose socket peer (the address the API sees) is ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def _mcp(http: httpx.AsyncClient, key: str | None, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return await http.post("/mcp/", json=LIST_TOOLS, headers={**ACCEPT, **auth, **headers})


async def test_invalid_keys_on_mcp_are_limited_per_address(
    make_app: Any, services: Services, limits: Any
) -> None:
    """The probe: guessed keys from one address get 401 up to ``AUTH_FAILURE_RATE_LIMIT``, then
    429 with ``Retry-After``, even for a valid key (nothing is looked up); a valid key from
    another address is served, and another address's guesses still get their own 401s."""
    limits(auth_failure_rate_limit="20/minute")
    valid = await create_api_key(services, "retail")
    app = await make_app()
    guesser = _address()
    async with _http(app, guesser) as http:
        codes = [(await _mcp(http, f"ak_guess{n}")).status_code for n in range(30)]
        assert codes == [401] * 20 + [429] * 10, codes
        refused = await _mcp(http, "ak_guess30")
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await _mcp(http, None)).status_code == 429  # no key at all
        assert (await _mcp(http, valid)).status_code == 429  # refused before the lookup
    async with _http(app, _address()) as elsewhere:
        served = await _mcp(elsewhere, valid)
        assert served.status_code == 200, served.text
        assert {t["name"] for t in served.json()["result"]["tools"]} >= {"get_customer_360"}
        assert (await _mcp(elsewhere, "ak_guess")).status_code == 401


async def test_mcp_and_the_api_share_one_budget(
    make_app: Any, services: Services, limits: Any
) -> None:
    """Failed keys on ``/mcp/`` and on ``/threads`` from one address count in one counter: the
    limit is reached by both together, and then both refuse."""
    limits(auth_failure_rate_limit="6/minute")
    app = await make_app()
    async with _http(app, _address()) as http:
        codes = []
        for n in range(3):
            codes.append((await _mcp(http, f"ak_guess{n}")).status_code)
            threads = await http.post("/threads", json={}, headers={"x-api-key": f"sk_guess{n}"})
            codes.append(threads.status_code)
        assert codes == [401] * 6, codes
        assert (await _mcp(http, "ak_guess")).status_code == 429
        threads = await http.post("/threads", json={}, headers={"x-api-key": "sk_guess"})
        assert threads.status_code == 429, threads.text
    async with _http(app, _address()) as http:  # and the other way round: /threads first
        for n in range(6):
            r = await http.post("/threads", json={}, headers={"x-api-key": f"sk_guess{n}"})
            assert r.status_code == 401
        assert (await _mcp(http, "ak_guess")).status_code == 429


async def test_behind_trusted_proxies_mcp_counts_the_forwarded_address(
    make_app: Any, services: Services, limits: Any
) -> None:
    """Behind a trusted proxy the counter is the forwarded client's, as on every other route:
    one client's guesses do not lock out another behind the same proxy."""
    limits(auth_failure_rate_limit="3/minute", trusted_proxies=["127.0.0.1/32"])
    valid = await create_api_key(services, "retail")
    app = await make_app()
    guesser, other = _address(), _address()
    async with _http(app, "127.0.0.1") as proxy:
        codes = [(await _mcp(proxy, f"ak_guess{n}", **{"X-Forwarded-For": guesser})).status_code
                 for n in range(4)]  # fmt: skip
        assert codes == [401] * 3 + [429], codes
        assert (await _mcp(proxy, "ak_guess", **{"X-Forwarded-For": other})).status_code == 401
        served = await _mcp(proxy, valid, **{"X-Forwarded-For": other})
        assert served.status_code == 200, served.text
