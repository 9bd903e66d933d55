"""Regenerate the UI screenshots in docs/screenshots/ (desktop and phone width).

    .venv/bin/python scripts/screenshots.py

Starts a throwaway server on SQLite with the demo users (alice, bob, carol, dave),
writes a few conversations through the API, and photographs the main screens in
Debian's headless Chromium (apt-get install chromium; for Chinese text and emoji
also fonts-noto-cjk and fonts-noto-color-emoji).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.support import ServerProcess  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "demo-password"  # the demo users' password (chat/cli.py)
DESKTOP = {"viewport": {"width": 1280, "height": 800}, "device_scale_factor": 1}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True}

CONVERSATION = [  # (sender, recipient or "#Lobby", text)
    ("bob", "alice", "Morning! Did you see the release notes?"),
    ("alice", "bob", "Yes, the new reconnect logic looks great."),
    ("bob", "alice", "We should demo it on Friday.\nI'll restart the server mid-chat 😄"),
    ("alice", "bob", "Deal. Nothing lost, nothing doubled."),
    ("carol", "alice", "周末一起去爬山吗？"),
    ("alice", "carol", "好呀！几点出发？"),
    ("carol", "alice", "早上八点，地铁站见 🚇"),
    ("carol", "#Lobby", "Welcome to the Lobby, everyone 👋"),
    ("dave", "#Lobby", "Hi all! New here."),
    ("bob", "#Lobby", "Hey Dave, glad you made it."),
    ("alice", "#Lobby", "Reminder: demo on Friday at 15:00 in room 4."),
    ("carol", "#Lobby", "大家好！周五见。"),
    ("dave", "#Lobby", "<b>Is HTML escaped?</b> <img src=x onerror=alert(1)>"),
]


def tokens(base: str) -> dict[str, dict]:
    """A bearer token for each demo user."""
    return {name: requests.post(f"{base}/api/tokens", json={"username": name, "password": PASSWORD},
                                timeout=10).json() for name in ("alice", "bob", "carol", "dave")}


def populate(base: str) -> dict[str, dict]:
    """Write the demo conversation; return the users' tokens and the Lobby's id."""
    users = tokens(base)
    lobby = requests.get(f"{base}/api/groups", headers=_auth(users["alice"]), timeout=10).json()["groups"][0]
    for i, (sender, to, text) in enumerate(CONVERSATION):
        body = {"content": text, "client_id": f"shot-{i}"}
        if to == "#Lobby":
            body["group_id"] = lobby["id"]
        else:
            body["recipient_id"] = users[to]["user_id"]
        r = requests.post(f"{base}/api/messages", json=body, headers=_auth(users[sender]), timeout=10)
        r.raise_for_status()
        time.sleep(0.05)
    # bob has read his chat with alice (so "Seen" shows on her side); the rest stays unread.
    requests.post(f"{base}/api/read", json={"recipient_id": users["alice"]["user_id"],
                                             "last_read_id": 10**9},
                  headers=_auth(users["bob"]), timeout=10)
    users["lobby"] = lobby
    return users


def _auth(user: dict) -> dict:
    return {"Authorization": f"Bearer {user['token']}"}


def login(browser, base: str, name: str, device: dict, locale: str = "en-US"):
    """A page logged in as `name`, connected."""
    context = browser.new_context(locale=locale, timezone_id="Asia/Shanghai", **device)
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.locator("form.stack button[type=submit]").click()
    page.wait_for_url(f"{base}/")
    page.wait_for_selector("html[data-connection=open]")
    return page


def shoot(page, name: str) -> None:
    """Save a screenshot (after the page settles)."""
    page.wait_for_timeout(400)
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"  {path.relative_to(ROOT)}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp}/chat.db", "REDIS_URL": "",
                                "CHAT_SEED_DEMO": "1", "SECRET_KEY": "screenshots-" + "x" * 32}).start()
        try:
            base = server.base
            users = populate(base)
            lobby = users["lobby"]["id"]
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                print("desktop:")
                anon = browser.new_context(locale="en-US", **DESKTOP).new_page()
                anon.goto(f"{base}/login")
                shoot(anon, "desktop-login")

                alice = login(browser, base, "alice", DESKTOP)
                shoot(alice, "desktop-conversations")
                alice.locator(f'.conv[data-key="group:{lobby}"] a').click()
                alice.wait_for_selector("#messages .msg")
                shoot(alice, "desktop-group-chat")
                bob = login(browser, base, "bob", DESKTOP)
                bob.locator(f'.conv[data-key="private:{users["alice"]["user_id"]}"] a').click()
                bob.wait_for_selector("#messages .msg")
                alice.locator(f'.conv[data-key="private:{users["bob"]["user_id"]}"] a').click()
                alice.wait_for_selector("#messages .msg")
                bob.locator("#text").press_sequentially("Great, see you then!")
                alice.wait_for_selector("#messages .seen")
                alice.wait_for_selector("#typing:not(:empty)")
                shoot(alice, "desktop-private-chat")
                alice.locator("#notice-button").click()
                shoot(alice, "desktop-notices")
                alice.keyboard.press("Escape")
                alice.goto(f"{base}/groups/{lobby}")
                shoot(alice, "desktop-group-settings")
                alice.goto(f"{base}/users/{users['carol']['user_id']}")
                shoot(alice, "desktop-profile")

                print("phone:")
                phone = login(browser, base, "carol", PHONE)
                shoot(phone, "phone-conversations")
                phone.locator(f'.conv[data-key="group:{lobby}"] a').click()
                phone.wait_for_selector("#messages .msg")
                shoot(phone, "phone-group-chat")
                zh = login(browser, base, "alice", PHONE, locale="zh-CN")
                shoot(zh, "phone-conversations-zh")
                zh.locator(f'.conv[data-key="private:{users["carol"]["user_id"]}"] a').click()
                zh.wait_for_selector("#messages .msg")
                shoot(zh, "phone-private-chat-zh")

                print("offline:")
                server.stop()
                bob.wait_for_selector("#conn:not([hidden])")
                bob.locator("#text").fill("Sent while the server restarts")
                bob.locator("#text").press("Enter")
                shoot(bob, "desktop-offline")
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
