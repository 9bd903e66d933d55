"""The green dot of presence (static/js/presence.js) in real Chromium: a friend's dot appears
when they connect and goes when they have left (after the grace)."""
from __future__ import annotations

import pytest

from tests.conftest import mysql_env
from tests.support import WS, Api, ServerProcess
from tests.test_browser_chat import browser, expect, tabs  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def quick(mysql_url, redis_prefix):
    """A server whose presence grace is one second."""
    proc = ServerProcess(mysql_env(mysql_url, redis_prefix, CHAT_PRESENCE_GRACE=1)).start()
    yield proc
    proc.stop()


def test_a_friends_dot_follows_their_presence(quick, tabs):  # noqa: F811
    ann, ben = Api.new_user(quick.base, "ann"), Api.new_user(quick.base, "ben")
    ann.follow_each_other(ben)
    assert ben.post("/api/messages", json={"recipient_id": ann.user_id,
                                           "content": "hi"}).status_code == 201
    tab = tabs(quick, ann)
    dot = tab.conv(f"private:{ben.user_id}").locator(".presence-dot")
    expect(dot).to_have_count(0)
    ws = WS(quick.ws_url, token=ben.token)
    expect(dot).to_have_count(1)
    ws.close()
    expect(dot).to_have_count(0)
    # On a fresh page the dot comes from ben's profile.
    ws = WS(quick.ws_url, token=ben.token)
    tab.goto("/")
    expect(tab.conv(f"private:{ben.user_id}").locator(".presence-dot")).to_have_count(1)
    ws.close()
