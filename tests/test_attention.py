"""Attention (docs/protocol.md, Attention) against a real server on MariaDB and Redis: private groups,
mute / pin / archive and the unread total, presence, Web Push."""
from __future__ import annotations

import json
import time

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
    sent = bob.post("/api/messages", json={"group_id": gid, "content": "may I?"})
    assert sent.status_code == 403  # knows the group: not a member yet, not "no such group"
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


# -- Web Push --------------------------------------------------------------------------------

class PushReceiver:
    """A real push service on 127.0.0.1: keeps each request and answers ``status``."""

    def __init__(self) -> None:
        import queue
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: queue.Queue = queue.Queue()
        self.status = 201
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.put((self.path, {k.lower(): v for k, v in self.headers.items()},
                                       body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def next(self, timeout: float = 15):
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.httpd.shutdown()


def _b64(raw: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """A browser's side of a subscription: its P-256 key pair and auth secret (RFC 8291)."""

    def __init__(self, endpoint: str) -> None:
        import os

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self.subscription = {"endpoint": endpoint,
                             "keys": {"p256dh": _b64(public), "auth": _b64(self.auth)}}

    def open(self, headers: dict, body: bytes, server_key: str, audience: str) -> dict:
        """Check the VAPID signature (RFC 8292) and decrypt the payload (RFC 8291)."""
        import http_ece
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        assert headers["content-encoding"] == "aes128gcm" and int(headers["ttl"]) > 0
        scheme, _, params = headers["authorization"].partition(" ")
        assert scheme == "vapid"
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        assert fields["k"] == server_key
        head, claims, signature = fields["t"].split(".")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(fields["k"]))
        raw = _unb64(signature)
        public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                           int.from_bytes(raw[32:], "big")),
                      f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        claims = json.loads(_unb64(claims))
        assert claims["aud"] == audience and claims["sub"].startswith("mailto:")
        assert claims["exp"] > time.time()
        plain = http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth,
                                 version="aes128gcm")
        return json.loads(plain)


@pytest.fixture
def receiver():
    r = PushReceiver()
    yield r
    r.close()


def test_push_subscriptions_are_checked(api):
    alice = api("alice")
    key = alice.get("/api/push/key")
    assert key.status_code == 200 and len(_unb64(key.json()["key"])) == 65
    good = Browser("https://push.example.com/x").subscription["keys"]
    for body in ({"endpoint": "http://push.example.com/x", "keys": good},
                 {"endpoint": "https://10.0.0.1/x", "keys": good},
                 {"endpoint": "https://127.0.0.1/x", "keys": good},
                 {"endpoint": "http://127.0.0.1.nip.io/x", "keys": good},
                 {"endpoint": "ftp://127.0.0.1/x", "keys": good},
                 {"endpoint": "http://127.0.0.1:9/x", "keys": {"p256dh": "abc", "auth": "x"}},
                 {"endpoint": "http://127.0.0.1:9/x", "keys": {"p256dh": good["p256dh"]}},
                 {"endpoint": "http://127.0.0.1:9/x"}, {"endpoint": 5, "keys": good}):
        r = alice.post("/api/push/subscriptions", json=body)
        assert r.status_code == 400, (body, r.text)
    assert alice.delete("/api/push/subscriptions",
                        json={"endpoint": "http://127.0.0.1:9/x"}).json() == {"removed": False}


def test_push_reaches_a_user_with_no_live_connection(api, server, receiver):
    alice, bob = api("alice"), api("bob")
    alice.follow_each_other(bob)
    server_key = bob.get("/api/push/key").json()["key"]
    browser = Browser(receiver.base + "/push/bob")
    r = bob.post("/api/push/subscriptions", json=browser.subscription)
    assert r.status_code == 201 and r.json()["endpoint"] == receiver.base + "/push/bob"

    def next_push() -> dict:
        path, headers, body = receiver.next()
        assert path == "/push/bob"
        return browser.open(headers, body, server_key, receiver.base)

    first = _send(alice, recipient_id=bob.user_id)
    assert next_push() == {"kind": "message", "id": first,
                           "conversation": {"kind": "private", "user_id": alice.user_id},
                           "sender": {"id": alice.user_id, "username": alice.username},
                           "excerpt": "ping"}
    # While bob has a live socket nothing is pushed. Pushes are decided in order, so once
    # carol's (sent after it) has arrived, bob's message was passed over.
    carol = api("carol")
    carol.follow_each_other(alice)
    carol_browser = Browser(receiver.base + "/push/carol")
    assert carol.post("/api/push/subscriptions",
                      json=carol_browser.subscription).status_code == 201
    ws = WS(server.ws_url, token=bob.token)
    _send(alice, recipient_id=bob.user_id)
    ws.expect("message")
    _send(alice, recipient_id=carol.user_id)
    path, headers, body = receiver.next()
    assert path == "/push/carol"
    assert carol_browser.open(headers, body, server_key, receiver.base)["excerpt"] == "ping"
    ws.close()
    deadline = time.time() + 10  # until the server has seen the socket go
    while _presence(alice, bob)[0] and time.time() < deadline:
        time.sleep(0.05)
    bob.patch("/api/me", json={"push_previews": False})
    third = _send(alice, recipient_id=bob.user_id)
    push = next_push()
    assert (push["id"], push["excerpt"]) == (third, "")
    # A muted group pushes only mentions.
    bob.put(f"/api/users/{alice.user_id}/follow")
    gid = make_group(alice)["id"]
    assert alice.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    bob.patch(f"/api/conversations/group/{gid}", json={"muted": True})
    _send(alice, group_id=gid)
    mention = alice.post("/api/messages", json={"group_id": gid, "content": "@bob",
                                                "mentions": [bob.user_id]}).json()["id"]
    push = next_push()
    assert (push["id"], push["conversation"]) == (mention, {"kind": "group", "group_id": gid})
    # A subscription that answers 410 is removed.
    receiver.status = 410
    gone = _send(alice, recipient_id=bob.user_id)
    assert next_push()["id"] == gone
    deadline = time.time() + 15
    while bob.get("/api/push/subscriptions").json()["subscriptions"] and time.time() < deadline:
        time.sleep(0.1)
    assert bob.get("/api/push/subscriptions").json() == {"subscriptions": []}
    assert carol.get("/api/push/subscriptions").json()["subscriptions"][0]["endpoint"].endswith(
        "/push/carol")
