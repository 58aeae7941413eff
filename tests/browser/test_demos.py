"""The demos in Chromium against `accord dev`: live sync, offline and catch-up, chat, the editor."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.support.suite import DevProcess

pytestmark = pytest.mark.browser

SECOND = 1000  # ms: "see each other within a second"
SETTLE = 15_000  # ms: connecting, reconnecting after offline
PHONE_WIDTH = 375  # px: the narrowest common phone (iPhone SE/mini class)


async def open_demo(context: BrowserContext, accord: DevProcess, path: str, **query: str) -> Page:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    await page.goto(f"{accord.http_url}{path}?{qs}")
    try:
        await expect(page.locator("#status")).to_have_text("synced", timeout=SETTLE)
    except AssertionError as error:
        raise AssertionError(f"{path} never synced: {await sdk_state(page)}") from error
    return page


async def sdk_state(page: Page) -> Any:
    """What the SDK thinks, for failure messages."""
    return await page.evaluate(
        """() => {
        const c = window.accord;
        if (!c) return "no client";
        return {phase: c.phase, status: c.status, rooms: [...c.rooms.values()].map((r) => ({
            name: r.name, subscribed: r.subscribed, caughtUp: r.caughtUp, seq: r.seq, head: r.head,
            expectSnapshot: r.expectSnapshot, pending: r.pendingCount, error: r.error}))};
    }"""
    )


async def no_page_errors(*pages: Page) -> None:
    for page in pages:
        assert page.errors == [], page.errors  # type: ignore[attr-defined]


async def test_index_lists_the_demos(
    browser: Browser, accord: DevProcess, screenshots: Path
) -> None:
    page = await browser.new_page()
    await page.goto(accord.http_url + "/")
    links = page.locator("#demos a")
    await expect(links).to_have_count(3)
    assert [await link.get_attribute("href") for link in await links.all()] == [
        "/demo/todo",
        "/demo/chat",
        "/demo/editor",
    ]
    await page.screenshot(path=screenshots / "index.png", full_page=True)


async def todo_titles(page: Page) -> list[str]:
    return await page.locator("#todos li .title").all_text_contents()


async def test_todo_two_browsers_see_each_other_within_a_second(
    browser: Browser, accord: DevProcess, room_name: str, screenshots: Path
) -> None:
    alice = await open_demo(
        await browser.new_context(), accord, "/demo/todo", room=room_name, name="Alice"
    )
    bob = await open_demo(
        await browser.new_context(), accord, "/demo/todo", room=room_name, name="Bob"
    )
    for page in (alice, bob):
        await expect(page.locator("#peers li")).to_have_count(2, timeout=5 * SECOND)
    await expect(alice.locator("#peers")).to_contain_text("Bob")

    await alice.fill("#new-title", "Buy milk")
    await alice.press("#new-title", "Enter")
    await expect(alice.locator("#todos .title")).to_have_text(["Buy milk"], timeout=5 * SECOND)
    await expect(bob.locator("#todos .title")).to_have_text(["Buy milk"], timeout=SECOND)

    await bob.fill("#new-title", "Walk the dog")
    await bob.press("#new-title", "Enter")
    await expect(alice.locator("#todos .title")).to_have_text(
        ["Buy milk", "Walk the dog"], timeout=SECOND
    )

    # Complete on one side, seen on the other.
    await bob.locator("#todos li", has_text="Buy milk").locator("input[type=checkbox]").check()
    await expect(
        alice.locator("#todos li", has_text="Buy milk").locator("input[type=checkbox]")
    ).to_be_checked(timeout=SECOND)

    # Edit a title.
    await alice.locator("#todos li", has_text="Walk the dog").locator("button.edit").click()
    await alice.fill("#todos .edit-input", "Walk the cat")
    await alice.press("#todos .edit-input", "Enter")
    await expect(bob.locator("#todos .title")).to_have_text(
        ["Buy milk", "Walk the cat"], timeout=SECOND
    )
    await expect(alice.locator("#status")).to_have_text("synced", timeout=SECOND)
    await alice.screenshot(path=screenshots / "todo.png", full_page=True)

    # Delete.
    await bob.locator("#todos li", has_text="Buy milk").locator("button.delete").click()
    await expect(alice.locator("#todos .title")).to_have_text(["Walk the cat"], timeout=SECOND)
    await no_page_errors(alice, bob)


async def test_todo_offline_edits_catch_up_and_converge(
    browser: Browser, accord: DevProcess, room_name: str, screenshots: Path
) -> None:
    offline_context = await browser.new_context()
    alice = await open_demo(offline_context, accord, "/demo/todo", room=room_name, name="Alice")
    bob = await open_demo(
        await browser.new_context(), accord, "/demo/todo", room=room_name, name="Bob"
    )
    await alice.fill("#new-title", "Shared item")
    await alice.press("#new-title", "Enter")
    await expect(bob.locator("#todos .title")).to_have_text(["Shared item"], timeout=SECOND)

    await offline_context.set_offline(True)
    await expect(alice.locator("#status")).to_have_attribute(
        "data-state", "offline", timeout=5 * SECOND
    )
    await expect(bob.locator("#peers li")).to_have_count(1, timeout=10 * SECOND)
    # Alice works offline: her edits show at once and queue up.
    await alice.fill("#new-title", "Written offline")
    await alice.press("#new-title", "Enter")
    await alice.locator("#todos li", has_text="Shared item").locator("input[type=checkbox]").check()
    await expect(alice.locator("#todos .title")).to_have_text(["Shared item", "Written offline"])
    await expect(alice.locator("#status")).to_have_text("offline, pending 2")
    await alice.screenshot(path=screenshots / "todo-offline.png", full_page=True)
    # Meanwhile Bob, online, changes things too.
    await bob.fill("#new-title", "Written online")
    await bob.press("#new-title", "Enter")
    await bob.locator("#todos li", has_text="Shared item").locator("button.edit").click()
    await bob.fill("#todos .edit-input", "Shared item (renamed)")
    await bob.press("#todos .edit-input", "Enter")
    await expect(alice.locator("#todos .title")).to_have_text(["Shared item", "Written offline"])

    await offline_context.set_offline(False)
    expected = ["Shared item (renamed)", "Written offline", "Written online"]
    for page in (alice, bob):
        await expect(page.locator("#status")).to_have_text("synced", timeout=SETTLE)
        await expect(page.locator("#todos .title")).to_have_text(expected, timeout=5 * SECOND)
        await expect(
            page.locator("#todos li", has_text="Shared item").locator("input[type=checkbox]")
        ).to_be_checked()
    assert await todo_titles(alice) == await todo_titles(bob)
    await no_page_errors(alice, bob)


async def test_todo_offline_queue_survives_closing_the_page(
    browser: Browser, accord: DevProcess, room_name: str
) -> None:
    """The queue is in IndexedDB: a change made offline in a closed tab is sent by the next one."""
    context = await browser.new_context()
    alice = await open_demo(context, accord, "/demo/todo", room=room_name, name="Alice")
    bob = await open_demo(
        await browser.new_context(), accord, "/demo/todo", room=room_name, name="Bob"
    )
    await context.set_offline(True)
    await expect(alice.locator("#status")).to_have_attribute(
        "data-state", "offline", timeout=5 * SECOND
    )
    await alice.fill("#new-title", "Queued in IndexedDB")
    await alice.press("#new-title", "Enter")
    await expect(alice.locator("#status")).to_have_text("offline, pending 1")
    await alice.wait_for_timeout(300)  # let the queued change's IndexedDB transaction commit
    await alice.close()
    await expect(bob.locator("#todos .title")).to_have_count(0)

    await context.set_offline(False)
    again = await context.new_page()
    await again.goto(f"{accord.http_url}/demo/todo?room={room_name}&name=Alice")
    await expect(bob.locator("#todos .title")).to_have_text(["Queued in IndexedDB"], timeout=SETTLE)
    await expect(again.locator("#status")).to_have_text("synced", timeout=SETTLE)


async def test_chat_delivers_messages_history_and_typing(
    browser: Browser, accord: DevProcess, room_name: str, screenshots: Path
) -> None:
    alice = await open_demo(
        await browser.new_context(), accord, "/demo/chat", room=room_name, name="Alice"
    )
    bob = await open_demo(
        await browser.new_context(), accord, "/demo/chat", room=room_name, name="Bob"
    )
    await expect(alice.locator("#online li")).to_have_count(2, timeout=5 * SECOND)
    await expect(bob.locator("#online")).to_contain_text("Alice")

    await alice.locator("#message").press_sequentially("Hi Bob", delay=20)
    await expect(bob.locator("#typing")).to_have_text("Alice is typing…", timeout=SECOND)
    await alice.press("#message", "Enter")
    await expect(bob.locator("#messages .msg .bubble")).to_have_text(["Hi Bob"], timeout=SECOND)
    await expect(bob.locator("#typing")).to_have_text("", timeout=SECOND)

    await bob.locator("#message").press_sequentially("Hello Alice!", delay=10)
    await bob.press("#message", "Enter")
    await expect(alice.locator("#messages .msg .bubble")).to_have_text(
        ["Hi Bob", "Hello Alice!"], timeout=SECOND
    )
    await expect(alice.locator("#messages .msg.mine .bubble")).to_have_text(["Hi Bob"])

    # A latecomer gets the history on joining.
    carol = await open_demo(
        await browser.new_context(), accord, "/demo/chat", room=room_name, name="Carol"
    )
    await expect(carol.locator("#messages .msg .bubble")).to_have_text(
        ["Hi Bob", "Hello Alice!"], timeout=SECOND
    )
    await expect(alice.locator("#online li")).to_have_count(3, timeout=5 * SECOND)
    await alice.screenshot(path=screenshots / "chat.png", full_page=True)

    # Rooms are separate.
    await carol.fill("#new-room-name", f"{room_name}-b")
    await carol.press("#new-room-name", "Enter")
    await expect(carol.locator("#messages .empty")).to_be_visible(timeout=5 * SECOND)
    await expect(alice.locator("#online li")).to_have_count(2, timeout=5 * SECOND)
    await no_page_errors(alice, bob, carol)


async def editor_text(page: Page) -> str:
    return await page.locator("#editor").input_value()


async def test_editor_concurrent_typing_converges(
    browser: Browser, accord: DevProcess, room_name: str, screenshots: Path
) -> None:
    alice = await open_demo(
        await browser.new_context(), accord, "/demo/editor", room=room_name, name="Alice"
    )
    bob = await open_demo(
        await browser.new_context(), accord, "/demo/editor", room=room_name, name="Bob"
    )
    editor_a, editor_b = alice.locator("#editor"), bob.locator("#editor")
    await editor_a.click()
    await editor_a.press_sequentially("Hello world", delay=10)
    await expect(editor_b).to_have_value("Hello world", timeout=SECOND)

    # Both type at once: Alice at the end, Bob at the start, then both in the middle.
    await editor_b.click()
    await bob.keyboard.press("Control+Home")
    await alice.keyboard.press("Control+End")
    await asyncio.gather(
        editor_a.press_sequentially("! How are you?", delay=15),
        editor_b.press_sequentially("Well, ", delay=15),
    )
    await expect(editor_a).to_have_value("Well, Hello world! How are you?", timeout=SECOND)
    await expect(editor_b).to_have_value("Well, Hello world! How are you?", timeout=SECOND)

    # Both insert at the same place at once: both insertions survive, everywhere alike.
    base = "Well, Hello world! How are you?"
    await editor_a.evaluate("(e) => e.setSelectionRange(11, 11)")  # after "Well, Hello"
    await editor_b.evaluate("(e) => e.setSelectionRange(11, 11)")
    await asyncio.gather(
        editor_a.press_sequentially(" there", delay=12),
        editor_b.press_sequentially(" dear", delay=12),
    )
    for page in (alice, bob):
        await expect(page.locator("#status")).to_have_text("synced", timeout=5 * SECOND)
    final = await editor_text(alice)
    await expect(editor_b).to_have_value(final, timeout=SECOND)
    assert final[:11] == base[:11] and final[22:] == base[11:], final
    # The list op keeps each run together: never " tdheaerre".
    assert final[11:22] in (" there dear", " dear there"), final

    # One deletes while the other types elsewhere.
    await editor_a.evaluate("(e) => e.setSelectionRange(6, 6)")
    await editor_b.evaluate("(e) => e.setSelectionRange(e.value.length, e.value.length)")

    async def delete_six() -> None:
        for _ in range(6):
            await alice.keyboard.press("Backspace")
            await alice.wait_for_timeout(12)

    await asyncio.gather(delete_six(), editor_b.press_sequentially(" Fine.", delay=12))
    expected = final[6:] + " Fine."
    await expect(editor_a).to_have_value(expected, timeout=SECOND)
    await expect(editor_b).to_have_value(expected, timeout=SECOND)

    # Each sees the other's cursor.
    await expect(alice.locator("#mirror .cursor")).to_have_count(1, timeout=SECOND)
    await expect(alice.locator("#mirror .cursor")).to_have_attribute("data-name", "Bob")
    await expect(bob.locator("#mirror .cursor")).to_have_attribute(
        "data-name", "Alice", timeout=SECOND
    )
    await alice.screenshot(path=screenshots / "editor.png", full_page=True)
    # The document is one record with a list field, one element per character.
    for page in (alice, bob):
        assert await document_text(page, room_name) == expected
    await no_page_errors(alice, bob)


async def document_text(page: Page, room: str) -> str:
    """The editor's record as the SDK holds it: docs/main, field text = [{id, value}]."""
    return await page.evaluate(
        """(room) => {
        const r = window.accord.rooms.get(room);
        if (r.list("chars").length) return "records in the old per-character layout";
        const items = r.get("docs", "main").text;
        const ok = (i) => /^\\d+\\.\\d+@/.test(i.id) && [...i.value].length === 1;
        if (!items.every(ok)) return "bad items";
        return items.map((i) => i.value).join("");
    }""",
        room,
    )


CURSOR_BEFORE = "document.querySelector('#mirror .cursor')?.previousSibling?.textContent ?? null"
CURSOR_AFTER = f"(text) => ({CURSOR_BEFORE}) === text"


async def mirror_before_cursor(page: Page) -> str:
    """The text before the (only) peer cursor in the mirror."""
    return await page.evaluate(f"() => {CURSOR_BEFORE}")


async def test_editor_delete_vs_insert_at_one_spot_and_cursors_follow_their_character(
    browser: Browser, accord: DevProcess, room_name: str
) -> None:
    alice = await open_demo(
        await browser.new_context(), accord, "/demo/editor", room=room_name, name="Alice"
    )
    bob = await open_demo(
        await browser.new_context(), accord, "/demo/editor", room=room_name, name="Bob"
    )
    editor_a, editor_b = alice.locator("#editor"), bob.locator("#editor")
    await editor_a.click()
    await editor_a.press_sequentially("Hello brave new world", delay=5)
    await expect(editor_b).to_have_value("Hello brave new world", timeout=SECOND)

    # Alice deletes "brave " while Bob types inside it: Bob's text lands where the word was.
    await editor_a.evaluate("(e) => e.setSelectionRange(6, 12)")
    await editor_b.click()
    await editor_b.evaluate("(e) => e.setSelectionRange(8, 8)")  # "Hello br|ave"
    await asyncio.gather(
        alice.keyboard.press("Backspace"), editor_b.press_sequentially("XYZ", delay=15)
    )
    for page in (alice, bob):
        await expect(page.locator("#editor")).to_have_value("Hello XYZnew world", timeout=SECOND)
        await expect(page.locator("#status")).to_have_text("synced", timeout=5 * SECOND)

    # Bob's caret sits after "Hello"; Alice types at the start: his caret (on his screen
    # and on hers) stays after "Hello", because it is the id of the "o", not an offset.
    await editor_b.evaluate("(e) => { e.focus(); e.setSelectionRange(5, 5); }")
    await bob.keyboard.press("ArrowRight")
    await bob.keyboard.press("ArrowLeft")
    await alice.wait_for_function(CURSOR_AFTER, arg="Hello", timeout=5 * SECOND)
    await editor_a.evaluate("(e) => { e.focus(); e.setSelectionRange(0, 0); }")
    await editor_a.press_sequentially("Oh, ", delay=10)
    await expect(editor_b).to_have_value("Oh, Hello XYZnew world", timeout=SECOND)
    assert await editor_b.evaluate("(e) => e.selectionStart") == len("Oh, Hello")
    await alice.wait_for_function(CURSOR_AFTER, arg="Oh, Hello", timeout=SECOND)
    assert await mirror_before_cursor(alice) == "Oh, Hello"
    await no_page_errors(alice, bob)


async def test_editor_offline_typing_is_rebased_and_converges(
    browser: Browser, accord: DevProcess, room_name: str, screenshots: Path
) -> None:
    offline = await browser.new_context()
    alice = await open_demo(offline, accord, "/demo/editor", room=room_name, name="Alice")
    bob = await open_demo(
        await browser.new_context(), accord, "/demo/editor", room=room_name, name="Bob"
    )
    editor_a, editor_b = alice.locator("#editor"), bob.locator("#editor")
    await editor_a.click()
    await editor_a.press_sequentially("middle", delay=5)
    await expect(editor_b).to_have_value("middle", timeout=SECOND)

    await offline.set_offline(True)
    await expect(alice.locator("#status")).to_have_attribute(
        "data-state", "offline", timeout=5 * SECOND
    )
    await alice.keyboard.press("Control+End")
    await editor_a.press_sequentially(" end", delay=5)
    await alice.keyboard.press("Control+Home")
    await alice.keyboard.press("Delete")  # removes the "m" Bob is about to type after
    await expect(alice.locator("#status")).to_have_text("offline, pending 5")
    await editor_b.click()
    await bob.keyboard.press("Control+Home")
    await bob.keyboard.press("ArrowRight")
    await editor_b.press_sequentially("[bob]", delay=5)  # after the "m"
    await expect(editor_b).to_have_value("m[bob]iddle", timeout=SECOND)
    await expect(editor_a).to_have_value("iddle end")

    await offline.set_offline(False)
    for page in (alice, bob):
        await expect(page.locator("#status")).to_have_text("synced", timeout=SETTLE)
        await expect(page.locator("#editor")).to_have_value("[bob]iddle end", timeout=SECOND)
        assert await document_text(page, room_name) == "[bob]iddle end"
    await alice.screenshot(path=screenshots / "editor-offline.png", full_page=True)
    await no_page_errors(alice, bob)


@pytest.mark.parametrize("demo", ["index", "todo", "chat", "editor"])
async def test_pages_fit_a_phone(
    browser: Browser, accord: DevProcess, room_name: str, screenshots: Path, demo: str
) -> None:
    phone: dict[str, Any] = {
        "viewport": {"width": PHONE_WIDTH, "height": 812},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    }
    context = await browser.new_context(**phone)
    if demo == "index":
        page = await context.new_page()
        await page.goto(accord.http_url + "/")
    else:
        page = await open_demo(context, accord, f"/demo/{demo}", room=room_name, name="Phone")
        if demo == "todo":
            await page.fill("#new-title", "Fits on a phone")
            await page.press("#new-title", "Enter")
        elif demo == "chat":
            await page.fill("#message", "Hello from a small screen")
            await page.press("#message", "Enter")
        else:
            await page.locator("#editor").press_sequentially("Typing on a phone.")
        await expect(page.locator("#status")).to_have_text("synced", timeout=5 * SECOND)
    overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{demo} is {overflow}px wider than the phone's screen"
    if demo == "chat":
        # The room field and its button are wholly on screen, not scrolled away in the bar.
        for selector in ("#new-room-name", "#new-room button"):
            box = await page.locator(selector).bounding_box()
            assert box is not None and box["x"] >= 0, selector
            assert box["x"] + box["width"] <= PHONE_WIDTH, (selector, box)
        assert (await page.locator("#new-room-name").bounding_box() or {})["width"] >= 80
    await page.screenshot(path=screenshots / f"phone-{demo}.png", full_page=True)


async def test_todo_marks_queued_edits_and_the_offline_state_until_confirmed(
    browser: Browser, accord: DevProcess, room_name: str, screenshots: Path
) -> None:
    context = await browser.new_context(viewport={"width": PHONE_WIDTH, "height": 812})
    page = await open_demo(context, accord, "/demo/todo", room=room_name, name="Ada")
    banner = page.locator("#offline")
    await expect(banner).to_be_hidden()
    await page.fill("#new-title", "Confirmed first")
    await page.press("#new-title", "Enter")
    confirmed = page.locator("#todos li", has_text="Confirmed first")
    await expect(page.locator("#status")).to_have_text("synced", timeout=5 * SECOND)
    await expect(confirmed).not_to_have_class(re.compile(r"\bpending\b"))
    await expect(confirmed.locator(".queued")).to_be_hidden()

    await context.set_offline(True)
    await expect(banner).to_be_visible(timeout=5 * SECOND)
    await expect(banner).to_contain_text("Offline")
    await page.fill("#new-title", "Queued offline")
    await page.press("#new-title", "Enter")
    queued = page.locator("#todos li", has_text="Queued offline")
    await expect(queued).to_have_class(re.compile(r"\bpending\b"))
    await expect(queued.locator(".queued")).to_be_visible()
    await expect(queued.locator(".queued")).to_have_text("not saved yet")
    await expect(banner).to_contain_text("1 change(s) wait on this device")
    await expect(confirmed).not_to_have_class(re.compile(r"\bpending\b"))  # only the queued one
    await page.screenshot(path=screenshots / "phone-todo-offline.png", full_page=True)

    await context.set_offline(False)
    await expect(page.locator("#status")).to_have_text("synced", timeout=SETTLE)
    await expect(banner).to_be_hidden()
    await expect(queued).not_to_have_class(re.compile(r"\bpending\b"))
    await expect(queued.locator(".queued")).to_be_hidden()
    await no_page_errors(page)


async def test_chat_marks_a_message_queued_while_offline(
    browser: Browser, accord: DevProcess, room_name: str
) -> None:
    context = await browser.new_context()
    page = await open_demo(context, accord, "/demo/chat", room=room_name, name="Ada")
    await context.set_offline(True)
    await expect(page.locator("#offline")).to_be_visible(timeout=5 * SECOND)
    await page.fill("#message", "sent while offline")
    await page.press("#message", "Enter")
    message = page.locator(".msg", has_text="sent while offline")
    await expect(message).to_have_class(re.compile(r"\bpending\b"))
    await expect(message.locator(".queued")).to_have_text("not saved yet")
    await context.set_offline(False)
    await expect(page.locator("#status")).to_have_text("synced", timeout=SETTLE)
    await expect(message.locator(".queued")).to_have_count(0)
    await expect(message).not_to_have_class(re.compile(r"\bpending\b"))
    await no_page_errors(page)
