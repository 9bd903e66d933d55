"""Rich messages in the browser (issue 13): answer, change, take back, react, mention.

Real headless Chromium against a real server; each user in a browser context of their
own. Screenshots of each feature go to $CHAT_TEST_SCREENSHOTS (a temporary folder by
default, so a test run changes no tracked file); docs/ui.md shows the ones made with
CHAT_TEST_SCREENSHOTS=docs/screenshots.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from tests.support import Api
from tests import test_browser_chat as chat_ui
from tests.test_browser_chat import expect, pair

# The browser and the logged-in pages come from the chat UI's tests (the same fixtures).
browser = chat_ui.browser
tabs = chat_ui.tabs

SHOTS = Path(os.environ.get("CHAT_TEST_SCREENSHOTS") or Path(tempfile.gettempdir()) / "chat-screenshots")


def shot(tab, name: str) -> None:
    """Save the thread pane (a small PNG) as <SHOTS>/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.page.locator("#thread").screenshot(path=str(SHOTS / f"{name}.png"))


def menu(tab, text: str):
    """Open the action menu of the message showing `text` and return it."""
    message = tab.page.locator("#messages > .msg[data-id]", has_text=text).last
    message.hover()
    message.locator(".msg-more").click()
    return message.locator(".msg-menu")


def test_reply_quote_and_click_to_scroll(server, tabs):
    """A reply shows a quote of the original; clicking it loads older pages and shows it."""
    ann, ben = pair(server)
    original = ben.post("/api/messages", json={"recipient_id": ann.user_id,
                                               "content": "The original question\nsecond line"}).json()
    for i in range(40):
        ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": f"filler {i:02d}"})
    answer_id = ben.post("/api/messages", json={"recipient_id": ann.user_id,
                                                "content": "about that",
                                                "reply_to": original["id"]}).json()["id"]
    # Read already: an unread backlog this long would open at its first message (loaded).
    assert ann.post("/api/read", json={"recipient_id": ben.user_id,
                                       "last_read_id": answer_id}).status_code == 200
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    b = tabs(server, ben, f"/chat/u/{ann.user_id}")

    answer = a.page.locator("#messages > .msg", has_text="about that")
    quote = answer.locator(".reply-quote")
    expect(quote.locator(".reply-sender")).to_have_text(ben.username)
    expect(quote.locator(".reply-excerpt")).to_have_text("The original question")
    assert a.page.locator(f'#messages > .msg[data-id="{original["id"]}"]').count() == 0  # not loaded yet
    quote.click()
    target = a.page.locator(f'#messages > .msg[data-id="{original["id"]}"]')
    expect(target).to_be_in_viewport()

    # Ann answers through the menu: the bar says what she answers; Ben sees the quote live.
    menu(a, "filler 39").locator(".act-reply").click()
    expect(a.page.locator("#composer-bar")).to_contain_text(f"Replying to {ben.username}")
    a.send("yes, filler 39")
    expect(a.page.locator("#composer-bar")).to_be_hidden()
    mine = b.page.locator("#messages > .msg", has_text="yes, filler 39")
    expect(mine.locator(".reply-excerpt")).to_have_text("filler 39")
    shot(b, "reply")


def test_edit_recall_links_live(server, tabs):
    """Edits (Up-arrow) and take-backs reach the other side live; links are safe <a>; markup is text."""
    ann, ben = pair(server)
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    b = tabs(server, ben, f"/chat/u/{ann.user_id}")

    a.send("first draft")
    expect(b.page.locator("#messages .msg-text", has_text="first draft")).to_have_count(1)
    box = a.page.locator("#text")
    box.press("ArrowUp")
    expect(box).to_have_value("first draft")
    expect(a.page.locator("#composer-bar")).to_contain_text("Editing")
    box.press("Escape")
    expect(box).to_have_value("")
    box.press("ArrowUp")
    box.fill("<b>final</b> text")
    box.press("Enter")
    edited = b.page.locator("#messages > .msg", has_text="final")
    expect(edited.locator(".msg-text")).to_have_text("<b>final</b> text")
    expect(edited.locator(".msg-edited")).to_have_count(1)
    assert b.page.locator("#messages b").count() == 0
    # Edit from the menu while a message is half-written: the draft comes back afterwards.
    box.fill("half-written")
    menu(a, "final").locator(".act-edit").click()
    expect(box).to_have_value("<b>final</b> text")
    box.press("Escape")
    expect(box).to_have_value("half-written")
    box.fill("")

    a.send("see https://example.com/a?b=1, or javascript:alert(1) and http://x.test/y.")
    body = b.page.locator("#messages .msg-text", has_text="example.com")
    link = body.locator("a")
    expect(link).to_have_count(2)
    expect(link.first).to_have_attribute("href", "https://example.com/a?b=1")
    expect(link.first).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(link.first).to_have_attribute("target", "_blank")
    expect(link.last).to_have_attribute("href", "http://x.test/y")
    assert b.page.locator('#messages a[href^="javascript"]').count() == 0
    shot(b, "edit-and-links")

    a.send("oops, wrong chat")
    expect(b.page.locator("#messages .msg-text", has_text="oops")).to_have_count(1)
    menu(a, "oops, wrong chat").locator(".act-recall").click()
    gone = b.page.locator("#messages > .msg.recalled")
    expect(gone.locator(".msg-recalled")).to_have_text(f"{ann.username} took back a message")
    expect(b.page.locator("#messages .msg-text", has_text="oops")).to_have_count(0)
    expect(a.page.locator("#messages > .msg.recalled .msg-recalled")).to_have_text("You took back a message")
    expect(b.conv(f"private:{ann.user_id}").locator(".conv-preview")).to_have_text(
        f"{ann.username} took back a message")
    shot(b, "recall")


def test_reactions_counts_and_errors(server, tabs):
    """Reactions count live on both sides, ours highlighted, who in the title; a refusal is shown."""
    ann, ben = pair(server)
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    b = tabs(server, ben, f"/chat/u/{ann.user_id}")

    a.send("lunch at noon?")
    expect(b.page.locator("#messages .msg-text", has_text="lunch")).to_have_count(1)
    menu(b, "lunch at noon?").locator(".emoji", has_text="👍").click()
    thumbs = a.page.locator('#messages .reaction[data-emoji="👍"]')
    expect(thumbs.locator(".reaction-count")).to_have_text("1")
    expect(thumbs).not_to_have_class(re.compile(r"\bmine\b"))
    thumbs.click()  # Ann adds hers by clicking the count
    expect(thumbs.locator(".reaction-count")).to_have_text("2")
    expect(thumbs).to_have_class(re.compile(r"\bmine\b"))
    expect(b.page.locator('#messages .reaction[data-emoji="👍"] .reaction-count')).to_have_text("2")
    expect(thumbs).to_have_attribute("title", re.compile(f"{ben.username}.*{ann.username}"))

    # A long press opens the same menu (a touch screen has no hover).
    bubble = b.page.locator("#messages > .msg[data-id]", has_text="lunch at noon?").locator(".bubble")
    bubble.dispatch_event("pointerdown", {"pointerType": "touch", "clientX": 10, "clientY": 10})
    b.page.wait_for_timeout(700)
    bubble.dispatch_event("pointerup", {"pointerType": "touch"})
    bubble.click()  # the finger's own click leaves the menu open
    picker = b.page.locator("#messages .msg-menu")
    expect(picker).to_be_visible()
    shot(b, "menu")
    picker.locator(".emoji-input").fill("🎉")
    picker.locator(".emoji-input").press("Enter")
    expect(a.page.locator('#messages .reaction[data-emoji="🎉"] .reaction-count')).to_have_text("1")
    shot(a, "reactions")

    picker = menu(b, "lunch at noon?")
    picker.locator(".emoji-input").fill("nope")
    picker.locator(".emoji-input").press("Enter")
    expect(b.page.locator("#action-error")).to_be_visible()
    expect(b.page.locator('#messages .reaction')).to_have_count(2)


def test_mentions_suggested_marked_and_badged(server, tabs):
    """@ offers members (and @all to the owner); the mentioned see the mark and an @ badge."""
    ann, ben = pair(server)
    cat = Api.new_user(server.base, "cat")
    cat.follow_each_other(ann)
    group = ann.post("/api/groups", json={"name": "Lunch club"}).json()
    for user in (ben, cat):
        assert ann.put(f"/api/groups/{group['id']}/members/{user.user_id}").status_code == 200
    a = tabs(server, ann, f"/chat/g/{group['id']}")
    b = tabs(server, ben, locale="zh-CN")  # and in Chinese

    box = a.page.locator("#text")
    box.press_sequentially("@")
    options = a.page.locator("#mention-list .mention-option")
    expect(options.first).to_have_text(re.compile("^@all"))
    expect(options).to_have_count(3)
    shot(a, "mention-suggestions")
    box.press_sequentially(ben.username[:4])
    expect(options).to_have_count(1)
    box.press("Enter")  # picks the suggestion, does not send
    expect(box).to_have_value(f"@{ben.username} ")
    box.press_sequentially("table for three?")
    box.press("Enter")
    row = b.conv(f"group:{group['id']}")
    expect(row.locator(".mention-badge")).to_have_text("@")
    expect(row.locator(".mention-badge")).to_have_attribute("title", "有人@了你")
    stored = ben.get(f"/api/groups/{group['id']}/messages").json()["messages"]
    assert stored[-1]["mentions"] == [ben.user_id]
    row.locator("a").click()
    mark = b.page.locator("#messages > .msg.mentions-me mark.mention")
    expect(mark).to_have_text(f"@{ben.username}")
    expect(row.locator(".mention-badge")).to_have_count(0)  # read
    shot(b, "mentions-zh")

    # The owner may take back anyone's message in the group (but not edit it).
    cat.post("/api/messages", json={"group_id": group["id"], "content": "buy my stuff"})
    owner_menu = menu(a, "buy my stuff")
    expect(owner_menu.locator(".act-edit")).to_have_count(0)
    owner_menu.locator(".act-recall").click()
    expect(b.page.locator("#messages > .msg.recalled .msg-recalled")).to_have_text(f"{cat.username} 撤回了一条消息")
    menu(b, "table for three?").locator(".act-reply").click()
    expect(b.page.locator("#composer-bar")).to_contain_text(f"回复 {ann.username}")


def test_updates_missed_while_away_come_with_sync(server, tabs):
    """Updates lost with a dropped socket arrive by sync after the page reconnects."""
    ann, ben = pair(server)
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    b = tabs(server, ben, f"/chat/u/{ann.user_id}")
    lost = {"on": False}
    sockets = []

    def relay(ws) -> None:  # between Ben's page and the server: can lose update frames
        upstream = ws.connect_to_server()
        sockets.append(ws)
        upstream.on_message(lambda frame: None if lost["on"] and '"update"' in frame else ws.send(frame))

    b.page.route_web_socket(re.compile(r"/ws"), relay)
    b.page.reload()
    b.wait_connected()
    a.send("meet at 5")
    a.send("bring cake")
    expect(b.page.locator("#messages .msg-text", has_text="bring cake")).to_have_count(1)

    lost["on"] = True
    first = ann.get(f"/api/messages/{ben.user_id}").json()["messages"][0]["id"]
    assert ann.patch(f"/api/messages/{first}", json={"content": "meet at 6"}).status_code == 200
    assert ann.put(f"/api/messages/{first}/reactions/%F0%9F%91%8D").status_code == 200
    menu(a, "bring cake").locator(".act-recall").click()
    expect(a.page.locator("#messages > .msg.recalled")).to_have_count(1)
    b.page.wait_for_timeout(500)
    expect(b.page.locator("#messages .msg-text", has_text="meet at 5")).to_have_count(1)  # lost

    lost["on"] = False
    sockets[-1].close()  # the page sees its socket drop, reconnects and syncs
    expect(b.page.locator("#messages .msg-text", has_text="meet at 6")).to_have_count(1)
    expect(b.page.locator('#messages .reaction[data-emoji="👍"] .reaction-count')).to_have_text("1")
    expect(b.page.locator("#messages > .msg.recalled")).to_have_count(1)
    expect(b.page.locator("#messages .msg-text", has_text="bring cake")).to_have_count(0)
    b.wait_connected()
