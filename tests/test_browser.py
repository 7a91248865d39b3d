"""The chat widget and the agents' console in a real browser (Debian's chromium, Playwright).

A shop page on another origin (one of retail's allowed widget origins) embeds the widget with one
script tag, a publishable key and the site's signed token for a logged-in customer. The customer
streams a reply, approves a cancellation with the button, gets angry and is handed off; the
console (agent key) shows the handoff live with every panel field and the conversation in real
time; the agent resolves it; the customer's next widget session greets them with the outcome.
Screenshots go to ``SCREENSHOT_DIR`` (default: the test's temporary directory).

``make test`` installs chromium with apt-get when it is missing; without it these tests fail,
unless ``SUPPORT_AGENT_ALLOW_SKIP=1`` says to skip them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from support_agent.services import Services
from support_agent.tenancy import create_api_key
from tests.conftest import WIDGET_ORIGIN, WIDGET_SECRET_ENV, customer_with, order_status, proof

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: ``make test`` installs chromium; a machine that cannot may skip these tests only explicitly.
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("SUPPORT_AGENT_ALLOW_SKIP") == "1",
    reason="chromium is not installed (SUPPORT_AGENT_ALLOW_SKIP=1)",
)
TIMEOUT_MS = 20_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


async def _host_page(html: str) -> AsyncIterator[str]:
    """Serve ``html`` at ``WIDGET_ORIGIN`` (the shop's site)."""

    async def page(_: Any) -> HTMLResponse:
        return HTMLResponse(html)

    port = int(WIDGET_ORIGIN.rsplit(":", 1)[1])
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/", page)]), host="127.0.0.1",
                                           port=port, log_level="warning"))  # fmt: skip
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the shop page did not start"
            await asyncio.sleep(0.05)
        yield WIDGET_ORIGIN + "/"
    finally:
        server.should_exit = True
        await task


def _shop(api: str, key: str, token: str) -> str:
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<style>body{{font-family:sans-serif;margin:40px}}</style></head>
<body><h1>Acme shop</h1><p>Signed in. Questions? Use the chat.</p>
<script src="{api}/widget.js" data-key="{key}" data-channel="web"
        data-customer-token="{token}" data-title="Retail store support" data-open="true"></script>
</body></html>"""


def _widget(page: Page) -> Any:
    """The widget's shadow root is open: Playwright's CSS selectors pierce it."""
    return page.locator("#support-agent-widget")


async def _say(page: Page, text: str) -> None:
    widget = _widget(page)
    await widget.locator("textarea").fill(text)
    await widget.locator("textarea").press("Enter")
    await expect(widget.locator("form button")).to_be_enabled(timeout=TIMEOUT_MS)


async def test_widget_to_console_to_next_session(
    served: tuple[str, Any], services: Services, browser: Browser, shots: Path
) -> None:
    api, _ = served
    widget_key = await create_api_key(services, "retail", "widget")
    agent_key = await create_api_key(services, "retail", "agent")
    cust = await customer_with(services, "pending")
    order_id = str(cust["order_id"])
    now = int(time.time())  # the longest a customer token may live: one hour
    token = jwt.encode(
        {"sub": cust["id"], "aud": "retail", "iat": now, "exp": now + 3600},
        os.environ[WIDGET_SECRET_ENV],
    )
    name = f"{cust['first_name']} {cust['last_name']}"
    errors: list[str] = []
    # two earlier conversations (ended, so each has a sentiment) for the console's trend chart
    secret = await create_api_key(services, "retail")
    async with httpx.AsyncClient(  # a cold process's first turns take seconds on a busy machine
        base_url=api, headers={"Authorization": f"Bearer {secret}"}, timeout=60
    ) as http:
        for words in ("thanks, that is great, you are very helpful", "this is annoying and slow"):
            first = await http.post("/v1/chat", json={"message": f"hi, {proof(cust)}"})
            session = first.json()["session_id"]
            await http.post("/v1/chat", json={"session_id": session, "message": words})
            assert (await http.post(f"/v1/sessions/{session}/end")).status_code == 200

    async for shop in _host_page(_shop(api, widget_key, token)):
        page = await browser.new_page(viewport={"width": 1100, "height": 760})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(shop)
        widget = _widget(page)
        await expect(widget.locator("[role=dialog]")).to_be_visible()
        await expect(widget.locator("[role=log]")).to_have_attribute("aria-live", "polite")

        # 1. a question streamed back, then a cancellation proposed and approved with the button
        await _say(page, f"Hi! Please cancel order {order_id}, I ordered it by mistake.")
        agent_lines = widget.locator(".msg.agent")
        await expect(agent_lines.last).to_contain_text(order_id.lstrip("#"), timeout=TIMEOUT_MS)
        approve = widget.get_by_role("button", name="Yes, go ahead")
        await expect(approve).to_be_visible()
        await page.screenshot(path=shots / "widget-approval.png")
        assert await order_status(services, order_id) == "pending"  # nothing without a yes
        replies = await agent_lines.count()
        await approve.click()
        await expect(agent_lines).to_have_count(replies + 1, timeout=TIMEOUT_MS)
        await expect(widget.locator(".approval")).to_have_count(0)
        await expect(agent_lines.last).to_contain_text("cancelled", ignore_case=True)
        assert await order_status(services, order_id) == "cancelled"

        # 2. the customer gets angry and asks for a person: a warm handoff
        await _say(page, "This is ridiculous, I am furious. Nothing works! Get me a human now!")
        banner = widget.get_by_role("status")
        await expect(banner).to_contain_text("colleague is joining", timeout=TIMEOUT_MS)
        await expect(banner).to_contain_text("can see everything")
        await page.screenshot(path=shots / "widget-handoff.png")

        # 3. the console shows the handoff live, with every panel field
        console = await browser.new_page(viewport={"width": 1400, "height": 1000})
        console.on("pageerror", lambda exc: errors.append(str(exc)))
        await console.goto(f"{api}/console")
        await console.get_by_label("Agent key").fill(agent_key)
        await console.get_by_role("button", name="Sign in").click()
        entry = console.locator("#queue-list button", has_text=name)
        await expect(entry).to_be_visible(timeout=TIMEOUT_MS)
        await entry.click()
        await expect(console.locator("#customer-name")).to_have_text(name)
        await expect(console.locator("#customer-tier")).not_to_be_empty()
        for field in ("#stat-tenure", "#stat-clv", "#stat-churn", "#stat-sentiment"):
            await expect(console.locator(field)).not_to_have_text("")
        await expect(console.locator("#stat-clv")).to_contain_text("$")
        await expect(console.locator("#stat-churn")).to_contain_text("%")
        await expect(console.locator("#stat-verified")).to_have_text("yes")
        await expect(console.locator("#summary")).to_contain_text(name)
        await expect(console.locator("#tried li").first).to_contain_text("turn")
        await expect(console.locator("#timeline li").first).to_be_visible()
        await expect(console.locator("#memory .layer")).to_have_count(4)
        await expect(console.locator("#memory")).to_contain_text("L4 preferences and mood")
        await expect(console.locator("#trend svg circle")).to_have_count(2)
        await expect(console.locator("#trend-note")).to_contain_text("over 2 conversations")
        conversation = console.locator("#conversation")
        await expect(conversation).to_contain_text("furious", timeout=TIMEOUT_MS)
        # the customer writes again: the console shows it in real time
        await _say(page, "Also, the tracking link in my email is broken.")
        await expect(conversation).to_contain_text("tracking link", timeout=TIMEOUT_MS)
        await console.screenshot(path=shots / "console.png", full_page=True)

        # 4. the agent resolves it; the outcome flows to the CRM and memory
        await console.get_by_label("What you did").fill(
            "Refunded the shipping fee and sent a working tracking link"
        )
        await console.get_by_label("Customer satisfaction").select_option("5")
        record = console.get_by_label("Resolution applied (optional)")
        await expect(record.locator("option")).not_to_have_count(1)  # suggestions to pick from
        record_id = await record.locator("option").nth(1).get_attribute("value")
        await record.select_option(record_id)
        uses_before = await _uses(services, str(record_id))
        await console.get_by_role("button", name="Resolve handoff").click()
        await expect(console.locator("#resolve-status")).to_contain_text("Resolved")
        await expect(entry).to_have_count(0, timeout=TIMEOUT_MS)  # off the live queue
        assert await _uses(services, str(record_id)) == uses_before + 1  # effectiveness counted
        await console.screenshot(path=shots / "console-resolved.png", full_page=True)

        # 5. the next widget session greets the customer with the outcome
        await widget.get_by_role("button", name="New").click()
        await expect(widget.locator(".msg")).to_have_count(0)
        await _say(page, "Hi again")
        greeting = agent_lines.last
        await expect(greeting).to_contain_text("shipping fee", timeout=TIMEOUT_MS)
        await page.screenshot(path=shots / "widget-next-session.png")
    assert errors == []


async def _uses(services: Services, record_id: str) -> int:
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT uses FROM resolution_records WHERE tenant_id = 'retail' AND id = %s",
                (record_id,),
            )
        ).fetchone()
    assert row is not None
    return int(row["uses"])


async def test_widget_rejoins_a_dropped_stream(
    served: tuple[str, Any], services: Services, browser: Browser
) -> None:
    """The connection drops after the first event: the widget rejoins the run from that event
    (``GET .../runs/{run}/stream`` with ``Last-Event-ID``) and shows the whole reply."""
    api, _ = served
    widget_key = await create_api_key(services, "retail", "widget")
    html = _shop(api, widget_key, "").replace('data-customer-token=""', "")
    rejoined: list[str | None] = []
    async for shop in _host_page(html):
        page = await browser.new_page()

        async def drop_after_first_event(route: Any) -> None:
            response = await route.fetch()
            first = (await response.text()).split("\r\n\r\n")[0] + "\r\n\r\n"
            assert "event: metadata" in first, first
            await route.fulfill(response=response, body=first)  # closed before `end`

        async def note_rejoin(route: Any) -> None:
            rejoined.append(route.request.headers.get("last-event-id"))
            await route.continue_()

        await page.route("**/runs/stream", drop_after_first_event)
        await page.route("**/runs/*/stream", note_rejoin)
        await page.goto(shop)
        widget = _widget(page)
        await _say(page, "where is my order?")
        reply = widget.locator(".msg.agent").last
        await expect(reply).to_contain_text("email", timeout=TIMEOUT_MS)
        await expect(widget.locator(".msg.system")).to_have_count(0)  # no error shown
    assert rejoined == ["1"]


async def test_widget_keyboard_and_reload(
    served: tuple[str, Any], services: Services, browser: Browser, shots: Path
) -> None:
    """Anonymous visitor: the widget works by keyboard alone and a reload keeps the thread."""
    api, _ = served
    widget_key = await create_api_key(services, "retail", "widget")
    html = _shop(api, widget_key, "").replace('data-customer-token=""', "")
    html = html.replace('data-open="true"', "")
    async for shop in _host_page(html):
        page = await browser.new_page()
        await page.goto(shop)
        widget = _widget(page)
        launcher = widget.get_by_role("button", name="Chat with us")
        await expect(launcher).to_have_attribute("aria-expanded", "false")
        await launcher.focus()
        await page.keyboard.press("Enter")
        await expect(launcher).to_have_attribute("aria-expanded", "true")
        await expect(widget.locator("textarea")).to_be_focused()
        await page.keyboard.type("where is my order?")
        await page.keyboard.press("Enter")
        reply = widget.locator(".msg.agent").last
        await expect(reply).to_contain_text("email", timeout=TIMEOUT_MS)  # asks who they are
        await page.reload()
        await widget.get_by_role("button", name="Chat with us").click()
        await expect(widget.locator(".msg.customer")).to_contain_text(["where is my order?"])
        await page.keyboard.press("Escape")
        await expect(widget.locator("[role=dialog]")).to_be_hidden()
        await page.screenshot(path=shots / "widget-anonymous.png")
