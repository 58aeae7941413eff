"""The todo demo in Chromium with WebSockets blocked (route interception closes every
upgrade before welcome): the JS SDK falls back to SSE, two pages sync, one goes offline
and comes back, and both converge."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, BrowserContext, WebSocketRoute, expect

from tests.browser.test_demos import SECOND, SETTLE, no_page_errors, open_demo, todo_titles
from tests.support.suite import DevProcess

pytestmark = pytest.mark.browser


async def blocked_context(browser: Browser) -> tuple[BrowserContext, list[str]]:
    """A context whose WebSockets are all refused, as by a proxy that blocks upgrades."""
    context = await browser.new_context()
    refused: list[str] = []

    async def refuse(ws: WebSocketRoute) -> None:
        refused.append(ws.url)
        await ws.close(code=1008, reason="WebSockets are blocked here")

    await context.route_web_socket("**/ws", refuse)
    return context, refused


async def transport(page: object) -> str | None:
    value = await page.evaluate("() => window.accord.status.transport")  # type: ignore[attr-defined]
    return value if isinstance(value, str) else None


async def test_todo_syncs_over_sse_when_websockets_are_blocked(
    browser: Browser, accord: DevProcess, room_name: str
) -> None:
    alice_context, alice_refused = await blocked_context(browser)
    bob_context, bob_refused = await blocked_context(browser)
    alice = await open_demo(alice_context, accord, "/demo/todo", room=room_name, name="Alice")
    bob = await open_demo(bob_context, accord, "/demo/todo", room=room_name, name="Bob")
    assert len(alice_refused) >= 2 and len(bob_refused) >= 2
    assert await transport(alice) == await transport(bob) == "sse"

    await alice.fill("#new-title", "Over SSE")
    await alice.press("#new-title", "Enter")
    await expect(bob.locator("#todos .title")).to_have_text(["Over SSE"], timeout=2 * SECOND)
    await expect(bob.locator("#peers li")).to_have_count(2, timeout=5 * SECOND)

    await alice_context.set_offline(True)
    await expect(alice.locator("#status")).to_have_attribute(
        "data-state", "offline", timeout=5 * SECOND
    )
    await alice.fill("#new-title", "Written offline")
    await alice.press("#new-title", "Enter")
    await expect(alice.locator("#status")).to_have_text("offline, pending 1")
    await bob.fill("#new-title", "Written online")
    await bob.press("#new-title", "Enter")

    await alice_context.set_offline(False)
    expected = ["Over SSE", "Written offline", "Written online"]
    for page in (alice, bob):
        await expect(page.locator("#status")).to_have_text("synced", timeout=SETTLE)
        await expect(page.locator("#todos .title")).to_have_text(expected, timeout=5 * SECOND)
    assert await todo_titles(alice) == await todo_titles(bob)
    assert await transport(alice) == "sse"
    await no_page_errors(alice, bob)
