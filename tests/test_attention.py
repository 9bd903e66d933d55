"""Attention (PROTOCOL.md 6.5) against a real server on MariaDB and Redis: private groups,
mute / pin / archive and the unread total, presence, Web Push."""
from __future__ import annotations

import pytest

from tests.conftest import mysql_env
from tests.support import WS, Api, ServerProcess


def make_group(owner, **fields):
    r = owner.post("/api/groups", json={"name": "Attic " + owner.username, **fields})
    assert r.status_code == 201, r.text
    return r.json()


# -- Private groups ------------------------------------------------------------------------

def test_private_group_is_invisible_to_outsiders_and_joined_by_invitation(api):
    alice, bob, carol = api("alice"), api("bob"), api("carol")
    bob.put(f"/api/users/{alice.user_id}/follow")  # even a follower is only invited
    group = make_group(alice, visibility="private")
    gid = group["id"]
    assert group["visibility"] == "private"
    assert make_group(alice)["visibility"] == "public"
    bad = alice.post("/api/groups", json={"name": "x", "visibility": "secret"})
    assert bad.status_code == 400
    # Outsiders: 404 everywhere, not found by search, cannot join or write.
    for path in (f"/api/groups/{gid}", f"/api/groups/{gid}/members",
                 f"/api/groups/{gid}/messages"):
        assert carol.get(path).status_code == 404, path
    assert carol.put(f"/api/groups/{gid}/members/{carol.user_id}").status_code == 404
    sent = carol.post("/api/messages", json={"group_id": gid, "content": "hi"})
    assert sent.status_code == 404
    found = {g["id"] for g in carol.get("/api/groups", params={"q": "Attic " + alice.username})
             .json()["groups"]}
    assert gid not in found and len(found) == 1
    # The owner adds bob: invited (202), never added at once.
    r = alice.put(f"/api/groups/{gid}/members/{bob.user_id}")
    assert r.status_code == 202 and r.json()["invited"] is True
    notices = bob.get("/api/notices").json()["notices"]
    assert notices[0]["notice"] == "group_invited" and notices[0]["group_id"] == gid
    # Invited: sees the group, not its members or messages.
    shown = bob.get(f"/api/groups/{gid}")
    assert shown.status_code == 200 and shown.json()["role"] is None
    assert bob.get(f"/api/groups/{gid}/members").status_code == 403
    assert bob.get(f"/api/groups/{gid}/messages").status_code == 403
    # Joins; then the member finds it by search, and the outsider still does not.
    assert bob.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    assert bob.get(f"/api/groups/{gid}/members").status_code == 200
    assert gid in {g["id"] for g in bob.get("/api/groups", params={"q": "Attic"})
                   .json()["groups"]}
    assert carol.get(f"/api/groups/{gid}").status_code == 404


def test_private_group_invitation_can_be_declined(api):
    alice, bob = api("alice"), api("bob")
    gid = make_group(alice, visibility="private")["id"]
    assert alice.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 202
    assert bob.delete(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    assert bob.get(f"/api/groups/{gid}").status_code == 404
    assert bob.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 404


# -- Mute, pin, archive ----------------------------------------------------------------------

def _send(sender, **target):
    r = sender.post("/api/messages", json={"content": "ping", **target})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _convs(user, **params):
    r = user.get("/api/conversations", params=params)
    assert r.status_code == 200, r.text
    return [(c["kind"], c.get("user_id") or c.get("group_id")) for c in r.json()["conversations"]]


def test_pin_and_archive_order_and_filter_the_list(api):
    alice, bob, carol = api("alice"), api("bob"), api("carol")
    alice.follow_each_other(bob)
    alice.follow_each_other(carol)
    _send(bob, recipient_id=alice.user_id)
    _send(carol, recipient_id=alice.user_id)
    assert _convs(alice) == [("private", carol.user_id), ("private", bob.user_id)]
    r = alice.patch(f"/api/conversations/private/{bob.user_id}", json={"pinned": True})
    assert r.status_code == 200 and r.json()["pinned"] is True
    assert r.json()["muted"] is False and r.json()["archived"] is False
    assert _convs(alice) == [("private", bob.user_id), ("private", carol.user_id)]
    # Archived: only under ?archived=1, and back by itself with a new message.
    r = alice.patch(f"/api/conversations/private/{carol.user_id}", json={"archived": True})
    assert r.json()["archived"] is True and r.json()["pinned"] is False
    assert _convs(alice) == [("private", bob.user_id)]
    assert _convs(alice, archived=1) == [("private", carol.user_id)]
    _send(carol, recipient_id=alice.user_id)
    assert _convs(alice) == [("private", bob.user_id), ("private", carol.user_id)]
    assert _convs(alice, archived=1) == []
    # Settings are the caller's own: bob's list is untouched.
    assert [c["pinned"] for c in bob.get("/api/conversations").json()["conversations"]] == [False]
    # Bad input changes nothing.
    for body in ({"pinned": "yes"}, {"muted": 1}, [1]):
        assert alice.patch(f"/api/conversations/private/{bob.user_id}",
                           json=body).status_code == 400
    assert alice.patch("/api/conversations/private/999999999", json={}).status_code == 404
    assert alice.patch("/api/conversations/group/0", json={}).status_code == 400
    assert _convs(alice)[0] == ("private", bob.user_id)


def test_muted_conversation_counts_only_mentions_and_stays_archived(api, connect, server):
    alice, bob = api("alice"), api("bob")
    bob.put(f"/api/users/{alice.user_id}/follow")
    gid = make_group(alice)["id"]
    assert alice.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    alice.follow_each_other(bob)
    _send(alice, group_id=gid)
    _send(alice, group_id=gid)
    _send(alice, recipient_id=bob.user_id)
    assert bob.get("/api/unread").json()["total"] == 3
    r = bob.patch(f"/api/conversations/group/{gid}", json={"muted": True, "archived": True})
    assert r.status_code == 200 and r.json()["muted"] and r.json()["archived"]
    unread = bob.get("/api/unread").json()
    assert unread["total"] == 1
    group = [c for c in unread["conversations"] if c["kind"] == "group"][0]
    assert group["unread"] == 2 and group["muted"] is True
    # A mention in the muted group counts; its message does not bring it out of the archive.
    r = alice.post("/api/messages", json={"group_id": gid, "content": "@bob look",
                                          "mentions": [bob.user_id]})
    assert r.status_code == 201, r.text
    assert bob.get("/api/unread").json()["total"] == 2
    assert connect(server, bob).hello["unread"] == 2
    assert ("group", gid) not in _convs(bob)
    assert _convs(bob, archived=1) == [("group", gid)]
    # Unmuted: every unread message counts again, and the new messages bring it back.
    bob.patch(f"/api/conversations/group/{gid}", json={"muted": False})
    assert bob.get("/api/unread").json()["total"] == 4
    assert ("group", gid) in _convs(bob)
    # Outsiders cannot touch a group's settings.
    carol = api("carol")
    assert carol.patch(f"/api/conversations/group/{gid}", json={"muted": True}).status_code == 403


# -- Presence --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two(mysql_url, redis_prefix):
    """Two processes sharing MariaDB and Redis, with a short presence grace."""
    env = mysql_env(mysql_url, redis_prefix, CHAT_PRESENCE_GRACE=1)
    procs = [ServerProcess(env).start(), ServerProcess(env).start()]
    yield procs
    for p in procs:
        p.stop()


def _presence(viewer, user):
    profile = viewer.get(f"/api/users/{user.user_id}").json()
    return profile["online"], profile["last_seen_at"]


def test_presence_reaches_friends_across_processes(two):
    a, b = two
    alice, bob = Api.new_user(a.base, "alice"), Api.new_user(b.base, "bob")
    carol = Api.new_user(b.base, "carol")
    alice.follow_each_other(bob)
    carol.put(f"/api/users/{alice.user_id}/follow")  # one way only: no presence
    assert _presence(bob, alice) == (False, None)  # never seen
    assert _presence(carol, alice) == (None, None)
    bob_ws, carol_ws = WS(b.ws_url, token=bob.token), WS(b.ws_url, token=carol.token)
    first = WS(a.ws_url, token=alice.token)
    frame = bob_ws.expect("presence", user_id=alice.user_id)
    assert frame["online"] is True and frame["last_seen_at"] is None
    assert _presence(bob, alice) == (True, None)
    assert _presence(carol, alice) == (None, None)
    # A reload (a new socket on the other process, then the old one closes): no flicker.
    second = WS(b.ws_url, token=alice.token)
    first.close()
    bob_ws.nothing("presence", wait=2.5)
    second.close()
    frame = bob_ws.expect("presence", user_id=alice.user_id)
    assert frame["online"] is False and frame["last_seen_at"].endswith("Z")
    online, seen = _presence(bob, alice)
    assert online is False and seen == frame["last_seen_at"]
    carol_ws.nothing("presence", wait=0.2)
    # Hidden: null to friends too, and no frames.
    me = alice.patch("/api/me", json={"show_presence": False})
    assert me.status_code == 200 and me.json()["show_presence"] is False
    assert alice.get("/api/me").json()["show_presence"] is False
    assert alice.patch("/api/me", json={"show_presence": "no"}).status_code == 400
    assert _presence(bob, alice) == (None, None)
    again = WS(a.ws_url, token=alice.token)
    bob_ws.nothing("presence", wait=1)
    for ws in (again, bob_ws, carol_ws):
        ws.close()
