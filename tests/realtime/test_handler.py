"""One connection's frames (``chat.realtime.handler``): routed to the services, answered on
the socket, and a bad frame never ends the connection.

Each client is a real ``Connection`` on a loopback TCP pair, registered like /ws
registers it; the services are the app's own, on a SQLite file.
"""
from __future__ import annotations

import json

import gevent
import pytest

from chat.realtime.handler import FrameHandler
from chat.service.limits import FloodLimiter
from tests.inprocess import add_group, add_user, follow_each_other, make_app, running
from tests.support import free_port
from tests.wire import open_connection


class Client:
    """A user's connection: frames in through the handler, frames out at the peer."""

    def __init__(self, runtime, user_id: int, max_inflight: int = 256,
                 max_unread_answer: int = 1 << 20, **buffers) -> None:
        self.user_id = user_id
        self.conn, self.peer = open_connection(user_id, **buffers)
        runtime.registry.add(self.conn, runtime.services.reading.hello_state(user_id)[2])
        self.handler = FrameHandler(self.conn, runtime.services, runtime.stats, max_inflight,
                                    max_unread_answer)

    def send(self, frame) -> None:
        self.handler.handle(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    def ask(self, frame) -> dict:
        self.send(frame)
        return self.peer.json()


@pytest.fixture
def client(runtime, services):
    opened: list[Client] = []

    def _client(user_id: int, **kw) -> Client:
        opened.append(Client(runtime, user_id, **kw))
        return opened[-1]
    yield _client
    for c in opened:
        runtime.registry.remove(c.conn)
        c.conn.transport.abort()
        c.peer.close()


@pytest.fixture
def pair(client):
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    return client(alice), client(bob)


def test_ping_is_answered_with_pong(client):
    assert client(add_user()).ask({"type": 0}) == {"kind": "pong", "code": 200}


@pytest.mark.parametrize("raw, ref, says", [
    ("not json", None, "not valid JSON"),
    (b'{"type": 0}', None, "binary"),
    ("[0]", None, "JSON object"),
    ('"type"', None, "JSON object"),
    ("{}", None, "unknown or missing type"),
    ('{"type": 99}', 99, "unknown or missing type"),
    ('{"type": "0"}', "0", "unknown or missing type"),
    ('{"type": true}', True, "unknown or missing type"),
    ('{"type": 1.0, "client_id": "c1"}', "c1", "unknown or missing type"),
], ids=["not-json", "binary", "array", "string", "no-type", "unknown-type", "type-as-text",
        "type-true", "type-float"])
def test_a_bad_frame_gets_a_400_and_the_connection_goes_on(client, raw, ref, says):
    c = client(add_user())
    error = c.ask(raw)
    assert (error["kind"], error["code"], error["error"]) == ("error", 400, "bad_request")
    assert error.get("ref") == ref and says in error["content"]
    assert c.ask({"type": 0})["kind"] == "pong"


def test_a_private_message_is_acked_to_its_connection_and_delivered_to_the_rest(client, pair):
    alice, bob = pair
    alice_tab = client(alice.user_id)
    ack = alice.ask({"type": 1, "recipient_id": bob.user_id, "content": "hi", "client_id": "c1"})
    assert (ack["kind"], ack["client_id"], ack["online"]) == ("ack", "c1", True)
    message = bob.peer.json()
    assert (message["kind"], message["id"], message["content"]) == ("message", ack["id"], "hi")
    assert alice_tab.peer.json()["id"] == ack["id"]  # her other tab sees it too
    alice.peer.nothing(0.05)  # and her sending tab only the ack


def test_errors_name_the_frame_by_client_id_or_else_by_type(pair):
    alice, bob = pair
    nobody = alice.ask({"type": 1, "recipient_id": 10**9, "content": "hi", "client_id": "c2"})
    assert (nobody["code"], nobody["error"], nobody["ref"]) == (404, "not_found", "c2")
    no_client_id = alice.ask({"type": 1, "recipient_id": 10**9, "content": "hi"})
    assert no_client_id["ref"] == 1
    malformed = alice.ask({"type": 1, "recipient_id": "bob", "content": ""})
    assert (malformed["code"], malformed["ref"]) == (400, 1)
    surrogate = alice.ask('{"type": 1, "recipient_id": %d, "content": "\\ud800", '
                          '"client_id": "c3"}' % bob.user_id)
    assert (surrogate["code"], surrogate["ref"]) == (400, "c3")


def test_group_messages_reach_the_members_connected_here(client):
    owner, member, outsider = add_user(), add_user(), add_user()
    gid = add_group(owner, member)
    o, m, x = client(owner), client(member), client(outsider)
    ack = o.ask({"type": 4, "recipient_id": gid, "content": "team", "client_id": "g1"})
    assert ack["group_id"] == gid and m.peer.json()["content"] == "team"
    refused = x.ask({"type": 4, "recipient_id": gid, "content": "", "client_id": "g2"})
    assert (refused["code"], refused["ref"]) == (403, "g2")  # permission before content
    assert x.ask({"type": 4, "recipient_id": [gid], "content": "x"})["code"] == 400


def test_the_flood_limit_counts_every_frame_first(services, client):
    services.flood = FloodLimiter(per_minute=3)
    c = client(add_user())
    for _ in range(3):
        assert c.ask({"type": 0})["kind"] == "pong"
    over = c.ask({"type": 1, "recipient_id": 10**9, "content": "", "client_id": "c9"})
    assert (over["code"], over["error"], over["ref"]) == (429, "rate_limited", "c9")
    assert c.ask("garbage")["error"] == "rate_limited"  # whatever it holds


def test_history_unread_and_sync(pair):
    alice, bob = pair
    ids = [alice.ask({"type": 1, "recipient_id": bob.user_id, "content": f"m{n}"})["id"]
           for n in range(3)]
    for _ in ids:
        bob.peer.json()
    history = bob.ask({"type": 3, "recipient_id": alice.user_id, "limit": 2})
    assert (history["kind"], [m["id"] for m in history["messages"]]) == ("history", ids[1:])
    assert history["has_more"] is True
    assert bob.ask({"type": 3, "recipient_id": alice.user_id, "group": 1})["code"] == 400
    sync = bob.ask({"type": 7, "since_id": ids[0]})
    assert (sync["kind"], [m["id"] for m in sync["messages"]]) == ("sync", ids[1:])
    unread = bob.ask({"type": 2})
    assert (unread["kind"], [m["id"] for m in unread["messages"]]) == ("unread", ids)
    assert alice.peer.json()["kind"] == "read"  # the read receipt of fetching them
    assert bob.ask({"type": 2})["messages"] == []


def test_mark_read_and_typing_reach_the_other_side_not_the_sender(client, pair):
    alice, bob = pair
    bob_tab = client(bob.user_id)
    last = alice.ask({"type": 1, "recipient_id": bob.user_id, "content": "x"})["id"]
    bob.peer.json(), bob_tab.peer.json()
    bob.send({"type": 5, "recipient_id": alice.user_id, "last_read_id": last})
    assert alice.peer.json() == {"kind": "read", "code": 200, "user_id": bob.user_id,
                                 "recipient_id": alice.user_id, "group_id": None,
                                 "last_read_id": last}
    assert bob_tab.peer.json()["kind"] == "read"
    bob.send({"type": 6, "recipient_id": alice.user_id})
    assert alice.peer.json()["kind"] == "typing"
    bob.peer.nothing(0.05)
    assert bob.ask({"type": 5, "recipient_id": alice.user_id})["code"] == 400


def test_one_in_flight_at_a_time_still_answers_everything_in_order(client):
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    c = client(alice, max_inflight=1)
    for n in range(5):
        c.send({"type": 1, "recipient_id": bob, "content": f"{n}", "client_id": f"c{n}"})
    assert [c.peer.json()["client_id"] for _ in range(5)] == [f"c{n}" for n in range(5)]
    assert c.handler.inflight == 0


def test_a_client_that_leaves_answers_unread_is_not_served_more(client, app):
    c = client(add_user(), max_unread_answer=20_000, server_sndbuf=4096, client_rcvbuf=4096)
    for _ in range(20):  # answers the client has not read yet
        c.conn.send_payload(b'{"kind":"filler","pad":"' + b" " * 8000 + b'"}')

    def ask_for_sync():  # the socket's own greenlet, in its own app context
        with app.app_context():
            c.send({"type": 7, "since_id": 0})
    asking = gevent.spawn(ask_for_sync)
    gevent.sleep(0.2)
    assert not asking.dead  # no sync answer on top of 100 kB the client does not read
    for _ in range(20):
        assert c.peer.json()["kind"] == "filler"
    asking.join(timeout=5)
    assert c.peer.json()["kind"] == "sync"


def test_with_the_database_down_a_frame_gets_503_and_the_connection_goes_on():
    url = f"mysql+pymysql://root@127.0.0.1:{free_port()}/none"
    with running(make_app(url, SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 1}})
                 ) as app:
        c = Client.__new__(Client)
        c.user_id = 1
        c.conn, c.peer = open_connection(1)
        runtime = app.extensions["chat"]
        c.handler = FrameHandler(c.conn, runtime.services, runtime.stats, 8)
        try:
            busy = c.ask({"type": 3, "recipient_id": 2, "client_id": "h1"})
            assert (busy["code"], busy["error"], busy["ref"]) == (503, "server_busy", "h1")
            assert c.ask({"type": 0})["kind"] == "pong"
        finally:
            c.conn.transport.abort()
            c.peer.close()
