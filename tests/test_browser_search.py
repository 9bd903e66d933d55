"""The search box in real Chromium: Ctrl+K, highlighted results, a result opened in context."""
from __future__ import annotations

import re
from pathlib import Path

from tests.test_browser_chat import browser, tabs  # noqa: F401 (fixtures)

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips (or fails under CI)
    expect = None

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def test_search_box_highlights_and_opens_a_result_in_context(sqlite_server, tabs):  # noqa: F811
    from tests.support import Api
    alice, bob = Api.new_user(sqlite_server.base, "alice"), Api.new_user(sqlite_server.base, "bob")
    alice.follow_each_other(bob)
    ids = []
    for text in ("see you tomorrow", "早上八点，地铁站见", "<b>not bold</b>", "ok"):
        r = bob.post("/api/messages", json={"recipient_id": alice.user_id, "content": text})
        ids.append(r.json()["id"])
    tab = tabs(sqlite_server, alice)
    page = tab.page
    page.keyboard.press("Control+k")
    expect(page.locator("#search-box")).to_be_focused()
    page.keyboard.type("地铁")
    hit = page.locator(".search-result")
    expect(hit).to_have_count(1)
    expect(hit.locator("mark")).to_have_text("地铁")
    expect(hit.locator(".search-text")).to_have_text("早上八点，地铁站见")
    page.locator("#search-box").fill("<b>")
    expect(page.locator(".search-result .search-text")).to_have_text("<b>not bold</b>")
    assert page.locator(".search-result b").count() == 0  # shown as text, never as HTML
    page.locator("#search-box").fill("地铁")
    expect(hit).to_have_count(1)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "search-results.png"))
    hit.locator("button").click()
    expect(page).to_have_url(f"{sqlite_server.base}/chat/u/{bob.user_id}")
    expect(page.locator(f'#messages > .msg[data-id="{ids[1]}"]')).to_be_in_viewport()
    page.screenshot(path=str(SHOTS / "search-context.png"))


def scroll_to_bottom_until(page, locator, tries=40):
    """Scroll the thread down (newer pages load as it reaches the bottom) until `locator` is there."""
    for _ in range(tries):
        page.locator("#scroller").evaluate("s => { s.scrollTop = s.scrollHeight; }")
        if locator.count():
            break
        page.wait_for_timeout(150)
    page.locator("#scroller").evaluate("s => { s.scrollTop = s.scrollHeight; }")


def test_a_result_far_back_opens_there_and_loads_down_to_the_newest(sqlite_server, tabs):  # noqa: F811
    """150 messages after the hit: it opens highlighted at the hit; scrolling down reaches the newest, then live."""
    from tests.support import Api
    alice = Api.new_user(sqlite_server.base, "alice")
    bob, carol = Api.new_user(sqlite_server.base, "bob"), Api.new_user(sqlite_server.base, "carol")
    alice.follow_each_other(bob)
    alice.follow_each_other(carol)
    say = lambda who, text: who.post("/api/messages", json={"recipient_id": alice.user_id,  # noqa: E731
                                                            "content": text}).json()["id"]
    target = say(bob, "the address is 12 Elm Street")
    for i in range(150):
        say(bob, f"filler {i:03d}")
    newest = bob.post("/api/messages", json={"recipient_id": alice.user_id, "content": "the newest one",
                                             "reply_to": target}).json()["id"]
    elsewhere = say(carol, "my address changed")
    tab = tabs(sqlite_server, alice)
    page = tab.page
    page.keyboard.press("Control+k")
    page.keyboard.type("address")
    results = page.locator(".search-result")
    expect(results).to_have_count(2)
    page.locator(f'.search-result[data-id="{target}"] button').click()
    expect(page).to_have_url(f"{sqlite_server.base}/chat/u/{bob.user_id}")
    hit = page.locator(f'#messages > .msg[data-id="{target}"]')
    expect(hit).to_be_in_viewport()
    expect(hit).to_have_class(re.compile(r"\bflash-in\b"))
    last = page.locator(f'#messages > .msg[data-id="{newest}"]')
    assert last.count() == 0  # far below: not loaded yet
    scroll_to_bottom_until(page, last)
    expect(last).to_be_in_viewport()
    expect(page.locator("#messages > .msg")).to_have_count(152)  # every message once, none skipped
    bob.post("/api/messages", json={"recipient_id": alice.user_id, "content": "live after that"})
    expect(page.locator("#messages > .msg").last).to_contain_text("live after that")

    # Search in this conversation: only bob's hit; "all conversations" brings carol's back.
    page.locator("#thread-search").click()
    expect(page.locator("#search-box")).to_be_focused()
    expect(page.locator("#search-scope")).to_be_visible()
    expect(results).to_have_count(1)
    expect(results.first).to_have_attribute("data-id", str(target))
    page.locator("#search-scope button").click()
    expect(results).to_have_count(2)

    # A reply's quote of a message this far back opens the history around it too.
    other = tabs(sqlite_server, alice, f"/chat/u/{bob.user_id}").page
    other.locator(f'#messages > .msg[data-id="{newest}"] .reply-quote').click()
    expect(other.locator(f'#messages > .msg[data-id="{target}"]')).to_be_in_viewport()

    # A link to a message of another conversation: said so, and the newest page instead.
    wrong = tabs(sqlite_server, alice, f"/chat/u/{bob.user_id}#message-{elsewhere}").page
    expect(wrong.locator("#action-error")).to_have_text("The message could not be found.")
    expect(wrong.locator(f'#messages > .msg[data-id="{newest}"]')).to_be_in_viewport()
