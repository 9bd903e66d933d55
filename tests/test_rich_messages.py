"""Replies, edits, recalls, reactions and mentions (docs/protocol.md 3.9, 6.2, 6.6), over the
socket and over HTTP, on MariaDB + Redis and on the embedded defaults."""
from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from tests.support import WS, Api, ServerProcess


def send(ws: WS, to: int, content: str, **extra) -> dict:
    """A private message; its ack."""
    return ws.request({"type": 1, "recipient_id": to, "content": content, **extra}, "ack")


def change(ws: WS, kind: int, message_id: int, answer: str = "ack", **fields) -> dict:
    """An edit (8), recall (9) or reaction (10); the ack or the error."""
    return ws.request({"type": kind, "message_id": message_id, **fields}, answer)


def page(api: Api, path: str) -> dict[int, dict]:
    """A history page by message id."""
    return {m["id"]: m for m in api.get(path).json()["messages"]}


@pytest.fixture
def chat(any_server, pair, connect):
    alice, bob = pair
    return any_server, alice, bob, connect(any_server, alice), connect(any_server, bob)


def test_a_reply_quotes_the_original_and_must_be_in_the_same_conversation(chat, user):
    server, alice, bob, a, b = chat
    original = send(a, bob.user_id, "first line\n" + "x" * 200)
    b.expect("message", id=original["id"])
    reply = send(b, alice.user_id, "answer", reply_to=original["id"])
    live = a.expect("message", id=reply["id"])
    quoted = {"id": original["id"], "sender_id": alice.user_id,
              "excerpt": ("first line\n" + "x" * 200)[:100], "recalled": False}
    assert live["reply_to"] == quoted
    assert page(alice, f"/api/messages/{bob.user_id}")[reply["id"]]["reply_to"] == quoted
    # A message of another conversation, or none at all: 404, and nothing is stored.
    carol = user("carol")
    carol.follow_each_other(alice)
    elsewhere = alice.post("/api/messages", json={"recipient_id": carol.user_id,
                                                  "content": "private"}).json()
    for target in (elsewhere["id"], 9_000_000_000_000):
        err = b.request({"type": 1, "recipient_id": alice.user_id, "content": "x",
                         "reply_to": target, "client_id": f"r{target}"}, "error")
        assert (err["code"], err["ref"]) == (404, f"r{target}")
    err = b.request({"type": 1, "recipient_id": alice.user_id, "content": "x",
                     "reply_to": "7"}, "error")
    assert err["code"] == 400
    assert len(page(bob, f"/api/messages/{alice.user_id}")) == 2


def test_editing_shows_everywhere_and_only_the_sender_may(chat):
    server, alice, bob, a, b = chat
    sent = send(a, bob.user_id, "helo")
    b.expect("message", id=sent["id"])
    reply = send(b, alice.user_id, "what?", reply_to=sent["id"])
    ack = change(a, 8, sent["id"], content="hello", client_id="e1")
    assert ack["message_id"] == sent["id"] and ack["id"] > reply["id"]
    assert ack["client_id"] == "e1"
    update = b.expect("update", id=ack["id"])
    assert (update["update"], update["content"], update["actor_id"], update["sender_id"],
            update["recipient_id"], update["group_id"]) == (
        "edit", "hello", alice.user_id, alice.user_id, bob.user_id, None)
    assert update["edited_at"].endswith("Z")
    history = page(bob, f"/api/messages/{alice.user_id}")
    assert history[sent["id"]]["content"] == "hello"
    assert history[sent["id"]]["edited_at"] == update["edited_at"]
    assert history[reply["id"]]["reply_to"]["excerpt"] == "hello"
    # The same client_id again: the same ack, nothing new.
    assert change(a, 8, sent["id"], content="hello!!", client_id="e1") == ack
    b.nothing("update")
    # Only the sender; not empty; a message one cannot see is 404.
    err = change(b, 8, sent["id"], "error", content="mine now", client_id="x")
    assert (err["code"], err["ref"]) == (403, "x")
    assert change(a, 8, sent["id"], "error", content="  ")["code"] == 400
    # Over HTTP, the same rules and the same ack body.
    r = alice.patch(f"/api/messages/{sent['id']}", json={"content": "hello, bob"})
    assert r.status_code == 200 and r.json()["message_id"] == sent["id"]
    assert b.expect("update")["content"] == "hello, bob"
    assert bob.patch(f"/api/messages/{sent['id']}", json={"content": "no"}).status_code == 403


def test_someone_who_cannot_see_a_message_gets_404_whatever_else_is_wrong(chat, user):
    server, alice, bob, a, b = chat
    sent = send(a, bob.user_id, "between us")
    outsider = user("eve")
    for fields in ({"content": ""}, {"content": "x"}):
        assert outsider.patch(f"/api/messages/{sent['id']}", json=fields).status_code == 404
    assert outsider.delete(f"/api/messages/{sent['id']}").status_code == 404
    assert outsider.put(f"/api/messages/{sent['id']}/reactions/{quote('👍')}").status_code == 404
    assert outsider.put(f"/api/messages/{sent['id']}/reactions/text").status_code == 404
    # bob can see it: he may not edit it, whatever the content (403 before the field's 400).
    assert bob.patch(f"/api/messages/{sent['id']}", json={"content": ""}).status_code == 403


def test_a_recall_removes_the_text_everywhere_and_is_final(chat):
    server, alice, bob, a, b = chat
    secret = send(a, bob.user_id, "my password is hunter2")
    b.expect("message", id=secret["id"])
    reply = send(b, alice.user_id, "!!", reply_to=secret["id"])
    a.expect("message", id=reply["id"])
    assert bob.get("/api/unread").json()["total"] == 1  # the secret, not read yet
    unread_before = alice.get("/api/unread").json()["total"]
    edit = change(a, 8, secret["id"], content="my password is hunter3")
    ack = change(a, 9, secret["id"], client_id="rc")
    assert ack["id"] > edit["id"] and ack["message_id"] == secret["id"]
    update = b.expect("update", id=ack["id"])
    assert update["update"] == "recall" and update["actor_id"] == alice.user_id
    history = page(bob, f"/api/messages/{alice.user_id}")
    gone = history[secret["id"]]
    assert (gone["content"], gone["recalled"], gone["reactions"], gone["attachments"]) == (
        "", True, [], [])
    assert history[reply["id"]]["reply_to"] == {"id": secret["id"], "sender_id": alice.user_id,
                                                "excerpt": "", "recalled": True}
    synced = bob.get("/api/sync?since_id=0").json()
    assert "hunter" not in str(synced), "the text is kept somewhere"
    earlier = [u for u in synced["updates"] if u["id"] == edit["id"]]
    assert earlier and earlier[0]["content"] == "" and earlier[0]["edited_at"], earlier
    # Final: recalling again changes nothing; it cannot be edited or reacted to.
    again = change(a, 9, secret["id"])
    assert again["id"] == secret["id"]
    assert change(a, 8, secret["id"], "error", content="back")["code"] == 403
    assert change(b, 10, secret["id"], "error", emoji="👍")["code"] == 403
    assert bob.delete(f"/api/messages/{secret['id']}").status_code == 403
    assert bob.get("/api/unread").json()["total"] == 0  # recalled: no longer unread
    assert alice.get("/api/unread").json()["total"] == unread_before


def test_recalled_messages_are_not_unread(chat):
    server, alice, bob, a, b = chat
    kept, gone = send(a, bob.user_id, "kept"), send(a, bob.user_id, "gone")
    change(a, 9, gone["id"])
    unread = bob.get("/api/unread").json()
    assert unread["total"] == 1
    fetched = b.request({"type": 2}, "unread")["messages"]
    assert [m["id"] for m in fetched] == [kept["id"]]


def test_reactions_add_up_once_per_person_and_emoji(chat, user):
    server, alice, bob, a, b = chat
    sent = send(a, bob.user_id, "lunch?")
    up = change(b, 10, sent["id"], emoji="👍", client_id="r1")
    frame = a.expect("update", id=up["id"])
    assert (frame["update"], frame["emoji"], frame["on"]) == ("reaction", "👍", True)
    assert frame["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [bob.user_id]}]
    assert change(b, 10, sent["id"], emoji="👍")["id"] == sent["id"]  # already there
    heart = change(a, 10, sent["id"], emoji="❤")  # unqualified: stored fully qualified
    assert b.expect("update", id=heart["id"])["emoji"] == "❤️"
    r = alice.put(f"/api/messages/{sent['id']}/reactions/{quote('👍')}")
    assert r.status_code == 200
    reactions = page(bob, f"/api/messages/{alice.user_id}")[sent["id"]]["reactions"]
    assert reactions == [{"emoji": "👍", "count": 2, "user_ids": [bob.user_id, alice.user_id]},
                         {"emoji": "❤️", "count": 1, "user_ids": [alice.user_id]}]
    for bad in (":)", "a", "中", "👍👍", " ", "", 5):
        assert change(b, 10, sent["id"], "error", emoji=bad)["code"] == 400, bad
    off = change(b, 10, sent["id"], emoji="👍", on=False)
    assert off["id"] != sent["id"]
    assert change(b, 10, sent["id"], emoji="👍", on=False)["id"] == sent["id"]
    assert bob.delete(f"/api/messages/{sent['id']}/reactions/{quote('❤️')}").json()["id"] == \
        sent["id"]  # bob never reacted with a heart: nothing to take back


def test_a_message_carries_at_most_20_different_emoji(chat):
    server, alice, bob, a, b = chat
    sent = send(a, bob.user_id, "vote")
    faces = ["😀", "😃", "😄", "😁", "😆", "😅", "😂", "🤣", "😊", "😇",
             "🙂", "🙃", "😉", "😌", "😍", "🥰", "😘", "😗", "😙", "😚"]
    for face in faces:
        change(b, 10, sent["id"], emoji=face)
    err = change(b, 10, sent["id"], "error", emoji="🤔", client_id="21st")
    assert (err["code"], err["error"], err["ref"]) == (409, "conflict", "21st")
    assert change(a, 10, sent["id"], emoji="😀")  # an emoji already there still adds up


def test_mentions_in_groups(any_server, user, connect):
    owner, member, outsider = user("owner"), user("member"), user("outsider")
    member.put(f"/api/users/{owner.user_id}/follow")
    gid = owner.post("/api/groups", json={"name": "Team"}).json()["id"]
    assert owner.put(f"/api/groups/{gid}/members/{member.user_id}").status_code == 200
    o, m = connect(any_server, owner), connect(any_server, member)
    ack = o.request({"type": 4, "recipient_id": gid, "content": "@member look",
                     "mentions": [member.user_id, member.user_id]}, "ack")
    live = m.expect("message", id=ack["id"])
    assert (live["mentions"], live["mention_all"]) == ([member.user_id], False)
    everyone = o.request({"type": 4, "recipient_id": gid, "content": "@all meeting",
                          "mention_all": True}, "ack")
    assert m.expect("message", id=everyone["id"])["mention_all"] is True
    conv = [c for c in member.get("/api/conversations").json()["conversations"]
            if c.get("group_id") == gid][0]
    assert (conv["unread"], conv["mentions"]) == (2, 2)
    unread = [c for c in member.get("/api/unread").json()["conversations"]
              if c.get("group_id") == gid][0]
    assert unread["mentions"] == 2
    # Not a member: 400. @all by a non-owner: 403. Mentions in a private message: 400.
    err = o.request({"type": 4, "recipient_id": gid, "content": "hey",
                     "mentions": [outsider.user_id], "client_id": "m1"}, "error")
    assert (err["code"], err["ref"]) == (400, "m1")
    err = m.request({"type": 4, "recipient_id": gid, "content": "@all",
                     "mention_all": True}, "error")
    assert err["code"] == 403
    err = o.request({"type": 1, "recipient_id": member.user_id, "content": "x",
                     "mentions": [member.user_id]}, "error")
    assert err["code"] == 400
    assert o.request({"type": 4, "recipient_id": gid, "content": "many",
                      "mentions": list(range(1, 52))}, "error")["code"] == 400
    # A malformed @all is one of the message's fields: refused as such from a member (400),
    # while someone outside the group, or writing to nobody, hears of that first.
    err = m.request({"type": 4, "recipient_id": gid, "content": "@all", "mention_all": 1,
                     "client_id": "m2"}, "error")
    assert (err["code"], err["ref"]) == (400, "m2") and "mention_all" in err["content"]
    x = connect(any_server, outsider)
    assert x.request({"type": 4, "recipient_id": gid, "content": "@all",
                      "mention_all": "yes"}, "error")["code"] == 403
    assert x.request({"type": 1, "recipient_id": 10**9, "content": "x",
                      "mentions": [member.user_id]}, "error")["code"] == 404
    # Reading the group clears its mentions.
    member.post("/api/read", json={"group_id": gid, "last_read_id": everyone["id"]})
    conv = [c for c in member.get("/api/conversations").json()["conversations"]
            if c.get("group_id") == gid][0]
    assert (conv["unread"], conv["mentions"]) == (0, 0)


def test_the_group_owner_may_take_back_any_message_and_members_only_their_own(any_server,
                                                                            user, connect):
    owner, member, other = user("owner"), user("member"), user("other")
    for u in (member, other):
        u.put(f"/api/users/{owner.user_id}/follow")
    gid = owner.post("/api/groups", json={"name": "Club"}).json()["id"]
    for u in (member, other):
        owner.put(f"/api/groups/{gid}/members/{u.user_id}")
    m, x = connect(any_server, member), connect(any_server, other)
    said = m.request({"type": 4, "recipient_id": gid, "content": "rude"}, "ack")
    x.expect("message", id=said["id"])
    assert change(x, 9, said["id"], "error")["code"] == 403
    r = owner.delete(f"/api/messages/{said['id']}")
    assert r.status_code == 200
    assert x.expect("update")["update"] == "recall"
    # A member who left can no longer see the group's messages: 404.
    assert other.delete(f"/api/groups/{gid}/members/{other.user_id}").status_code == 200
    assert other.put(f"/api/messages/{said['id']}/reactions/{quote('👍')}").status_code == 404


def test_a_client_that_syncs_after_an_outage_sees_what_a_connected_one_saw(chat):
    """Apply messages and updates from sync in id order: the same conversation as live."""
    server, alice, bob, a, b = chat
    watcher = WS(server.ws_url, bob.token)  # bob's second device, connected throughout
    last = b.hello["last_id"]
    b.close()  # bob's phone goes offline
    first = send(a, bob.user_id, "one")
    second = send(a, bob.user_id, "two")
    change(a, 8, first["id"], content="one (edited)")
    change(a, 10, second["id"], emoji="🎉")
    change(watcher, 10, second["id"], emoji="🎉")
    change(a, 9, second["id"])
    third = send(a, bob.user_id, "three", reply_to=first["id"])

    def apply(state: dict, frame: dict) -> None:
        if frame["kind"] == "message":
            state[frame["id"]] = {k: frame[k] for k in ("content", "edited_at", "recalled",
                                                        "reactions", "reply_to")}
        elif frame["kind"] == "update" and frame["message_id"] in state:
            target = state[frame["message_id"]]
            if frame["update"] == "edit":
                target.update(content=frame["content"], edited_at=frame["edited_at"])
            elif frame["update"] == "recall":
                target.update(content="", recalled=True, reactions=[])
            else:
                target["reactions"] = frame["reactions"]

    live: dict = {}
    deadline = time.time() + 10
    while third["id"] not in live and time.time() < deadline:
        apply(live, watcher.recv())
    caught_up: dict = {}
    phone = WS(server.ws_url, bob.token)
    since = last
    while True:
        synced = phone.request({"type": 7, "since_id": since, "limit": 2}, "sync")
        frames = sorted(synced["messages"] + synced["updates"], key=lambda f: f["id"])
        for frame in frames:
            apply(caught_up, frame)
        since = max([since] + [f["id"] for f in frames])
        if not synced["has_more"]:
            break
    assert caught_up == live
    assert caught_up[second["id"]]["recalled"] is True
    assert caught_up[first["id"]]["content"] == "one (edited)"
    assert phone.hello["last_id"] >= third["id"]
    # hello.last_id covers updates as well.
    newest = change(a, 10, third["id"], emoji="👀")
    assert WS(server.ws_url, bob.token).hello["last_id"] == newest["id"]


@pytest.fixture(scope="module")
def short_windows(sqlite_url):
    server = ServerProcess({"DATABASE_URL": sqlite_url, "REDIS_URL": "",
                            "CHAT_EDIT_WINDOW": "1", "CHAT_RECALL_WINDOW": "1"}).start()
    yield server
    server.stop()


def test_edits_and_recalls_close_after_their_windows_but_owners_may_still_recall(
        short_windows):
    server = short_windows
    alice, bob = Api.new_user(server.base, "a"), Api.new_user(server.base, "b")
    alice.follow_each_other(bob)
    gid = alice.post("/api/groups", json={"name": "w"}).json()["id"]
    alice.put(f"/api/groups/{gid}/members/{bob.user_id}")
    private = alice.post("/api/messages", json={"recipient_id": bob.user_id,
                                                "content": "quick"}).json()
    in_group = bob.post("/api/messages", json={"group_id": gid, "content": "old"}).json()
    time.sleep(1.5)
    assert alice.patch(f"/api/messages/{private['id']}", json={"content": "late"}
                       ).status_code == 403
    assert alice.delete(f"/api/messages/{private['id']}").status_code == 403
    assert bob.delete(f"/api/messages/{in_group['id']}").status_code == 403
    assert alice.delete(f"/api/messages/{in_group['id']}").status_code == 200  # the owner


def test_edits_recalls_and_reactions_count_against_the_flood_limit(sqlite_url):
    """Every change, by frame or over HTTP, is one more action in the minute's allowance."""
    server = ServerProcess({"DATABASE_URL": sqlite_url, "REDIS_URL": "",
                            "CHAT_RATE_PER_MINUTE": "7"}).start()
    try:
        alice, bob = Api.new_user(server.base, "a"), Api.new_user(server.base, "b")
        alice.follow_each_other(bob)  # alice's follow is her first action of the minute
        a = WS(server.ws_url, alice.token)
        sent = send(a, bob.user_id, "one")                                      # 2
        change(a, 8, sent["id"], content="one, edited")                         # 3
        change(a, 10, sent["id"], emoji="🎉")                                   # 4
        assert alice.put(f"/api/messages/{sent['id']}/reactions/{quote('👍')}"
                         ).status_code == 200                                    # 5
        assert alice.patch(f"/api/messages/{sent['id']}",
                           json={"content": "two"}).status_code == 200           # 6
        change(a, 10, sent["id"], emoji="👀")                                   # 7
        refused = change(a, 9, sent["id"], answer="error", client_id="r7")
        assert (refused["code"], refused["error"], refused["ref"]) == (429, "rate_limited", "r7")
        answer = alice.delete(f"/api/messages/{sent['id']}")
        assert answer.status_code == 429 and answer.json()["error"]["code"] == "rate_limited"
        # Nothing refused was done: the message is not recalled, its text is the last edit.
        [message] = alice.get(f"/api/messages/{bob.user_id}").json()["messages"]
        assert (message["recalled"], message["content"]) == (False, "two")
        a.close()
    finally:
        server.stop()
