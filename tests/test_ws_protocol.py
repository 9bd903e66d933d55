"""docs/protocol.md 3 and 5 over real WebSockets, on MariaDB + Redis and on SQLite."""
from __future__ import annotations

import threading
import time

import pytest
import requests
import websocket

from tests.support import WS


def test_hello_counts_unread_and_newest_id(any_server, pair, connect):
    alice, bob = pair
    fresh = connect(any_server, alice).hello
    assert fresh == {"kind": "hello", "code": 200, "user_id": alice.user_id, "unread": 0,
                     "last_id": 0, "content": "connected"}
    ids = [bob.post("/api/messages", json={"recipient_id": alice.user_id,
                                           "content": f"m{i}"}).json()["id"] for i in range(3)]
    hello = connect(any_server, alice).hello
    assert hello["unread"] == 3 and hello["last_id"] == max(ids)
    assert connect(any_server, bob).hello["unread"] == 0  # your own messages are not unread


def test_ping_gets_pong(any_server, user, connect):
    ws = connect(any_server, user())
    assert ws.request({"type": 0}, "pong") == {"kind": "pong", "code": 200}


def test_private_message_ack_after_store_and_delivery_to_every_connection(any_server, pair,
                                                                         connect):
    alice, bob = pair
    a1, a2 = connect(any_server, alice), connect(any_server, alice)
    b1, b2 = connect(any_server, bob), connect(any_server, bob)
    a1.send({"type": 1, "recipient_id": bob.user_id, "content": "hello 你好 😀", "client_id": "c1"})
    ack = a1.expect("ack")
    assert ack["client_id"] == "c1" and ack["online"] is True and isinstance(ack["id"], int)
    assert ack["content"] == "recipient online" and ack["created_at"].endswith("Z")
    for ws in (b1, b2, a2):
        msg = ws.expect("message")
        assert msg["id"] == ack["id"] and msg["content"] == "hello 你好 😀"
        assert msg["from"] == f"{alice.user_id}->{bob.user_id}"
        assert (msg["sender_id"], msg["recipient_id"], msg["group_id"]) == (
            alice.user_id, bob.user_id, None)
        assert msg["client_id"] == "c1" and msg["created_at"] == ack["created_at"]
    a1.nothing("message")  # the sending connection gets the ack instead
    # Stored before the ack: the history has it.
    page = bob.get(f"/api/messages/{alice.user_id}").json()
    assert [m["id"] for m in page["messages"]] == [ack["id"]]


def test_offline_recipient_gets_it_as_unread(any_server, pair, connect):
    alice, bob = pair
    a = connect(any_server, alice)
    ack = a.request({"type": 1, "recipient_id": bob.user_id, "content": "later"}, "ack")
    assert ack["online"] is False and ack["content"] == "recipient offline"
    assert ack["client_id"] is None
    b = connect(any_server, bob)
    assert b.hello["unread"] == 1
    unread = b.request({"type": 2}, "unread")
    assert [m["content"] for m in unread["messages"]] == ["later"]
    # Sending them marked them read.
    assert b.request({"type": 2}, "unread")["messages"] == []
    assert connect(any_server, bob).hello["unread"] == 0


def test_retry_with_the_same_client_id_never_makes_two_rows(any_server, pair, connect):
    alice, bob = pair
    a = connect(any_server, alice)
    first = a.request({"type": 1, "recipient_id": bob.user_id, "content": "once",
                       "client_id": "retry-1"}, "ack")
    again = a.request({"type": 1, "recipient_id": bob.user_id, "content": "different text",
                       "client_id": "retry-1"}, "ack")
    assert again["id"] == first["id"] and again["created_at"] == first["created_at"]
    # The same key over HTTP: 200 with the stored ack, not 201.
    http = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "x",
                                             "client_id": "retry-1"})
    assert http.status_code == 200 and http.json()["id"] == first["id"]
    assert http.json()["kind"] == "ack" and http.json()["code"] == 200
    msgs = bob.get(f"/api/messages/{alice.user_id}").json()["messages"]
    assert [m["content"] for m in msgs] == ["once"]


def test_client_ids_differing_only_in_trailing_spaces_are_different_keys(any_server, pair,
                                                                         connect):
    alice, bob = pair
    a = connect(any_server, alice)
    plain = a.request({"type": 1, "recipient_id": bob.user_id, "content": "first",
                       "client_id": "pad"}, "ack")
    padded = a.request({"type": 1, "recipient_id": bob.user_id, "content": "second",
                        "client_id": "pad "}, "ack")
    assert padded["id"] != plain["id"]
    again = a.request({"type": 1, "recipient_id": bob.user_id, "content": "resend",
                       "client_id": "pad "}, "ack")
    assert again["id"] == padded["id"]
    msgs = bob.get(f"/api/messages/{alice.user_id}").json()["messages"]
    assert [m["content"] for m in msgs] == ["first", "second"]


def test_racing_retries_store_one_message(any_server, pair):
    alice, bob = pair
    sockets = [WS(any_server.ws_url, alice.token) for _ in range(4)]
    barrier = threading.Barrier(len(sockets))
    acks = []

    def send(ws):
        barrier.wait()
        ws.send({"type": 1, "recipient_id": bob.user_id, "content": "race",
                 "client_id": "race-key"})
        acks.append(ws.expect("ack"))
    threads = [threading.Thread(target=send, args=(ws,)) for ws in sockets]
    [t.start() for t in threads]
    [t.join() for t in threads]
    [ws.close() for ws in sockets]
    assert len({a["id"] for a in acks}) == 1 and len(acks) == 4
    msgs = bob.get(f"/api/messages/{alice.user_id}").json()["messages"]
    assert [m["content"] for m in msgs] == ["race"]


def test_group_message_reaches_every_member_connection_once(any_server, user, connect):
    owner, m1, m2, outsider = user("own"), user("m1"), user("m2"), user("out")
    gid = owner.post("/api/groups", json={"name": "team"}).json()["id"]
    for m in (m1, m2):
        assert m.put(f"/api/groups/{gid}/members/{m.user_id}").status_code == 200
    o1, o2 = connect(any_server, owner), connect(any_server, owner)
    s1, s2, s3 = connect(any_server, m1), connect(any_server, m1), connect(any_server, m2)
    out = connect(any_server, outsider)
    ack = o1.request({"type": 4, "recipient_id": gid, "content": "hi team", "client_id": "g"},
                     "ack")
    assert ack["group_id"] == gid and "online" not in ack
    frames = [ws.expect("message") for ws in (o2, s1, s2, s3)]
    assert {f["id"] for f in frames} == {ack["id"]}
    assert all(f["from"] == f"{owner.user_id}->g{gid}" and f["recipient_id"] is None
               and f["group_id"] == gid for f in frames)
    o1.nothing("message")
    out.nothing("message")
    # A group message is stored once: history shows it once for everyone.
    assert [m["id"] for m in m2.get(f"/api/groups/{gid}/messages").json()["messages"]] == [
        ack["id"]]


def test_group_message_from_a_non_member_or_to_no_group(any_server, user, connect):
    owner, outsider = user("own"), user("out")
    gid = owner.post("/api/groups", json={"name": "closed"}).json()["id"]
    ws = connect(any_server, outsider)
    err = ws.request({"type": 4, "recipient_id": gid, "content": "let me in",
                      "client_id": "x1"}, "error")
    assert (err["code"], err["error"], err["ref"]) == (403, "forbidden", "x1")
    err = ws.request({"type": 4, "recipient_id": 987654321, "content": "?"}, "error")
    assert (err["code"], err["error"], err["ref"]) == (404, "not_found", 4)
    err = ws.request({"type": 3, "recipient_id": gid, "group": True}, "error")
    assert err["code"] == 403


def test_new_member_sees_whole_history_but_only_new_unread(any_server, user, connect):
    owner, late = user("own"), user("late")
    gid = owner.post("/api/groups", json={"name": "g"}).json()["id"]
    owner.post("/api/messages", json={"group_id": gid, "content": "before you came"})
    late.put(f"/api/groups/{gid}/members/{late.user_id}")
    ws = connect(any_server, late)
    assert ws.hello["unread"] == 0
    page = ws.request({"type": 3, "recipient_id": gid, "group": True}, "history")
    assert [m["content"] for m in page["messages"]] == ["before you came"]
    owner.post("/api/messages", json={"group_id": gid, "content": "welcome"})
    assert ws.expect("message")["content"] == "welcome"
    assert connect(any_server, late).hello["unread"] == 1


def test_history_pages_by_before_id_and_by_time(any_server, pair, connect):
    alice, bob = pair
    ids = []
    for i in range(25):
        ids.append(alice.post("/api/messages", json={"recipient_id": bob.user_id,
                                                     "content": f"n{i}"}).json()["id"])
    ws = connect(any_server, bob)
    newest = ws.request({"type": 3, "recipient_id": alice.user_id}, "history")
    assert [m["id"] for m in newest["messages"]] == ids[-10:]
    assert newest["has_more"] is True and newest["recipient_id"] == alice.user_id
    assert newest["group"] is False
    older = ws.request({"type": 3, "recipient_id": alice.user_id, "before_id": ids[-10],
                        "limit": 10}, "history")
    assert [m["id"] for m in older["messages"]] == ids[5:15] and older["has_more"] is True
    last = ws.request({"type": 3, "recipient_id": alice.user_id, "before_id": ids[5],
                       "limit": 5}, "history")
    assert [m["id"] for m in last["messages"]] == ids[:5]
    assert last["has_more"] is False  # this page holds the oldest message
    empty = ws.request({"type": 3, "recipient_id": alice.user_id, "before_id": 0}, "history")
    assert empty["messages"] == [] and empty["has_more"] is False
    # The seed's time cursor: strictly before that moment.
    future = ws.request({"type": 3, "recipient_id": alice.user_id,
                         "content": "2999-01-01 00:00:00", "limit": 3}, "history")
    assert [m["id"] for m in future["messages"]] == ids[-3:]
    for long_ago in ("2000-01-01T00:00:00Z", "0050-01-01 00:00:00", "0999-12-31 23:59:59"):
        past = ws.request({"type": 3, "recipient_id": alice.user_id, "content": long_ago},
                          "history")
        assert past["messages"] == [] and past["has_more"] is False, long_ago
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "5"}, {"before_id": -1},
                {"content": "yesterday"}, {"before_id": 5, "content": "2020-01-01 00:00:00"}):
        err = ws.request({"type": 3, "recipient_id": alice.user_id, **bad}, "error")
        assert err["code"] == 400, bad
        # The conversation answers before the page's other fields (a cursor is an id: 400).
        err = ws.request({"type": 3, "recipient_id": 10**9, **bad}, "error")
        assert err["code"] == (400 if bad == {"before_id": -1} else 404), bad
    gid = alice.post("/api/groups", json={"name": "closed door"}).json()["id"]
    for bad in ({"limit": 0}, {"content": "yesterday"}):
        err = ws.request({"type": 3, "recipient_id": gid, "group": True, **bad}, "error")
        assert err["code"] == 403, bad


def test_read_receipts_are_clamped_and_never_go_back(any_server, pair, connect):
    alice, bob = pair
    a, b1, b2 = connect(any_server, alice), connect(any_server, bob), connect(any_server, bob)
    ack = a.request({"type": 1, "recipient_id": bob.user_id, "content": "read me"}, "ack")
    b1.send({"type": 5, "recipient_id": alice.user_id, "last_read_id": ack["id"] + 1000})
    receipt = a.expect("read")
    assert receipt == {"kind": "read", "code": 200, "user_id": bob.user_id,
                       "recipient_id": alice.user_id, "group_id": None,
                       "last_read_id": ack["id"]}
    assert b2.expect("read")["last_read_id"] == ack["id"]  # the reader's other tab
    b1.nothing("read")
    b1.send({"type": 5, "recipient_id": alice.user_id, "last_read_id": 0})
    assert a.expect("read")["last_read_id"] == ack["id"]  # never backwards
    conv = alice.get("/api/conversations").json()["conversations"]
    assert conv[0]["peer_last_read_id"] == ack["id"]


def test_group_read_goes_only_to_the_readers_other_connections(any_server, user, connect):
    owner, member = user("own"), user("mem")
    gid = owner.post("/api/groups", json={"name": "g"}).json()["id"]
    member.put(f"/api/groups/{gid}/members/{member.user_id}")
    o = connect(any_server, owner)
    m1, m2 = connect(any_server, member), connect(any_server, member)
    ack = o.request({"type": 4, "recipient_id": gid, "content": "x"}, "ack")
    m1.expect("message"), m2.expect("message")
    m1.send({"type": 5, "recipient_id": gid, "group": True, "last_read_id": ack["id"]})
    receipt = m2.expect("read")
    assert (receipt["group_id"], receipt["recipient_id"], receipt["last_read_id"]) == (
        gid, None, ack["id"])
    o.nothing("read")
    assert member.get("/api/unread").json()["total"] == 0


def test_typing_reaches_the_other_side_only(any_server, user, connect):
    alice, bob, carol = user("a"), user("b"), user("c")
    a, b = connect(any_server, alice), connect(any_server, bob)
    a.send({"type": 6, "recipient_id": bob.user_id})
    assert b.expect("typing") == {"kind": "typing", "code": 200, "user_id": alice.user_id,
                                  "recipient_id": bob.user_id, "group_id": None}
    a.nothing("typing")
    gid = alice.post("/api/groups", json={"name": "g"}).json()["id"]
    for u in (bob, carol):
        u.put(f"/api/groups/{gid}/members/{u.user_id}")
    c = connect(any_server, carol)
    time.sleep(0.2)  # let the registry learn bob's new group
    b2 = connect(any_server, bob)
    a.send({"type": 6, "recipient_id": gid, "group": True})
    for ws in (b2, c):
        t = ws.expect("typing")
        assert (t["user_id"], t["group_id"], t["recipient_id"]) == (alice.user_id, gid, None)
    a.nothing("typing")


def test_sync_after_reconnect_misses_nothing(any_server, pair, user, connect):
    alice, bob = pair
    gid = alice.post("/api/groups", json={"name": "g"}).json()["id"]
    bob.put(f"/api/groups/{gid}/members/{bob.user_id}")
    b = connect(any_server, bob)
    first = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "1"})
    seen = b.expect("message")["id"]
    assert seen == first.json()["id"]
    b.close()
    sent = [alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "2"}),
            alice.post("/api/messages", json={"group_id": gid, "content": "3"}),
            bob.post("/api/messages", json={"recipient_id": alice.user_id, "content": "4"})]
    # Someone else's chat is not in bob's sync.
    other = user("x")
    other.post("/api/messages", json={"recipient_id": alice.user_id, "content": "private"})
    b = connect(any_server, bob)
    s = b.request({"type": 7, "since_id": seen}, "sync")
    assert [m["content"] for m in s["messages"]] == ["2", "3", "4"]
    assert [m["id"] for m in s["messages"]] == [r.json()["id"] for r in sent]
    assert s["has_more"] is False
    page = b.request({"type": 7, "since_id": 0, "limit": 2}, "sync")
    assert [m["content"] for m in page["messages"]] == ["1", "2"] and page["has_more"] is True
    for bad in ({}, {"since_id": -1}, {"since_id": "5"}, {"since_id": 0, "limit": 1001},
                {"since_id": 0, "limit": 0}, {"since_id": True}):
        assert b.request({"type": 7, **bad}, "error")["code"] == 400, bad


def test_messages_arrive_in_id_order(any_server, pair, connect):
    alice, bob = pair
    a, b = connect(any_server, alice), connect(any_server, bob)
    for i in range(200):
        a.send({"type": 1, "recipient_id": bob.user_id, "content": str(i)})
    got = [b.expect("message") for _ in range(200)]
    assert [m["content"] for m in got] == [str(i) for i in range(200)]
    assert [m["id"] for m in got] == sorted(m["id"] for m in got)
    acks = [a.expect("ack")["id"] for _ in range(200)]
    assert acks == [m["id"] for m in got]


def test_notes_to_self_are_delivered_and_never_limited(any_server, user, connect):
    me = user("me")
    one, two = connect(any_server, me), connect(any_server, me)
    for i in range(5):
        ack = one.request({"type": 1, "recipient_id": me.user_id, "content": f"note {i}"}, "ack")
        assert ack["online"] is True  # my other tab is live
        assert two.expect("message")["content"] == f"note {i}"
    two.close()
    time.sleep(0.3)
    assert one.request({"type": 1, "recipient_id": me.user_id, "content": "alone"},
                       "ack")["online"] is False


def test_follow_and_group_notices_are_pushed_live(any_server, user, connect):
    alice, bob = user("a"), user("b")
    b = connect(any_server, bob)
    alice.put(f"/api/users/{bob.user_id}/follow")
    notice = b.expect("notice")
    assert (notice["notice"], notice["actor_id"], notice["group_id"]) == (
        "follow", alice.user_id, None)
    assert notice["actor_name"] == alice.username
    assert isinstance(notice["id"], int) and notice["created_at"].endswith("Z")
    gid = alice.post("/api/groups", json={"name": "g"}).json()["id"]
    # bob does not follow alice: he is invited, and is not in the group yet.
    assert alice.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 202
    invited = b.expect("notice")
    assert (invited["notice"], invited["group_id"]) == ("group_invited", gid)
    alice.post("/api/messages", json={"group_id": gid, "content": "not for bob yet"})
    b.nothing("message")
    assert bob.delete(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    # Once he follows her, she adds him at once.
    bob.put(f"/api/users/{alice.user_id}/follow")
    alice.put(f"/api/groups/{gid}/members/{bob.user_id}")
    added = b.expect("notice")
    assert (added["notice"], added["group_id"]) == ("group_added", gid)
    # Already-open sockets start receiving the group's messages.
    alice.post("/api/messages", json={"group_id": gid, "content": "hi new member"})
    assert b.expect("message")["content"] == "hi new member"
    alice.delete(f"/api/groups/{gid}/members/{bob.user_id}")
    assert b.expect("notice")["notice"] == "group_removed"
    alice.post("/api/messages", json={"group_id": gid, "content": "you are gone"})
    b.nothing("message")
    alice.put(f"/api/groups/{gid}/members/{bob.user_id}")
    b.expect("notice")
    alice.delete(f"/api/groups/{gid}")
    gone = b.expect("notice")
    assert (gone["notice"], gone["group_id"], gone["actor_id"]) == (
        "group_deleted", gid, alice.user_id)


def test_the_stranger_rule(any_server, user, connect):
    alice, bob = user("a"), user("b")
    a = connect(any_server, alice)
    for i in range(3):
        assert a.request({"type": 1, "recipient_id": bob.user_id, "content": f"hi {i}"},
                         "ack")
    err = a.request({"type": 1, "recipient_id": bob.user_id, "content": "hi 4",
                     "client_id": "fourth"}, "error")
    assert (err["code"], err["error"], err["ref"]) == (429, "stranger_limit", "fourth")
    assert len(bob.get(f"/api/messages/{alice.user_id}").json()["messages"]) == 3
    # One-way follow is not enough.
    alice.put(f"/api/users/{bob.user_id}/follow")
    assert a.request({"type": 1, "recipient_id": bob.user_id, "content": "x"}, "error")[
        "code"] == 429
    # Once bob writes back, the limit is gone for good (counted as integers past 10).
    assert bob.post("/api/messages", json={"recipient_id": alice.user_id,
                                           "content": "hello!"}).status_code == 201
    for i in range(12):
        assert a.request({"type": 1, "recipient_id": bob.user_id, "content": f"m{i}"},
                         "ack")["id"]


def test_a_reply_written_while_following_each_other_still_counts(any_server, pair, connect):
    alice, bob = pair
    assert bob.post("/api/messages", json={"recipient_id": alice.user_id,
                                           "content": "hi alice"}).status_code == 201
    bob.delete(f"/api/users/{alice.user_id}/follow")  # no longer both ways
    a = connect(any_server, alice)
    for i in range(6):
        assert "id" in a.request({"type": 1, "recipient_id": bob.user_id, "content": str(i)},
                                 "ack")


def test_mutual_followers_are_not_limited(any_server, pair, connect):
    alice, bob = pair
    a = connect(any_server, alice)
    for i in range(12):
        assert "id" in a.request({"type": 1, "recipient_id": bob.user_id, "content": str(i)},
                                 "ack")


def test_blocked_sender_gets_403_before_the_stranger_limit(any_server, user, connect):
    alice, bob = user("a"), user("b")
    bob.put(f"/api/users/{alice.user_id}/block")
    a = connect(any_server, alice)
    for _ in range(5):
        err = a.request({"type": 1, "recipient_id": bob.user_id, "content": "hey"}, "error")
        assert (err["code"], err["error"]) == (403, "forbidden")
    assert a.request({"type": 6, "recipient_id": bob.user_id}, "error")["code"] == 403


@pytest.mark.parametrize("raw, ref", [
    ("not json", None),
    ("[1, 2]", None),
    ('"text"', None),
    ("{}", None),
    ('{"type": 99}', 99),
    ('{"type": "1", "recipient_id": 2, "content": "x"}', "1"),
    ('{"type": true}', True),
    ('{"type": 1, "content": "x"}', 1),
    ('{"type": 1, "recipient_id": true, "content": "x"}', 1),
    ('{"type": 1, "recipient_id": 1.0, "content": "x"}', 1),
    ('{"type": 1, "recipient_id": 0, "content": "x"}', 1),
    ('{"type": 1, "recipient_id": -3, "content": "x"}', 1),
    ('{"type": 1, "recipient_id": 9007199254740992, "content": "x"}', 1),
    ('{"type": 1, "recipient_id": "7", "content": "x"}', 1),
    ('{"type": 1, "recipient_id": NaN, "content": "x"}', None),
    # JSON, but a number no id can be: refused as a field, so the frame's type is the ref.
    ('{"type": 1, "recipient_id": 1e400, "content": "x"}', 1),
    ('{"type": 1, "recipient_id": ' + "9" * 5000 + ', "content": "x"}', None),
    # An escaped lone surrogate is JSON: the field is refused, with the ref (docs/protocol.md 3.4).
    ('{"type": 1, "recipient_id": 1, "content": "\\ud800"}', 1),
    ('{"type": 1, "recipient_id": 1, "content": "\\ud800", "client_id": "s1"}', "s1"),
    # A client_id JSON can carry but UTF-8 cannot: answered all the same, U+FFFD in the
    # surrogate's place (one that nothing of can be echoed gets no ref).
    ('{"type": 1, "recipient_id": 1, "content": "x", "client_id": "a\\ud800"}', "a\ufffd"),
    ('{"type": 5, "recipient_id": "x", "client_id": "\\udfff"}', "\ufffd"),
    ('{"type": 5, "recipient_id": "x", "client_id": {"k": "\\ud800"}}', None),
    ('{"type": 1, "recipient_id": 1, "content": "x", "client_id": 1' + "0" * 25 + '}', 1e25),
    ('{"type": 1, "recipient_id": 1, "content": ""}', 1),
    ('{"type": 1, "recipient_id": 1, "content": " \\n\\t "}', 1),
    ('{"type": 1, "recipient_id": 1, "content": 5}', 1),
    ('{"type": 1, "recipient_id": 1, "content": "x", "client_id": ""}', ""),
    ('{"type": 1, "recipient_id": 1, "content": "x", "client_id": 7}', 7),
    ('[' * 5000 + ']' * 5000, None),
    ('{"a":' * 3000 + '1' + '}' * 3000, None),
    ('{"type": 5, "recipient_id": 1}', 5),
    ('{"type": 3, "recipient_id": 1, "group": "yes"}', 3),
    # Valid ISO 8601 whose offset moves it past year 1 or 9999.
    ('{"type": 3, "recipient_id": 1, "content": "0001-01-01T00:00:00+01:00"}', 3),
    ('{"type": 3, "recipient_id": 1, "content": "9999-12-31T23:59:59-01:00"}', 3),
    # A mistyped field is 400 even when the peer does not exist.
    ('{"type": 3, "recipient_id": 9007199254740991, "before_id": -1}', 3),
    ('{"type": 5, "recipient_id": 9007199254740991, "last_read_id": "x"}', 5),
])
def test_bad_frames_get_400_and_the_connection_goes_on(any_server, user, connect, raw, ref):
    me = user()
    ws = connect(any_server, me)
    ws.send(raw)
    err = ws.expect("error")
    assert (err["code"], err["error"]) == (400, "bad_request"), err
    assert err["content"]
    assert err.get("ref") == ref
    assert ws.request({"type": 0}, "pong")  # still open


def test_too_long_content_and_binary_frames(any_server, user, connect):
    me, other = user(), user()
    ws = connect(any_server, me)
    err = ws.request({"type": 1, "recipient_id": other.user_id, "content": "x" * 5001,
                      "client_id": "long"}, "error")
    assert (err["code"], err["ref"]) == (400, "long")
    ok = ws.request({"type": 1, "recipient_id": me.user_id, "content": "字" * 5000}, "ack")
    assert ok["id"]
    ws.send(b"\x00\x01binary")
    assert ws.expect("error")["code"] == 400
    assert ws.request({"type": 0}, "pong")


def test_unknown_recipient_is_404(any_server, user, connect):
    ws = connect(any_server, user())
    err = ws.request({"type": 1, "recipient_id": 987654321, "content": "anyone?",
                      "client_id": "c"}, "error")
    assert (err["code"], err["error"], err["ref"]) == (404, "not_found", "c")
    for frame in ({"type": 3, "recipient_id": 987654321}, {"type": 6, "recipient_id": 987654321},
                  {"type": 5, "recipient_id": 987654321, "last_read_id": 1}):
        assert ws.request(frame, "error")["code"] == 404


def test_a_frame_over_the_size_limit_closes_with_1009(any_server, user):
    me = user()
    sock = websocket.create_connection(any_server.ws_url, header=[f"Authorization: Bearer "
                                                                  f"{me.token}"])
    sock.recv()  # hello
    sock.send('{"type":0,"pad":"' + "x" * 70000 + '"}')
    opcode, data = sock.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1009
    sock.close()


def test_upgrade_needs_identity_and_an_allowed_origin(any_server, user):
    me = user()
    base_headers = {"Upgrade": "websocket", "Connection": "Upgrade",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Version": "13"}
    url = any_server.base + "/ws"
    r = requests.get(url, headers=base_headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = requests.get(url + "?token=wrong", headers=base_headers)
    assert r.status_code == 401
    r = requests.get(url + f"?myid={me.user_id}", headers=base_headers)
    assert r.status_code == 401
    # Identity first, also for a request that is no upgrade at all; then 400.
    assert requests.get(url).status_code == 401
    r = requests.get(url, headers={"Authorization": f"Bearer {me.token}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    auth = {**base_headers, "Authorization": f"Bearer {me.token}"}
    host = any_server.base.split("//")[1]
    for origin in ("http://evil.example", "null", f"http://{host}.evil.example",
                   f"https://{host}", "http://127.0.0.1.evil.example",
                   f"http://evil.example/{host}"):
        r = requests.get(url, headers={**auth, "Origin": origin})
        assert r.status_code == 403, origin
        assert r.json()["error"]["code"] == "forbidden"
    ws = WS(any_server.ws_url, me.token, origin=f"http://{host}")
    assert ws.hello["user_id"] == me.user_id
    ws.close()


def test_logout_and_token_revocation_close_open_sockets(any_server, user):
    me = user()
    ws = WS(any_server.ws_url, me.token)
    assert me.delete("/api/tokens/current").status_code == 200
    ws.sock.settimeout(10)
    opcode, data = ws.sock.recv_data(control_frame=True)
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, data = ws.sock.recv_data(control_frame=True)
    assert int.from_bytes(data[:2], "big") == 1008
    ws.close()


def test_permessage_deflate_is_never_negotiated(any_server, user):
    me = user()
    sock = websocket.create_connection(
        any_server.ws_url, header=[f"Authorization: Bearer {me.token}",
                                   "Sec-WebSocket-Extensions: permessage-deflate; "
                                   "client_max_window_bits"])
    assert "sec-websocket-extensions" not in {k.lower() for k in sock.getheaders()}
    assert '"hello"' in sock.recv()
    sock.close()


def test_sockets_opened_all_at_once_each_get_their_own_hello(any_server, user, connect):
    """A burst of connects is read together (``store.coalesce``): each socket still gets
    its own user, unread count and newest id, and a dead token among them only its own
    refusal."""
    sender = user("sender")
    people, expected = [], {}
    for i in range(24):
        person = user("burst")
        ids = [sender.post("/api/messages", json={"recipient_id": person.user_id,
                                                  "content": f"to {i}: {n}"}).json()["id"]
               for n in range(1 + i % 3)]
        people.append(person)
        expected[person.user_id] = (len(ids), max(ids))
    hellos, refused = {}, []
    start = threading.Barrier(len(people) + 1)

    def open_one(person):
        start.wait()
        hellos[person.user_id] = connect(any_server, person).hello

    def open_dead():
        start.wait()
        try:
            WS(any_server.ws_url, token="not-a-token-" + "x" * 40)
        except websocket.WebSocketBadStatusException as exc:
            refused.append(exc.status_code)

    def token_reads():
        text = requests.get(any_server.base + "/metrics", timeout=10).text
        found = dict(line.split() for line in text.splitlines()
                     if line.startswith("chat_token_reads"))
        return int(found["chat_token_reads_total"]), int(found["chat_token_reads_tokens_total"])

    reads_before, tokens_before = token_reads()
    threads = [threading.Thread(target=open_one, args=(p,)) for p in people]
    threads.append(threading.Thread(target=open_dead))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert refused == [401]
    assert {uid: (h["user_id"], h["unread"], h["last_id"]) for uid, h in hellos.items()} == {
        uid: (uid, unread, last) for uid, (unread, last) in expected.items()}
    reads_after, tokens_after = token_reads()
    assert tokens_after - tokens_before == len(people) + 1  # every token was looked up
    if "mysql" in any_server.env["DATABASE_URL"]:  # SQLite's reads never yield: no batch
        assert reads_after - reads_before < len(people) + 1  # some were read together
