"""GET /ws (``chat.realtime.route``): the guards before the upgrade, and one connection's life.

The app is called as a WSGI server calls it, in a greenlet (``tests.wire.Upgrade``);
the route finds the server's end of a loopback TCP pair where a WSGI server would
leave it (``chat.socket``), and the test speaks WebSocket on the other end. No
server process.
"""
from __future__ import annotations

import struct

import gevent
import orjson
import pytest

from chat.realtime.route import origin_allowed
from tests.inprocess import add_group, add_user, follow_each_other
from tests.wire import OP_CLOSE, OP_TEXT, RFC_ACCEPT, Upgrade


@pytest.fixture
def upgrade(app):
    made: list[Upgrade] = []

    def _upgrade(**kw) -> Upgrade:
        made.append(Upgrade(app, **kw))
        return made[-1]
    yield _upgrade
    for u in made:
        u.close()
    # The connections live on after their requests: they end once their peers are gone.
    assert app.extensions["chat"].connections.join(timeout=5)


@pytest.fixture
def token(services):
    """A user and a bearer token of theirs: (user_id, secret)."""
    uid = add_user()
    return uid, services.accounts.issue_credential(uid, "api").secret


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def test_a_connection_from_hello_to_close(upgrade, token, runtime):
    uid, secret = token
    u = upgrade(headers=bearer(secret))
    head = u.peer.http_head()
    assert head.startswith(b"HTTP/1.1 101 ") and RFC_ACCEPT in head
    assert u.peer.json() == {"kind": "hello", "code": 200, "user_id": uid, "unread": 0,
                             "last_id": 0, "content": "connected"}
    assert runtime.registry.count(uid) == 1
    u.peer.send_json({"type": 0})
    assert u.peer.json() == {"kind": "pong", "code": 200}
    u.peer.send(OP_CLOSE, struct.pack("!H", 1000))
    assert u.peer.frame() == (OP_CLOSE, struct.pack("!H", 1000))
    assert u.response() == (None, b"")  # after the upgrade: no HTTP response at all
    assert runtime.registry.count(uid) == 0
    assert u.peer.at_eof()


def test_hello_counts_unread_and_the_newest_id(upgrade, services):
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    ack, _ = services.sending.send(alice, recipient_id=bob,
                                   fields={"content": "while away"})
    secret = services.accounts.issue_credential(bob, "api").secret
    u = upgrade(query=f"token={secret}")  # browsers cannot set headers on a WebSocket
    u.peer.http_head()
    hello = u.peer.json()
    assert (hello["user_id"], hello["unread"], hello["last_id"]) == (bob, 1, ack["id"])


def _not_presence(peer) -> dict:
    """The next frame that is not a friend's ``presence`` (docs/protocol.md, Attention)."""
    frame = peer.json()
    while frame["kind"] == "presence":
        frame = peer.json()
    return frame


def test_a_message_between_two_sockets(upgrade, services):
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    a = upgrade(headers=bearer(services.accounts.issue_credential(alice, "api").secret))
    b = upgrade(headers=bearer(services.accounts.issue_credential(bob, "api").secret))
    for u in (a, b):
        u.peer.http_head(), u.peer.json()
    a.peer.send_json({"type": 1, "recipient_id": bob, "content": "hi bob", "client_id": "w1"})
    ack = _not_presence(a.peer)
    assert (ack["kind"], ack["online"]) == ("ack", True)
    message = _not_presence(b.peer)
    assert (message["id"], message["content"], message["from"]) == (ack["id"], "hi bob",
                                                                    f"{alice}->{bob}")


def _frames_until(peer, kind: str) -> list[dict]:
    """Frames up to and including the first of ``kind`` (its absence fails the test)."""
    frames = [peer.json()]
    while frames[-1]["kind"] != kind:
        frames.append(peer.json())
    return frames


@pytest.mark.parametrize("change", ["removed", "joined"])
def test_a_group_change_made_while_a_socket_opens_still_reaches_it(upgrade, services, runtime,
                                                                     monkeypatch, change):
    """A user's groups are read before its socket listens: a change published in between
    reaches no one, and the second look at the groups (``GroupCheck``) corrects them."""
    owner, member = add_user(), add_user()
    gid = add_group(owner, member) if change == "removed" else add_group(owner)
    runtime.group_check.delay = 0.01
    read_hello = services.reading.hello_state

    def hello_then_change(user_id, rows=None):
        found = read_hello(user_id, rows)
        if user_id == member:  # after the read, before the socket is registered
            if change == "removed":
                services.groups.remove_member(owner, gid, member)
            else:
                services.groups.add_member(member, gid, member)
        return found
    monkeypatch.setattr(services.reading, "hello_state", hello_then_change)
    u = upgrade(headers=bearer(services.accounts.issue_credential(member, "api").secret))
    u.peer.http_head(), u.peer.json()
    if change == "joined":  # told to sync: what the group said in between was not sent
        assert _frames_until(u.peer, "catch_up")[-1]["kind"] == "catch_up"
    else:
        gevent.sleep(0.2)  # the check's round
    assert (gid in runtime.registry.user_groups[member]) == (change == "joined")
    ack, _ = services.sending.send(owner, group_id=gid, fields={"content": "to the group"})
    u.peer.send_json({"type": 0})
    got = [f.get("id") for f in _frames_until(u.peer, "pong") if f["kind"] == "message"]
    assert got == ([ack["id"]] if change == "joined" else [])


def test_a_ticket_opens_one_socket_once(upgrade, services):
    uid = add_user()
    cred = services.accounts.issue_credential(uid, "session")
    ticket = services.accounts.issue_ticket(uid, cred.token_id)
    first = upgrade(query=f"ticket={ticket}")  # no header, no long-lived secret in the URL
    first.peer.http_head()
    assert first.peer.json()["user_id"] == uid
    refused(upgrade(query=f"ticket={ticket}"), 401, "unauthorized")


def test_past_the_cap_the_newest_socket_is_refused_with_4008(upgrade, token, runtime):
    uid, secret = token
    runtime.quota.cap = 1
    kept = upgrade(headers=bearer(secret))
    kept.peer.http_head(), kept.peer.json()
    extra = upgrade(headers=bearer(secret))
    extra.peer.http_head()
    assert extra.peer.close_code() == (4008, "too many open connections for this user (1)")
    assert extra.response() == (None, b"")
    kept.peer.send_json({"type": 0})
    assert kept.peer.json()["kind"] == "pong"  # the older one goes on
    kept.peer.send(OP_CLOSE, struct.pack("!H", 1000))
    assert kept.response() == (None, b"")
    again = upgrade(headers=bearer(secret))  # its slot was given back
    again.peer.http_head()
    assert again.peer.json()["kind"] == "hello"


def test_past_the_process_cap_a_new_socket_is_closed_with_1013(upgrade, token, app, runtime,
                                                                monkeypatch):
    # The connections live on after their requests ended, so gunicorn's worker_connections
    # no longer counts them: the app keeps the cap itself.
    uid, secret = token
    monkeypatch.setitem(app.config, "CHAT_WORKER_CONNECTIONS", 1)
    kept = upgrade(headers=bearer(secret))
    kept.peer.http_head(), kept.peer.json()
    assert kept.response() == (None, b"")  # its request is over; the connection is not
    extra = upgrade(headers=bearer(secret))
    extra.peer.http_head()
    assert extra.peer.close_code() == (1013, "server full")
    kept.peer.send_json({"type": 0})
    assert kept.peer.json()["kind"] == "pong"
    kept.peer.send(OP_CLOSE, struct.pack("!H", 1000))
    assert kept.peer.frame() == (OP_CLOSE, struct.pack("!H", 1000))
    assert kept.peer.at_eof()
    again = upgrade(headers=bearer(secret))  # room again
    again.peer.http_head()
    assert again.peer.json()["kind"] == "hello"


def test_a_process_that_is_stopping_sends_new_sockets_elsewhere_with_1001(upgrade, token,
                                                                          runtime,
                                                                          monkeypatch):
    uid, secret = token
    monkeypatch.setattr(runtime, "draining", True)
    hellos = []
    read_with_hello = runtime.services.accounts.resolve_secret_with_hello
    monkeypatch.setattr(runtime.services.accounts, "resolve_secret_with_hello",
                        lambda secret: hellos.append(secret) or read_with_hello(secret))
    u = upgrade(headers=bearer(secret))
    u.peer.http_head()
    assert u.peer.close_code() == (1001, "server shutting down")
    assert runtime.registry.count(uid) == 0
    assert hellos == []  # refused: only its token was looked up, not its hello
    monkeypatch.setattr(runtime, "draining", False)
    taken = upgrade(headers=bearer(secret))
    taken.peer.http_head()
    assert taken.peer.json()["kind"] == "hello" and hellos == [secret]


def test_a_frame_over_the_limit_closes_with_1009(upgrade, token, runtime):
    uid, secret = token
    u = upgrade(headers=bearer(secret))
    u.peer.http_head(), u.peer.json()
    u.peer.sock.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, 10**6) + b"mask")
    assert u.peer.close_code() == (1009, "message too big")
    assert u.response() == (None, b"") and runtime.registry.count(uid) == 0


def refused(u: Upgrade, status: int, code: str) -> None:
    """The request was answered in JSON before the upgrade, and nothing reached the socket."""
    got, body = u.response()
    assert (got, orjson.loads(body)["error"]["code"]) == (status, code)
    u.peer.nothing(0.05)


def test_no_credential_is_401_before_the_upgrade(upgrade):
    refused(upgrade(), 401, "unauthorized")
    refused(upgrade(headers={"Origin": "http://localhost"}), 401, "unauthorized")
    refused(upgrade(headers=bearer("not-a-token")), 401, "unauthorized")


def test_a_revoked_token_is_401(upgrade, services):
    uid = add_user()
    cred = services.accounts.issue_credential(uid, "api")
    services.accounts.revoke(cred.token_id, uid)
    refused(upgrade(headers=bearer(cred.secret)), 401, "unauthorized")


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "https://localhost",
                                    "http://localhost.evil.example", "localhost"])
def test_a_foreign_origin_is_403_even_with_a_token(upgrade, token, origin):
    refused(upgrade(headers={**bearer(token[1]), "Origin": origin}), 403, "forbidden")


@pytest.mark.parametrize("origin", ["http://localhost", "HTTP://LOCALHOST:80",
                                    "http://localhost/"])
def test_the_servers_own_origin_is_accepted(upgrade, token, origin):
    u = upgrade(headers={**bearer(token[1]), "Origin": origin})
    assert u.peer.http_head().startswith(b"HTTP/1.1 101 ")


def test_a_malformed_upgrade_is_400(upgrade, token):
    refused(upgrade(headers={**bearer(token[1]), "Sec-WebSocket-Key": "short"}), 400,
            "bad_request")


def test_without_the_socket_of_a_gevent_server_the_route_fails_plainly(upgrade, token):
    status, body = upgrade(headers=bearer(token[1]), with_socket=False).response()
    assert (status, orjson.loads(body)["error"]["code"]) == (500, "internal_error")


@pytest.mark.parametrize("origin, listed, ok", [
    ("https://chat.example:8443", "", True),
    ("https://CHAT.example:8443", "", True),
    ("https://chat.example", "", False),
    ("http://chat.example:8443", "", False),
    ("https://app.example", "https://app.example, https://other.example", True),
    ("https://app.example:443", "https://app.example", True),
    ("https://app.example", "https://other.example", False),
    ("null", "null", False),
    ("", "", False),
    ("chat.example:8443", "", False),
])
def test_origin_allowed(app, monkeypatch, origin, listed, ok):
    monkeypatch.setitem(app.config, "CHAT_ALLOWED_ORIGINS", listed)
    with app.test_request_context("/ws", base_url="https://chat.example:8443"):
        assert origin_allowed(origin) is ok


def test_text_frames_from_the_server_are_json(upgrade, token):
    u = upgrade(headers=bearer(token[1]))
    u.peer.http_head()
    opcode, payload = u.peer.frame()
    assert opcode == OP_TEXT and payload.startswith(b'{"kind":"hello"')
