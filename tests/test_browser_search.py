"""The search box in real Chromium: Ctrl+K, highlighted results, a result opened in context."""
from __future__ import annotations

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
    context = page.locator(".search-context li")
    expect(context).to_have_count(4)
    expect(page.locator(".search-context-hit mark")).to_have_text("地铁")
    expect(page.locator("#search-preview a")).to_have_attribute("href", f"/chat/u/{bob.user_id}")
    page.screenshot(path=str(SHOTS / "search-context.png"))
