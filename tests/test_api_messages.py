"""Messaging over HTTP (docs/protocol.md 3.4), on MariaDB + Redis and on SQLite."""
from __future__ import annotations


def test_post_message_acks_201_and_delivers_live(any_server, pair, connect):
    alice, bob = pair
    b = connect(any_server, bob)
    r = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "via http",
                                          "client_id": "h-1"})
    assert r.status_code == 201
    ack = r.json()
    assert ack["kind"] == "ack" and ack["code"] == 200 and ack["online"] is True
    assert ack["client_id"] == "h-1" and ack["content"] == "recipient online"
    msg = b.expect("message")
    assert msg["id"] == ack["id"] and msg["content"] == "via http"
    # The sender's own sockets get it too (it came from no socket of theirs).
    a = connect(any_server, alice)
    alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "second"})
    assert a.expect("message")["content"] == "second"


def test_post_message_validation(pair):
    alice, bob = pair
    cases = [
        {}, {"content": "x"}, {"recipient_id": bob.user_id},
        {"recipient_id": bob.user_id, "group_id": 1, "content": "x"},
        {"recipient_id": True, "content": "x"}, {"recipient_id": "2", "content": "x"},
        {"recipient_id": bob.user_id, "content": ""},
        {"recipient_id": bob.user_id, "content": "   "},
        {"recipient_id": bob.user_id, "content": "x" * 5001},
        {"recipient_id": bob.user_id, "content": "x", "client_id": "c" * 65},
        {"recipient_id": bob.user_id, "content": "x", "client_id": ""},
    ]
    for payload in cases:
        r = alice.post("/api/messages", json=payload)
        assert r.status_code == 400, payload
        assert r.json()["error"]["code"] == "bad_request"
    r = alice.post("/api/messages", json={"recipient_id": 987654321, "content": "x"})
    assert r.status_code == 404
    r = alice.post("/api/messages", json={"group_id": 987654321, "content": "x"})
    assert r.status_code == 404
    assert bob.get(f"/api/messages/{alice.user_id}").json()["messages"] == []


def test_history_pages_and_has_more(pair):
    alice, bob = pair
    ids = [alice.post("/api/messages", json={"recipient_id": bob.user_id,
                                             "content": f"{i}"}).json()["id"] for i in range(7)]
    page = bob.get(f"/api/messages/{alice.user_id}", params={"limit": 3}).json()
    assert [m["id"] for m in page["messages"]] == ids[-3:] and page["has_more"] is True
    page = bob.get(f"/api/messages/{alice.user_id}",
                   params={"limit": 4, "before_id": ids[-3]}).json()
    assert [m["id"] for m in page["messages"]] == ids[:4] and page["has_more"] is False
    page = bob.get(f"/api/messages/{alice.user_id}", params={"before_id": 0}).json()
    assert page == {"messages": [], "has_more": False}
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"before_id": "-1"},
                   {"before_id": "1.5"}, {"limit": ""}, {"before_id": ""}):
        assert bob.get(f"/api/messages/{alice.user_id}", params=params).status_code == 400


def test_a_private_history_is_only_for_its_two_people(pair, user):
    alice, bob = pair
    eve = user("eve")
    alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "secret"})
    # Eve can only ever see her own chat with alice, which is empty.
    assert eve.get(f"/api/messages/{alice.user_id}").json()["messages"] == []
    assert eve.get(f"/api/messages/{bob.user_id}").json()["messages"] == []
    assert eve.get("/api/sync", params={"since_id": 0}).json()["messages"] == []
    assert eve.get("/api/unread").json()["total"] == 0


def test_unread_read_and_conversations(pair, user):
    alice, bob = pair
    carol = user("carol")
    gid = carol.post("/api/groups", json={"name": "club"}).json()["id"]
    bob.put(f"/api/groups/{gid}/members/{bob.user_id}")
    m1 = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "a1"}).json()
    m2 = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "a2"}).json()
    g1 = carol.post("/api/messages", json={"group_id": gid, "content": "g1"}).json()
    bob.post("/api/messages", json={"group_id": gid, "content": "mine"})
    unread = bob.get("/api/unread").json()
    assert unread["total"] == 3
    by_kind = {c["kind"]: c for c in unread["conversations"]}
    assert by_kind["private"]["unread"] == 2 and by_kind["private"]["user_id"] == alice.user_id
    assert by_kind["private"]["name"] == alice.username
    assert by_kind["group"]["unread"] == 1 and by_kind["group"]["name"] == "club"
    # Fetching unread over HTTP marks nothing read.
    assert bob.get("/api/unread").json()["total"] == 3
    convs = bob.get("/api/conversations").json()["conversations"]
    assert [c["kind"] for c in convs] == ["group", "private"]  # newest first
    assert convs[0]["last_message"]["content"] == "mine"
    assert convs[1]["last_message"]["id"] == m2["id"]
    r = bob.post("/api/read", json={"recipient_id": alice.user_id, "last_read_id": m1["id"]})
    assert r.status_code == 200 and r.json()["last_read_id"] == m1["id"]
    assert bob.get("/api/unread").json()["total"] == 2
    r = bob.post("/api/read", json={"group_id": gid, "last_read_id": 2**53 - 1})
    assert r.json()["last_read_id"] > g1["id"] - 1
    unread = bob.get("/api/unread").json()
    assert unread["total"] == 1 and [c["kind"] for c in unread["conversations"]] == ["private"]
    for bad in ({"last_read_id": 1}, {"recipient_id": alice.user_id},
                {"recipient_id": alice.user_id, "group_id": gid, "last_read_id": 1},
                {"recipient_id": alice.user_id, "last_read_id": -1}):
        assert bob.post("/api/read", json=bad).status_code == 400, bad
    assert carol.post("/api/read", json={"recipient_id": 987654321,
                                         "last_read_id": 1}).status_code == 404
    outsider = user("out")
    assert outsider.post("/api/read", json={"group_id": gid,
                                            "last_read_id": 1}).status_code == 403


def test_http_read_pushes_read_frames(any_server, pair, connect):
    alice, bob = pair
    a = connect(any_server, alice)
    m = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "x"}).json()
    a.expect("message")
    bob.post("/api/read", json={"recipient_id": alice.user_id, "last_read_id": m["id"]})
    receipt = a.expect("read")
    assert (receipt["user_id"], receipt["last_read_id"]) == (bob.user_id, m["id"])


def test_sync_over_http(pair):
    alice, bob = pair
    ids = [alice.post("/api/messages", json={"recipient_id": bob.user_id,
                                             "content": str(i)}).json()["id"] for i in range(5)]
    body = bob.get("/api/sync", params={"since_id": ids[1], "limit": 2}).json()
    assert body["kind"] == "sync" and [m["id"] for m in body["messages"]] == ids[2:4]
    assert body["has_more"] is True
    assert bob.get("/api/sync").status_code == 400
    assert bob.get("/api/sync", params={"since_id": "abc"}).status_code == 400
    assert bob.get("/api/sync", params={"since_id": 0, "limit": 1001}).status_code == 400
    assert bob.get("/api/sync", params={"since_id": 0, "limit": ""}).status_code == 400
    assert bob.get("/api/sync", params={"since_id": ""}).status_code == 400


def test_group_history_is_for_members(pair, user):
    alice, bob = pair
    gid = alice.post("/api/groups", json={"name": "g"}).json()["id"]
    alice.post("/api/messages", json={"group_id": gid, "content": "inside"})
    assert bob.get(f"/api/groups/{gid}/messages").status_code == 403
    bob.put(f"/api/groups/{gid}/members/{bob.user_id}")
    msgs = bob.get(f"/api/groups/{gid}/messages").json()["messages"]
    assert [m["content"] for m in msgs] == ["inside"]
    assert bob.get("/api/groups/987654321/messages").status_code == 404


def test_text_round_trips_exactly(pair):
    alice, bob = pair
    samples = ["emoji 😀👩‍👩‍👧‍👦🏳️‍🌈", "中文 漢字 𠀀𪚥", "<b>not html</b> & \"quotes\"",
               "  leading and trailing  ", "line\nbreaks\r\n\ttabs", "\u200b zero width",
               "𝕌𝕟𝕚𝕔𝕠𝕕𝕖"]
    for text in samples:
        assert alice.post("/api/messages", json={"recipient_id": bob.user_id,
                                                 "content": text}).status_code == 201
    got = [m["content"] for m in bob.get(f"/api/messages/{alice.user_id}",
                                         params={"limit": 20}).json()["messages"]]
    assert got == samples
