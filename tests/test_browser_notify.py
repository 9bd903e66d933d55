"""What needs me, in the browser (real Chromium): the conversation menu (pin, mute, archive)
and the Archived folder, invitations answered from the notice menu, desktop notifications
(asked for on a click, never on load; muted conversations only for mentions; no text when
previews are off), the service worker for Web Push, the presence setting, and the "New
messages" line when a conversation opens with unread messages.

The page's visibility is the one thing a headless browser cannot change, so the tests that
need a page "in a background tab" switch document.visibilityState and hasFocus() with an
init script; the Notification API is recorded the same way (permission granted for real).
Screenshots go to $CHAT_TEST_SCREENSHOTS (a temporary folder by default).
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from tests.support import Api
from tests.test_browser_chat import PHONE, browser, eventually, expect, pair, tabs  # noqa: F401

SHOTS = Path(os.environ.get("CHAT_TEST_SCREENSHOTS") or Path(tempfile.gettempdir()) / "chat-screenshots")

# A page that believes it is in a background tab while window.__away is set, and that records
# the notifications it makes (and the permission requests) instead of showing them.
AWAY_AND_RECORDED = """
(() => {
  window.__away = false;
  Object.defineProperty(Document.prototype, "visibilityState",
                        {get() { return window.__away ? "hidden" : "visible"; }, configurable: true});
  Document.prototype.hasFocus = function () { return !window.__away; };
  window.__shown = [];
  window.__asked = 0;
  const Real = window.Notification;
  class Recorded {
    constructor(title, options) {
      window.__shown.push({title, body: (options || {}).body || ""});
      (window.__notes = window.__notes || []).push(this);  // so a test can "click" one
      this.onclick = null;
    }
    close() {}
    static get permission() { return Real.permission; }
    static requestPermission() { window.__asked += 1; return Real.requestPermission(); }
  }
  window.Notification = Recorded;
})();
"""


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def conversation(user: Api, kind: str, target: int) -> dict:
    """The conversation object as the API lists it (archived ones too)."""
    for archived in ("0", "1"):
        for c in user.get(f"/api/conversations?archived={archived}").json()["conversations"]:
            if c["kind"] == kind and c.get("user_id" if kind == "private" else "group_id") == target:
                return c
    raise AssertionError(f"no {kind} conversation {target}")


def open_menu(tab, key: str):
    row = tab.conv(key)
    row.hover()
    row.locator(".conv-more").click()
    return row.locator(".conv-menu")


def test_pin_mute_and_archive_from_the_conversation_menu(server, tabs):  # noqa: F811
    ann, ben = pair(server)
    cat = Api.new_user(server.base, "cat")
    cat.follow_each_other(ann)
    for sender, text in ((ben, "from ben"), (cat, "from cat")):  # cat's is the newest
        sender.post("/api/messages", json={"recipient_id": ann.user_id, "content": text})
    tab = tabs(server, ann, "/")
    page = tab.page
    rows = page.locator("#conversations > .conv")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-key", f"private:{cat.user_id}")
    expect(page).to_have_title(re.compile(r"^\(2\) "))
    # Pin ben: on top, though older.
    open_menu(tab, f"private:{ben.user_id}").get_by_role("menuitem", name="Pin to top").click()
    expect(rows.first).to_have_attribute("data-key", f"private:{ben.user_id}")
    assert conversation(ann, "private", ben.user_id)["pinned"] is True
    # Mute cat: greyed, and out of the tab's count.
    open_menu(tab, f"private:{cat.user_id}").get_by_role("menuitem", name="Mute").click()
    expect(tab.conv(f"private:{cat.user_id}")).to_have_class(re.compile(r"\bmuted\b"))
    expect(page).to_have_title(re.compile(r"^\(1\) "))
    # Archive ben: gone from the list, in the Archived folder; Unarchive brings it back.
    menu = open_menu(tab, f"private:{ben.user_id}")
    shot(page, "conversation-menu")
    menu.get_by_role("menuitem", name="Archive").click()
    expect(rows).to_have_count(1)
    page.get_by_role("button", name="Archived").click()
    archived = page.locator("#archived > .conv")
    expect(archived).to_have_count(1)
    expect(archived.first).to_have_attribute("data-key", f"private:{ben.user_id}")
    assert conversation(ann, "private", ben.user_id)["archived"] is True
    shot(page, "archived-folder")
    archived.first.hover()
    archived.first.locator(".conv-more").click()
    archived.first.get_by_role("menuitem", name="Unarchive").click()
    expect(rows).to_have_count(2)
    expect(archived).to_have_count(0)
    assert conversation(ann, "private", ben.user_id)["archived"] is False


def test_an_invitation_is_joined_or_declined_from_the_notice_menu(server, tabs):  # noqa: F811
    owner = Api.new_user(server.base, "own")
    ann = Api.new_user(server.base, "ann")  # does not follow the owner: invited, not added
    first = owner.post("/api/groups", json={"name": "Secret club", "visibility": "private"}).json()["id"]
    second = owner.post("/api/groups", json={"name": "Other club", "visibility": "private"}).json()["id"]
    for gid in (first, second):
        assert owner.put(f"/api/groups/{gid}/members/{ann.user_id}").status_code == 202
    tab = tabs(server, ann, "/")
    page = tab.page
    page.locator("#notice-button").click()
    invites = page.locator("#notice-list li", has_text="invited you")
    expect(invites).to_have_count(2)
    shot(page, "invitation-notice")
    secret = page.locator("#notice-list li", has_text="Secret club")
    secret.get_by_role("button", name="Join").click()
    expect(secret).to_contain_text("You joined Secret club.")
    expect(tab.conv(f"group:{first}")).to_have_count(1)  # listed at once
    other = page.locator("#notice-list li", has_text="Other club")
    other.get_by_role("button", name="Decline").click()
    expect(other).to_contain_text("Invitation declined.")
    members = {m["id"] for m in owner.get(f"/api/groups/{first}/members").json()["members"]}
    assert ann.user_id in members
    members = {m["id"] for m in owner.get(f"/api/groups/{second}/members").json()["members"]}
    assert ann.user_id not in members


def test_desktop_notifications_asked_on_a_click_then_shown_when_away(server, tabs, browser):  # noqa: F811
    ann, ben = pair(server)
    gid = ben.post("/api/groups", json={"name": "Team"}).json()["id"]
    ben.put(f"/api/groups/{gid}/members/{ann.user_id}")
    tab = tabs(server, ann, "/")
    page = tab.page
    page.context.grant_permissions(["notifications"], origin=server.base)
    page.context.add_init_script(AWAY_AND_RECORDED)
    tab.goto("/settings")
    assert page.evaluate("window.__asked") == 0  # never on load
    page.get_by_role("button", name="Turn on desktop notifications").click()
    expect(page.locator("#notify-state")).to_contain_text("Desktop notifications are on")
    assert page.evaluate("window.__asked") == 1
    # The service worker is registered for the whole site.
    scope = page.evaluate("navigator.serviceWorker.getRegistration('/').then(r => r && r.scope)")
    assert scope == server.base + "/"
    shot(page, "settings-notifications")
    tab.goto("/")
    page.evaluate("window.__away = true")
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "lunch at noon?"})
    eventually(lambda: page.evaluate("window.__shown.length") == 1)
    assert page.evaluate("window.__shown[0]") == {"title": ben.username, "body": "lunch at noon?"}
    # Looking at the page: no notification.
    page.evaluate("window.__away = false")
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "seen live"})
    expect(tab.conv(f"private:{ben.user_id}")).to_contain_text("seen live")
    # A muted group: nothing, except when the message mentions us.
    ann.patch(f"/api/conversations/group/{gid}", json={"muted": True})
    tab.goto("/")
    page.evaluate("window.__away = true")
    ben.post("/api/messages", json={"group_id": gid, "content": "chatter"})
    ben.post("/api/messages", json={"group_id": gid, "content": "@ann look",
                                    "mentions": [ann.user_id]})
    eventually(lambda: page.evaluate("window.__shown.length") == 1)  # (a new page: a new record)
    assert page.evaluate("window.__shown[0].body") == "@ann look"
    assert "Team" in page.evaluate("window.__shown[0].title")
    # Previews off (the settings form): who wrote, not what.
    page.evaluate("window.__away = false")
    tab.goto("/settings")
    page.get_by_label("Show message text in notifications").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Settings saved.")
    assert ann.get("/api/me").json()["push_previews"] is False
    tab.goto("/")
    page.evaluate("window.__away = true")
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "a secret"})
    eventually(lambda: page.evaluate("window.__shown.length") == 1)
    assert page.evaluate("window.__shown[0]") == {"title": ben.username, "body": "New message"}


def test_the_service_worker_is_served_for_the_whole_site(server):
    import requests
    r = requests.get(server.base + "/sw.js", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/javascript")
    assert r.headers["Service-Worker-Allowed"] == "/"
    assert "notificationclick" in r.text and "showNotification" in r.text


def test_hiding_presence_in_settings_hides_it_from_friends(server, tabs):  # noqa: F811
    ann, ben = pair(server)
    tab = tabs(server, ann, "/settings")
    page = tab.page
    assert ben.get(f"/api/users/{ann.user_id}").json()["online"] is True
    page.get_by_label("Show friends when I am online").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Settings saved.")
    seen = ben.get(f"/api/users/{ann.user_id}").json()
    assert seen["online"] is None and seen["last_seen_at"] is None
    page.get_by_label("Show friends when I am online").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Show friends when I am online")).to_be_checked()
    tab.wait_connected()
    eventually(lambda: ben.get(f"/api/users/{ann.user_id}").json()["online"] is True)


def test_opening_with_unread_puts_the_new_messages_line_above_the_first_of_them(server, tabs):  # noqa: F811
    ann, ben = pair(server)
    for i in range(30):
        last_old = ann.post("/api/messages", json={"recipient_id": ben.user_id,
                                                   "content": f"old {i}"}).json()["id"]
    assert ben.post("/api/read", json={"recipient_id": ann.user_id,
                                       "last_read_id": last_old}).status_code == 200
    for i in range(25):
        ann.post("/api/messages", json={"recipient_id": ben.user_id, "content": f"new {i}"})
    tab = tabs(server, ben, f"/chat/u/{ann.user_id}")
    page = tab.page
    divider = page.locator("#messages .unread-divider")
    expect(divider).to_have_count(1)
    expect(divider).to_have_text("New messages")
    first = page.locator("#messages > .msg.first-unread")
    expect(first.locator(".msg-text")).to_have_text("new 0")
    expect(divider).to_be_in_viewport()
    expect(page.locator("#jump")).to_be_visible()  # and a way to the newest
    page.locator("#jump").click()
    expect(page.locator("#messages > .msg[data-id]").last.locator(".msg-text")).to_be_in_viewport()


def test_a_backlog_longer_than_a_page_opens_at_its_first_message(server, tabs):  # noqa: F811
    ann, ben = pair(server)
    for i in range(5):
        last_old = ann.post("/api/messages", json={"recipient_id": ben.user_id,
                                                   "content": f"old {i}"}).json()["id"]
    assert ben.post("/api/read", json={"recipient_id": ann.user_id,
                                       "last_read_id": last_old}).status_code == 200
    for i in range(75):  # two and a half pages
        ann.post("/api/messages", json={"recipient_id": ben.user_id, "content": f"new {i}"})
    tab = tabs(server, ben, f"/chat/u/{ann.user_id}")
    page = tab.page
    first = page.locator("#messages > .msg.first-unread")
    expect(first.locator(".msg-text")).to_have_text("new 0")
    expect(page.locator("#messages .unread-divider")).to_be_in_viewport()
    expect(page.locator("#messages > .msg", has_text="old 4")).to_have_count(1)  # just above
    page.locator("#jump").click()
    expect(page.locator("#messages > .msg[data-id]").last.locator(".msg-text")).to_have_text("new 74")
    expect(page.locator("#messages > .msg[data-id]").last).to_be_in_viewport()


def test_the_conversation_menu_at_phone_width_in_chinese(server, tabs):  # noqa: F811
    ann, ben = pair(server)
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "你好"})
    tab = tabs(server, ann, "/", viewport=PHONE, locale="zh-CN")
    menu = open_menu(tab, f"private:{ben.user_id}")
    expect(menu.get_by_role("menuitem")).to_have_text(["置顶", "免打扰", "归档"])
    shot(tab.page, "conversation-menu-phone-zh")
    menu.get_by_role("menuitem", name="免打扰").click()
    expect(tab.conv(f"private:{ben.user_id}")).to_have_class(re.compile(r"\bmuted\b"))


def test_clicking_a_desktop_notification_opens_its_conversation(server, tabs):  # noqa: F811
    ann, ben = pair(server)
    carl = Api.new_user(server.base, "carl")
    ann.follow_each_other(carl)
    carl.post("/api/messages", json={"recipient_id": ann.user_id, "content": "earlier"})
    tab = tabs(server, ann, f"/chat/u/{carl.user_id}")
    page = tab.page
    page.context.grant_permissions(["notifications"], origin=server.base)
    page.context.add_init_script(AWAY_AND_RECORDED)
    tab.goto("/settings")
    page.get_by_role("button", name="Turn on desktop notifications").click()
    expect(page.locator("#notify-state")).to_contain_text("Desktop notifications are on")
    tab.goto(f"/chat/u/{carl.user_id}")
    tab.wait_connected()
    page.evaluate("window.__away = true")
    ben.post("/api/messages", json={"recipient_id": ann.user_id, "content": "come see"})
    eventually(lambda: page.evaluate("window.__shown.length") == 1)
    page.evaluate("window.__away = false; window.__notes[0].onclick()")
    expect(page).to_have_url(re.compile(rf"/chat/u/{ben.user_id}$"))
    expect(page.locator("#messages .msg-text").last).to_have_text("come see")


def test_a_mention_in_a_muted_group_still_counts_in_the_title_and_badge(server, tabs):  # noqa: F811
    ann, ben = pair(server)
    gid = ben.post("/api/groups", json={"name": "Team"}).json()["id"]
    ben.put(f"/api/groups/{gid}/members/{ann.user_id}")
    ann.patch(f"/api/conversations/group/{gid}", json={"muted": True})
    tab = tabs(server, ann, "/")
    page = tab.page
    tab.wait_connected()
    ben.post("/api/messages", json={"group_id": gid, "content": "chatter"})
    expect(tab.conv(f"group:{gid}")).to_contain_text("chatter")
    expect(page.locator("#nav-unread")).not_to_be_visible()
    ben.post("/api/messages", json={"group_id": gid, "content": "@ann look", "mentions": [ann.user_id]})
    expect(page).to_have_title(re.compile(r"^\(1\) "))
    expect(page.locator("#nav-unread")).to_have_text("1")
    tab.goto("/")  # the same count from the server's list after a reload
    expect(page).to_have_title(re.compile(r"^\(1\) "))
    expect(page.locator("#nav-unread")).to_have_text("1")


# Headless Chromium has no push service to subscribe with, so the page's PushManager is
# replaced by one that records the server key it is given and answers a subscription (a real
# P-256 key, the local endpoint the test server allows); the service worker and API are real.
FAKE_PUSH = """
(([p256dh, auth]) => {
  window.__pushKey = null;
  let current = null;
  PushManager.prototype.getSubscription = async function () { return current; };
  PushManager.prototype.subscribe = async function (options) {
    window.__pushKey = Array.from(new Uint8Array(options.applicationServerKey));
    current = {
      endpoint: "http://127.0.0.1:9/push/ann-browser",
      toJSON() { return {endpoint: this.endpoint, keys: {p256dh, auth}}; },
      async unsubscribe() { current = null; return true; },
    };
    return current;
  };
})
"""


def test_turning_on_notifications_hands_the_push_subscription_to_the_server(server, tabs):  # noqa: F811
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    ann, _ = pair(server)
    tab = tabs(server, ann, "/")
    page = tab.page
    page.context.grant_permissions(["notifications"], origin=server.base)
    page.context.add_init_script(f"{FAKE_PUSH}({[b64(point), b64(os.urandom(16))]!r})")
    tab.goto("/settings")
    page.get_by_role("button", name="Turn on desktop notifications").click()
    expect(page.locator("#notify-state")).to_contain_text("Desktop notifications are on")
    eventually(lambda: len(ann.get("/api/push/subscriptions").json()["subscriptions"]) == 1)
    endpoint = ann.get("/api/push/subscriptions").json()["subscriptions"][0]["endpoint"]
    assert endpoint == "http://127.0.0.1:9/push/ann-browser"
    key = ann.get("/api/push/key").json()["key"]
    assert bytes(page.evaluate("window.__pushKey")) == base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    page.get_by_role("button", name="Turn off desktop notifications").click()
    eventually(lambda: ann.get("/api/push/subscriptions").json()["subscriptions"] == [])
