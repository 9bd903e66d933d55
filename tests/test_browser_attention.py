"""The chat page's behaviour as a new user tries it (issue 16's list), in real Chromium:
reconnect back-off, a session ended in another tab, long pastes, the login redirect."""
from __future__ import annotations

import re

from tests.support import PASSWORD, Api
from tests.test_browser_chat import browser, eventually, expect, pair, tabs  # noqa: F401 (fixtures)


def test_a_visible_tab_reconnects_within_seconds(server, tabs):  # noqa: F811
    """However many attempts failed, a tab someone looks at waits at most 4 s before the next."""
    ann = Api.new_user(server.base, "ann")
    a = tabs(server, ann)
    waits = a.page.evaluate("""async () => {
        const net = await import("/static/js/net.js");
        return [1, 3, 5, 8, 12].map((n) => net.backoff(n));
    }""")
    assert max(waits) <= 4000, waits
    hidden = a.page.evaluate("""async () => (await import("/static/js/net.js")).backoff(8, false)""")
    assert hidden > 4000  # a hidden tab still backs off further (it spares a restarted server)


def test_logged_out_in_another_tab_locks_the_composer(server, tabs):  # noqa: F811
    """Logging out in one tab: the other says so in the composer, which offers to log in again."""
    ann, ben = pair(server)
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    other = a.page.context.new_page()
    other.goto(server.base + "/")
    other.locator(".account-menu summary").click()
    other.get_by_role("button", name="Log out").click()
    expect(a.page.locator("html")).to_have_attribute("data-connection", "ended")
    expect(a.page.locator("#text")).to_be_disabled()
    expect(a.page.locator("#send")).to_be_disabled()
    link = a.page.locator("#composer-hint a")
    expect(link).to_have_text("Log in")
    expect(a.page.locator("#messages .msg.pending")).to_have_count(0)
    link.click()
    expect(a.page.locator("#username")).to_be_visible()


def test_a_long_paste_is_counted_like_the_server_and_never_cut(server, tabs):  # noqa: F811
    """3,000 emoji are 3,000 characters (sent whole); 5,001 are refused with a counter, not cut."""
    ann, ben = pair(server)
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    box = a.page.locator("#text")
    box.focus()
    a.page.keyboard.insert_text("😀" * 3000)
    assert a.page.evaluate("Array.from(document.getElementById('text').value).length") == 3000
    expect(a.page.locator("#length-counter")).to_be_hidden()
    box.press("Enter")
    expect(a.page.locator("#messages .msg.mine[data-id]")).to_have_count(1)
    stored = ann.get(f"/api/messages/{ben.user_id}").json()["messages"]
    assert [len(m["content"]) for m in stored] == [3000]

    box.focus()
    a.page.keyboard.insert_text("a" * 5001)
    counter = a.page.locator("#length-counter")
    expect(counter).to_be_visible()
    expect(counter).to_contain_text("5001 / 5000")
    box.press("Enter")
    assert a.page.evaluate("document.getElementById('text').value.length") == 5001  # kept, not cut
    expect(a.page.locator("#messages .msg.mine")).to_have_count(1)  # nothing sent
    box.press("Backspace")
    expect(counter).not_to_have_class("over")
    box.press("Enter")
    expect(a.page.locator("#messages .msg.mine[data-id]")).to_have_count(2)


def test_login_redirect_has_no_stray_question_mark(server, browser):  # noqa: F811
    """A page asked for while logged out leads back to it cleanly; "next=/?" ends on "/"."""
    ann = Api.new_user(server.base, "ann")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.base + "/groups/")
        assert page.url == server.base + "/login?next=/groups/", page.url
        page.goto(server.base + "/login?next=/?")
        page.fill("#username", ann.username)
        page.fill("#password", PASSWORD)
        page.locator("form.stack button[type=submit]").click()
        page.wait_for_url(server.base + "/")
        assert page.url == server.base + "/", page.url
    finally:
        context.close()


def test_a_failed_message_offers_edit_and_delete_and_survives_a_reload(server, tabs):  # noqa: F811
    """Blocked: no Retry (it can never pass) but Edit and Delete; failed ones outlive a reload."""
    ann, ben = pair(server)
    assert ben.put(f"/api/users/{ann.user_id}/block").status_code == 200
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    a.send("first try")
    a.send("second try")
    failed = a.page.locator("#messages .msg.failed")
    expect(failed).to_have_count(2)
    expect(failed.first.locator(".msg-error")).to_contain_text("You cannot message this user.")
    expect(failed.locator("button.retry")).to_have_count(0)

    a.page.reload()
    a.wait_connected()
    expect(failed).to_have_count(2)
    expect(failed.first.locator(".msg-error")).to_contain_text("You cannot message this user.")
    failed.first.get_by_role("button", name="Delete").click()
    expect(failed).to_have_count(1)
    failed.first.get_by_role("button", name="Edit").click()
    expect(failed).to_have_count(0)
    expect(a.page.locator("#text")).to_have_value("second try")
    a.page.reload()
    a.wait_connected()
    expect(a.page.locator("#messages .msg")).to_have_count(0)


def test_drafts_are_kept_per_conversation(server, tabs):  # noqa: F811
    """A draft stays with its conversation when switching, and after a reload."""
    ann, ben = pair(server)
    carl = Api.new_user(server.base, "carl")
    ann.follow_each_other(carl)
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "from ben"})
    carl.post("/api/messages", json={"recipient_id": ann.user_id, "content": "from carl"})
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    box = a.page.locator("#text")
    box.fill("for ben, unfinished")
    a.conv(f"private:{carl.user_id}").locator("a").click()
    expect(a.page.locator("#thread-title")).to_have_text(carl.username)
    expect(box).to_have_value("")
    box.fill("for carl")
    a.page.reload()
    a.wait_connected()
    expect(box).to_have_value("for carl")
    a.conv(f"private:{ben.user_id}").locator("a").click()
    expect(box).to_have_value("for ben, unfinished")
    box.press("Enter")
    expect(a.page.locator("#messages .msg.mine[data-id]")).to_have_count(1)
    a.page.reload()
    a.wait_connected()
    expect(box).to_have_value("")


def test_new_group_on_top_and_a_new_chat_listed(server, tabs):  # noqa: F811
    """A group just made heads the list; a chat with someone never written to is listed, active."""
    ann, ben = pair(server)
    carl = Api.new_user(server.base, "carl")
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "older chat"})
    a = tabs(server, ann, "/groups/new")
    a.page.fill("#name", "Fresh group")
    a.page.locator("main button[type=submit]").click()
    a.wait_connected()
    rows = a.page.locator("#conversations .conv")
    expect(rows.first).to_contain_text("Fresh group")
    expect(rows.first).to_have_class(re.compile(r"\bactive\b"))

    a.goto(f"/chat/u/{carl.user_id}")
    row = a.conv(f"private:{carl.user_id}")
    expect(row).to_have_class(re.compile(r"\bactive\b"))
    expect(row).to_contain_text(carl.username)
    a.send("hello carl")
    expect(a.page.locator("#messages .msg.mine[data-id]")).to_have_count(1)
    a.conv(f"private:{ben.user_id}").locator("a").click()
    expect(row).to_be_visible()  # written to now: it stays in the list
    expect(row).not_to_have_class(re.compile(r"\bactive\b"))


_LAST_MESSAGE_SHOWN = """() => {
    const box = document.getElementById("scroller").getBoundingClientRect();
    const last = [...document.querySelectorAll("#messages > .msg")].pop().getBoundingClientRect();
    return last.bottom <= box.bottom + 1;
}"""


def _last_message_shown(tab) -> bool:
    """Whether the newest message's bottom edge is inside the scroller's box."""
    return tab.page.evaluate(_LAST_MESSAGE_SHOWN)


def test_the_list_stays_at_the_bottom_when_the_composer_grows(server, tabs):  # noqa: F811
    """A three-line draft grows the composer; the newest message stays in sight."""
    ann, ben = pair(server)
    for n in range(30):
        last = ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": f"line {n}"})
    # Read already (else the chat opens at the first unread, under "New messages").
    ann.post("/api/read", json={"recipient_id": ben.user_id, "last_read_id": last.json()["id"]})
    a = tabs(server, ann, f"/chat/u/{ben.user_id}")
    expect(a.page.locator("#messages .msg[data-id]")).to_have_count(30)
    assert _last_message_shown(a)
    box = a.page.locator("#text")
    box.focus()
    # A line at a time, as a person types: after each, the newest message is in sight again
    # once the ResizeObserver has run (5 s at most: later than 200 ms on a loaded machine).
    # Known and not fixed: lines that grow the composer twice within one frame (keys
    # faster than frames, or a paste) can leave the list two lines short of the bottom.
    for word in ("one", "two", "three", "four"):
        a.page.keyboard.type(word)
        a.page.keyboard.press("Shift+Enter")
        a.page.wait_for_function(_LAST_MESSAGE_SHOWN, timeout=5000)
    assert a.page.evaluate("document.getElementById('text').offsetHeight") > 80


def _peer_read(api: Api, peer: Api) -> int:
    """How far `peer` has read the private chat with `api`, as `api` is told."""
    convs = api.get("/api/conversations").json()["conversations"]
    return next(c["peer_last_read_id"] for c in convs if c.get("user_id") == peer.user_id)


def test_seen_only_once_the_message_is_on_screen(server, tabs):  # noqa: F811
    """Ben scrolled up: Ann's new message is not "Seen" until he scrolls down to it."""
    ann, ben = pair(server)
    for n in range(28):  # one page of history, taller than the screen
        sent = ann.post("/api/messages", json={"recipient_id": ben.user_id, "content": f"line {n}"})
    # Read already (else the chat opens at the first unread, under "New messages").
    ben.post("/api/read", json={"recipient_id": ann.user_id, "last_read_id": sent.json()["id"]})
    b = tabs(server, ben, f"/chat/u/{ann.user_id}")
    expect(b.page.locator("#messages .msg[data-id]")).to_have_count(28)
    last = max(b.ids())
    eventually(lambda: _peer_read(ann, ben) == last)
    b.page.evaluate("document.getElementById('scroller').scrollTop = 0")
    new_id = ann.post("/api/messages", json={"recipient_id": ben.user_id, "content": "fresh"}).json()["id"]
    expect(b.page.locator("#messages .msg", has_text="fresh")).to_have_count(1)
    expect(b.page.locator("#jump")).to_be_visible()
    b.page.wait_for_timeout(1500)  # a read frame would have gone out by now
    assert _peer_read(ann, ben) == last
    b.page.locator("#jump").click()
    eventually(lambda: _peer_read(ann, ben) == new_id)


def test_a_muted_conversation_is_greyed_and_left_out_of_the_title(server, tabs):  # noqa: F811
    """Muted (PATCH API): its row is greyed and its unread messages do not count in the title."""
    ann, ben = pair(server)
    carl = Api.new_user(server.base, "carl")
    ann.follow_each_other(carl)
    assert ann.patch(f"/api/conversations/private/{ben.user_id}", json={"muted": True}).status_code == 200
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "muted one"})
    carl.post("/api/messages", json={"recipient_id": ann.user_id, "content": "loud one"})
    a = tabs(server, ann)
    expect(a.conv(f"private:{ben.user_id}")).to_have_class(re.compile(r"\bmuted\b"))
    expect(a.conv(f"private:{carl.user_id}")).not_to_have_class(re.compile(r"\bmuted\b"))
    expect(a.page).to_have_title(re.compile(r"^\(1\) "))
    expect(a.page.locator("#nav-unread")).to_have_text("1")


def test_a_private_group_from_the_new_group_form(server, tabs):  # noqa: F811
    """The "Private group" box on the form makes an invitation-only group."""
    ann = Api.new_user(server.base, "ann")
    a = tabs(server, ann, "/groups/new")
    a.page.fill("#name", "Secret club")
    a.page.locator("#private").check()
    a.page.locator("main button[type=submit]").click()
    a.wait_connected()
    group_id = int(a.page.url.rsplit("/", 1)[1])
    assert ann.get(f"/api/groups/{group_id}").json()["visibility"] == "private"
