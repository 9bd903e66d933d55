"""The browser UI end to end: real headless Chromium (Debian's) driven by Playwright.

Each user gets a browser context of their own (own cookies, own WebSocket) and logs
in through the login form. Without Chromium or Playwright these tests are skipped;
under CI=true they fail instead.
"""
from __future__ import annotations

import os
import re
import shutil
import time

import pytest
import requests

from tests.conftest import mysql_env
from tests.support import PASSWORD, Api, ServerProcess, free_port, need

CHROMIUM = os.environ.get("CHAT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

try:  # imported lazily so that the rest of the suite runs without Playwright
    from playwright.sync_api import Error as PlaywrightError  # noqa: F401 (for tests that catch it)
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the fixture below skips (or fails under CI)
    sync_playwright = None


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module."""
    need(sync_playwright is not None, "Playwright for Python (pip install -r requirements-dev.txt)")
    need(os.path.exists(CHROMIUM) or shutil.which("chromium") is not None,
         f"Chromium at {CHROMIUM} (apt-get install chromium)")
    expect.set_options(timeout=15_000)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Tab:
    """A logged-in user's page, with the JavaScript errors and dialogs it produced."""

    def __init__(self, page, user: Api, base: str) -> None:
        self.page = page
        self.user = user
        self.base = base
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def goto(self, path: str) -> None:
        """Open a page of the site and wait until its socket says hello."""
        self.page.goto(self.base + path)
        self.wait_connected()

    def wait_connected(self, timeout: float = 15_000) -> None:
        expect(self.page.locator("html")).to_have_attribute("data-connection", "open",
                                                            timeout=timeout)

    def conv(self, key: str):
        """The conversation list's row for "private:<user id>" or "group:<group id>"."""
        return self.page.locator(f'.conv[data-key="{key}"]')

    def send(self, text: str) -> None:
        """Type a message in the composer and press Enter."""
        box = self.page.locator("#text")
        box.fill(text)
        box.press("Enter")

    def texts(self) -> list[str]:
        """The text of every stored message shown, in order."""
        return self.page.eval_on_selector_all(
            "#messages > .msg[data-id] .msg-text", "nodes => nodes.map(n => n.textContent)")

    def ids(self) -> list[int]:
        """The ids of the stored messages shown, in order."""
        return [int(i) for i in self.page.eval_on_selector_all(
            "#messages > .msg[data-id]", "nodes => nodes.map(n => n.dataset.id)")]


@pytest.fixture
def tabs(browser):
    """Open logged-in pages: ``tabs(server, user, viewport=..., locale=...)``; closed after the test."""
    opened: list[tuple[object, Tab]] = []

    def _open(server, user: Api, path: str = "/", viewport=DESKTOP, locale="en-US") -> Tab:
        context = browser.new_context(viewport=viewport, locale=locale, timezone_id="Asia/Shanghai")
        page = context.new_page()
        tab = Tab(page, user, server.base)
        opened.append((context, tab))
        page.goto(server.base + "/login")
        page.fill("#username", user.username)
        page.fill("#password", PASSWORD)
        page.locator("form.stack button[type=submit]").click()
        page.wait_for_url(server.base + "/")
        if path != "/":
            page.goto(server.base + path)
        tab.wait_connected()
        return tab

    yield _open
    problems = []
    for context, tab in opened:
        problems += [f"{tab.user.username}: JS error {e}" for e in tab.errors]
        problems += [f"{tab.user.username}: dialog {d!r}" for d in tab.dialogs]
        context.close()
    assert not problems, problems


def eventually(check, timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true (the server learns of a read a moment after the page)."""
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "condition not met in time"
        time.sleep(0.1)


def pair(server, stem_a="ann", stem_b="ben") -> tuple[Api, Api]:
    """Two fresh users who follow each other."""
    a, b = Api.new_user(server.base, stem_a), Api.new_user(server.base, stem_b)
    a.follow_each_other(b)
    return a, b


def test_private_chat_live_unread_seen_typing(server, tabs):
    """Send and receive live; the unread badge and title count appear and clear; typing; Seen."""
    ann, ben = pair(server)
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    b = tabs(server, ben)

    a.send("Hello Ben")
    mine = a.page.locator("#messages .msg.mine", has_text="Hello Ben")
    expect(mine).to_have_count(1)
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"))  # acked: stored with an id
    expect(mine.locator(".msg-state")).to_have_attribute("title", "Sent")
    expect(a.page.locator("#text")).to_have_value("")

    row = b.conv(f"private:{ann.user_id}")
    expect(row.locator(".badge")).to_have_text("1")
    expect(row.locator(".conv-preview")).to_have_text("Hello Ben")
    expect(b.page).to_have_title(re.compile(r"^\(1\) "))
    expect(b.page.locator("#nav-unread")).to_have_text("1")

    row.locator("a").click()
    expect(b.page).to_have_url(f"{server.base}/chat/u/{ann.user_id}")
    expect(b.page.locator("#messages .msg", has_text="Hello Ben")).to_be_visible()
    expect(row.locator(".badge")).to_have_count(0)
    expect(b.page).not_to_have_title(re.compile(r"^\("))
    expect(b.page.locator("#nav-unread")).to_be_hidden()
    expect(a.page.locator("#messages .msg.mine .seen")).to_have_text("Seen")

    box = b.page.locator("#text")
    box.press_sequentially("line one")
    expect(a.page.locator("#typing")).to_have_text(f"{ben.username} is typing…")
    box.press("Shift+Enter")
    box.press_sequentially("line two")
    expect(box).to_have_value("line one\nline two")  # Shift+Enter made a new line, sent nothing
    box.press("Enter")
    expect(a.page.locator("#messages .msg:not(.mine)")).to_have_count(1)
    assert a.texts() == ["Hello Ben", "line one\nline two"]
    expect(a.page.locator("#typing")).to_have_text("")
    expect(a.page.locator("#messages .seen")).to_have_count(0)  # Ben wrote after it
    # Ann has the chat open: Ben's reply is read at once, no badge.
    expect(a.conv(f"private:{ben.user_id}").locator(".conv-preview")).to_have_text("line one line two")
    expect(a.conv(f"private:{ben.user_id}").locator(".badge")).to_have_count(0)
    eventually(lambda: ann.get("/api/unread").json()["total"] == 0)
    # Day separators and times in the viewer's zone.
    expect(a.page.locator("#messages .day").first).to_have_text("Today")


def test_group_chat_among_three(server, tabs):
    """Create a group in the UI, add two members in its settings; all three chat live."""
    owner, m1, m2 = (Api.new_user(server.base, s) for s in ("olga", "mia", "max"))
    for member in (m1, m2):  # followers of the owner are added at once, not invited
        assert member.put(f"/api/users/{owner.user_id}/follow").status_code == 200
    o = tabs(server, owner, "/groups/new")
    p1 = tabs(server, m1)
    p2 = tabs(server, m2)

    name = "Trio <b>night</b> 夜"
    o.page.fill("#name", name)
    o.page.fill("#description", "Three of us")
    o.page.locator("form.stack button[type=submit]").click()
    expect(o.page.locator(".flash-ok")).to_have_text(f"Group “{name}” created.")
    group_id = int(re.search(r"/chat/g/(\d+)$", o.page.url).group(1))
    expect(o.page.locator("#thread-title")).to_have_text(name)

    o.page.locator("#thread-info").click()
    for member in (m1, m2):
        o.page.fill("#add-username", member.username)
        o.page.locator("#add-username + button").click()
        expect(o.page.locator(".flash-ok")).to_have_text(f"{member.username} was added.")
    expect(o.page.locator("#members li")).to_have_count(3)

    for tab in (p1, p2):  # the notice arrives live, and the group joins the list
        expect(tab.page.locator("#notice-count")).to_have_text("1")
        expect(tab.conv(f"group:{group_id}").locator(".conv-name")).to_have_text(name)
    p1.page.locator("#notice-button").click()
    expect(p1.page.locator("#notice-list li").first).to_have_text(
        re.compile(re.escape(f"{owner.username} added you to {name}.")))
    expect(p1.page.locator("#notice-count")).to_be_hidden()
    eventually(lambda: m1.get("/api/notices?unread=1").json()["unread"] == 0)
    p1.page.keyboard.press("Escape")

    o.goto(f"/chat/g/{group_id}")
    for tab in (p1, p2):
        tab.conv(f"group:{group_id}").locator("a").click()
        expect(tab.page.locator("#thread-title")).to_have_text(name)

    o.send("hello trio")
    for tab in (p1, p2):
        msg = tab.page.locator("#messages .msg", has_text="hello trio")
        expect(msg.locator(".msg-sender")).to_have_text(owner.username)
    p2.send("hi from max")
    for tab in (o, p1):
        msg = tab.page.locator("#messages .msg", has_text="hi from max")
        expect(msg.locator(".msg-sender")).to_have_text(m2.username)
    for tab in (o, p1, p2):
        assert tab.texts() == ["hello trio", "hi from max"]
        assert tab.page.locator("#messages b").count() == 0


def test_history_loads_when_scrolling_up(server, tabs):
    """75 stored messages: the newest page first, older pages on scrolling up, each once, in order."""
    ann, ben = pair(server)
    for i in range(1, 76):
        r = ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": f"msg {i:03d}",
                                            "client_id": f"h{i}"})
        assert r.status_code == 201, r.text
    # Read already: a longer unread backlog would open at its first message instead.
    assert ann.post("/api/read", json={"recipient_id": ben.user_id,
                                       "last_read_id": r.json()["id"]}).status_code == 200
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    expect(a.page.locator("#messages .msg")).to_have_count(30)
    assert a.texts()[-1] == "msg 075"
    expect(a.page.locator("#older")).to_be_visible()

    note = a.page.locator("#history-note")
    for _ in range(10):
        if note.is_visible() and "beginning" in note.inner_text():
            break
        a.page.locator("#scroller").evaluate("node => { node.scrollTop = 0; }")
        a.page.wait_for_timeout(300)
    expect(note).to_have_text("This is the beginning of the conversation.")
    expect(a.page.locator("#older")).to_be_hidden()
    assert a.texts() == [f"msg {i:03d}" for i in range(1, 76)]
    ids = a.ids()
    assert ids == sorted(ids) and len(set(ids)) == 75
    expect(a.conv(f"private:{ben.user_id}").locator(".badge")).to_have_count(0)


def test_markup_in_messages_and_names_is_text(server, tabs):
    """<img onerror> in a message and a group name shows as text: no element, no dialog."""
    ann, ben = pair(server)
    evil = "<img src=x onerror=alert(1)>"
    group = ann.post("/api/groups", json={"name": "<img src=x onerror=alert(2)>",
                                          "description": "<script>alert(3)</script>"}).json()
    assert ann.put(f"/api/groups/{group['id']}/members/{ben.user_id}").status_code == 200
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    b = tabs(server, ben)

    a.send(evil)
    expect(b.conv(f"private:{ann.user_id}").locator(".conv-preview")).to_have_text(evil)
    b.conv(f"private:{ann.user_id}").locator("a").click()
    expect(b.page.locator("#messages .msg-text")).to_have_text(evil)
    ben.post("/api/messages", json={"group_id": group["id"], "content": evil + " <b>x</b>"})
    expect(a.conv(f"group:{group['id']}").locator(".conv-name")).to_have_text("<img src=x onerror=alert(2)>")
    a.goto(f"/chat/g/{group['id']}")
    expect(a.page.locator("#messages .msg-text")).to_have_text(evil + " <b>x</b>")
    a.goto(f"/groups/{group['id']}")
    expect(a.page.locator(".description")).to_have_text("<script>alert(3)</script>")
    b.goto("/notices")
    for tab in (a, b):
        assert tab.page.locator("main img, main b, main script").count() == 0
    a.page.wait_for_timeout(500)  # an onerror would have fired by now
    assert not a.dialogs and not b.dialogs


def test_failed_message_offers_retry_with_same_client_id(server, tabs):
    """A refused message shows why and offers Retry; the retry reuses its client_id (stored once).

    The stranger rule's refusal can pass later (once they reply); a blocked sender's never
    does (tests/test_browser_attention.py: Edit and Delete only)."""
    ann = Api.new_user(server.base, "ann")
    ben = Api.new_user(server.base, "ben")
    for n in range(3):  # the most a stranger may send before an answer
        assert ann.post("/api/messages", json={"recipient_id": ben.user_id, "content": f"hi {n}"}).status_code == 201
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    a.send("let me in")
    failed = a.page.locator("#messages .msg.failed")
    expect(failed.locator(".msg-error")).to_contain_text("You can send 3 messages")
    cid = failed.get_attribute("data-cid")
    assert ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "hello"}).status_code == 201
    failed.locator("button.retry").click()
    sent = a.page.locator("#messages .msg.mine", has_text="let me in")
    expect(sent).to_have_attribute("data-id", re.compile(r"^\d+$"))
    expect(a.page.locator("#messages .msg.failed")).to_have_count(0)
    stored = ben.get(f"/api/messages/{ann.user_id}").json()["messages"]
    assert [(m["content"], m["client_id"]) for m in stored if m["content"] == "let me in"] == [("let me in", cid)]


def test_profile_actions_and_live_notices(server, tabs):
    """Follow from a profile (feedback shown); the follower notice arrives live and clears when seen."""
    ann = Api.new_user(server.base, "ann")
    ben = Api.new_user(server.base, "ben")
    a = tabs(server, ann, f"/users/{ben.user_id}")
    b = tabs(server, ben, "/groups/")

    a.page.get_by_role("button", name="Follow", exact=True).click()
    expect(a.page.locator(".flash-ok")).to_have_text(f"You follow {ben.username} now.")
    expect(a.page.locator("#following")).to_have_text(f"You follow {ben.username}.")
    expect(b.page.locator("#notice-count")).to_have_text("1")
    b.page.locator("#notice-button").click()
    item = b.page.locator("#notice-list li").first
    expect(item).to_contain_text(f"{ann.username} followed you.")
    expect(b.page.locator("#notice-count")).to_be_hidden()
    b.page.reload()
    b.wait_connected()
    expect(b.page.locator("#notice-count")).to_be_hidden()

    # Block asks first (an accessible <dialog>, not window.confirm); Cancel keeps things as they are.
    a.page.get_by_role("button", name="Block").click()
    dialog = a.page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert not ann.get(f"/api/users/{ben.user_id}").json()["blocking"]
    a.page.get_by_role("button", name="Block").click()
    dialog.get_by_role("button", name="Confirm").click()
    expect(a.page.locator(".flash-ok")).to_have_text(f"{ben.username} is blocked.")
    assert ann.get(f"/api/users/{ben.user_id}").json()["blocking"]


def test_phone_width_in_chinese(server, tabs):
    """At phone width the list and the chat are two screens; a Chinese browser gets Chinese."""
    ann, ben = pair(server)
    long_text = "你好！" + "这是一条很长的消息，" * 12  # its preview must be cut, not the screen
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": long_text})
    a = tabs(server, ann, viewport=PHONE, locale="zh-CN")
    expect(a.page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(a.page.locator("#sidebar-title")).to_have_text("会话")
    expect(a.page.locator(".sidebar")).to_be_visible()
    expect(a.page.locator("#thread")).to_be_hidden()
    for part in (".sidebar-actions", f'.conv[data-key="private:{ben.user_id}"] .badge'):
        box = a.page.locator(part).bounding_box()
        assert box and box["x"] + box["width"] <= PHONE["width"], (part, box)  # nothing cut off
    a.conv(f"private:{ben.user_id}").locator("a").click()
    expect(a.page.locator(".sidebar")).to_be_hidden()
    expect(a.page.locator("#messages .msg-text")).to_have_text(long_text)
    expect(a.page.locator("#messages .day")).to_have_text("今天")
    back = a.page.locator("#thread-back")
    expect(back).to_be_visible()
    expect(back).to_have_accessible_name("返回会话列表")
    width = a.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways ({width}px)"
    back.click()
    expect(a.page.locator(".sidebar")).to_be_visible()
    expect(a.page).to_have_url(server.base + "/")


@pytest.fixture
def own_server(mysql_url, redis_prefix):
    """A server of this test's own on a fixed port, so it can be restarted on the same address."""
    # A fixed secret key: the sessions (cookies) of the browsers outlive the restart.
    env = mysql_env(mysql_url, redis_prefix, CHAT_SHUTDOWN_GRACE=2,
                    SECRET_KEY="browser-restart-" + "x" * 32)
    proc = ServerProcess(env, port=free_port()).start()
    yield proc
    proc.stop()


def test_server_restart_mid_chat_loses_and_doubles_nothing(own_server, tabs):
    """The server restarts mid-chat: offline banner, automatic reconnect, sync; every message once."""
    server = own_server
    ann, ben = pair(server)
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    b = tabs(server, ben, f"/chat/u/{ann.user_id}")
    a.send("before the restart")
    expect(b.page.locator("#messages .msg", has_text="before the restart")).to_have_count(1)

    server.stop()
    for tab in (a, b):
        expect(tab.page.locator("#conn")).to_contain_text("offline", timeout=10_000)
    # Ben's network stays down a while longer: what happens meanwhile reaches him only by sync.
    b.page.context.set_offline(True)
    a.send("typed while offline")  # waits in the outbox, pending
    expect(a.page.locator("#messages .msg.pending", has_text="typed while offline")).to_have_count(1)

    server.start()
    r = requests.post(server.base + "/api/messages", headers=ben.headers(), timeout=10,
                      json={"recipient_id": ann.user_id, "content": "sent from Ben's script"})
    assert r.status_code == 201, r.text
    a.wait_connected(timeout=40_000)  # reconnected by itself, with back-off
    expect(a.page.locator("#conn")).to_be_hidden()
    expected = ["before the restart", "typed while offline", "sent from Ben's script"]
    for text in expected:
        expect(a.page.locator("#messages .msg[data-id]", has_text=text)).to_have_count(1)
    expect(b.page.locator("html")).not_to_have_attribute("data-connection", "open")

    b.page.context.set_offline(False)
    b.wait_connected(timeout=40_000)
    expect(b.page.locator("#conn")).to_be_hidden()
    for tab in (a, b):
        for text in expected:
            expect(tab.page.locator("#messages .msg[data-id]", has_text=text)).to_have_count(1)
        expect(tab.page.locator("#messages .msg.pending")).to_have_count(0)
    stored = ann.get(f"/api/messages/{ben.user_id}").json()["messages"]
    assert sorted(m["content"] for m in stored) == sorted(expected)
    for tab in (a, b):
        ids = tab.ids()
        assert len(ids) == 3 and ids == sorted(ids), ids
        assert sorted(tab.texts()) == sorted(expected)
    # After the restart the chat goes on as before.
    b.send("still here")
    expect(a.page.locator("#messages .msg", has_text="still here")).to_have_count(1)
