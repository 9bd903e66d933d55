"""Reading (``chat.service.reading``): history, hello, conversations, read cursors, unread,
sync and typing."""
from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from sqlalchemy import update

from chat.errors import BadRequest, Forbidden, NotFound
from chat.extensions import db
from chat.store.models import Message
from tests.inprocess import add_group, add_user, block, follow_each_other


@pytest.fixture
def chat(send):
    """Alice and Bob, who follow each other, and ``say(sender, n)`` to write n messages."""
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)

    def say(sender: int, n: int = 1, to: int | None = None, group: int | None = None) -> list[int]:
        peer = to if to is not None else (bob if sender == alice else alice)
        return [send(sender, to=None if group else peer, group=group, content=f"{sender}:{i}")["id"]
                for i in range(n)]
    return alice, bob, say


def frames(published) -> list[tuple[str, str | None, dict]]:
    return [(e.channel, e.exclude_conn, orjson.loads(e.frame)) for e in published.events]


# -- history ---------------------------------------------------------------------------------


def test_history_pages_back_oldest_first_and_says_when_there_is_more(services, chat):
    alice, bob, say = chat
    ids = say(alice, 3) + say(bob, 2)
    page = services.reading.history(bob, alice, False, limit=2)
    assert [m["id"] for m in page["messages"]] == ids[3:]
    assert page["has_more"] is True and page["recipient_id"] == alice and page["group"] is False
    older = services.reading.history(bob, alice, False, before_id=ids[3], limit=2)
    assert [m["id"] for m in older["messages"]] == ids[1:3] and older["has_more"] is True
    oldest = services.reading.history(bob, alice, False, before_id=ids[1], limit=2)
    assert [m["id"] for m in oldest["messages"]] == ids[:1] and oldest["has_more"] is False
    assert services.reading.history(alice, bob, False, before_id=0)["messages"] == []


def test_history_holds_only_that_conversation(services, chat):
    alice, bob, say = chat
    carol = add_user()
    follow_each_other(alice, carol)
    say(alice, 2, to=carol)
    mine = say(alice, 1)
    assert [m["id"] for m in services.reading.history(bob, alice, False)["messages"]] == mine


def test_the_time_cursor_is_strict(services, chat):
    alice, bob, say = chat
    first, second = say(alice, 2)
    db.session.execute(update(Message).where(Message.id == first)
                       .values(created_at=db.session.get(Message, second).created_at
                               - timedelta(minutes=5)))
    db.session.commit()
    moment = db.session.get(Message, second).created_at
    page = services.reading.history(bob, alice, False,
                                    before_time=moment.strftime("%Y-%m-%d %H:%M:%S.%f"))
    assert [m["id"] for m in page["messages"]] == [first]


@pytest.mark.parametrize("kw", [{"limit": 0}, {"limit": 101}, {"before_id": -1},
                                {"before_id": 5, "before_time": "2026-01-01 00:00:00"},
                                {"before_time": "not a time"}])
def test_a_mistyped_history_field_is_400_after_the_peer_is_found(services, kw):
    me = add_user()
    with pytest.raises(BadRequest):
        services.reading.history(me, add_user(), False, **kw)
    # A cursor is an id (checked first); the other fields wait for the peer (404).
    with pytest.raises(BadRequest if kw == {"before_id": -1} else NotFound):
        services.reading.history(me, 10**9, False, **kw)


def test_group_history_is_for_members_only(services, chat):
    alice, bob, say = chat
    gid = add_group(alice)
    say(alice, 1, group=gid)
    assert len(services.reading.history(alice, gid, True)["messages"]) == 1
    with pytest.raises(Forbidden):
        services.reading.history(bob, gid, True)
    with pytest.raises(NotFound):
        services.reading.history(bob, 10**9, True)
    with pytest.raises(NotFound):
        services.reading.history(bob, 10**9, False)


# -- hello, conversations, unread --------------------------------------------------------------


def test_hello_counts_what_others_wrote_and_names_the_groups(services, chat):
    alice, bob, say = chat
    gid = add_group(bob, alice)
    say(alice, 2)
    say(bob, 3)
    last = say(bob, 1, group=gid)[0]
    unread, last_id, groups = services.reading.hello_state(alice)
    assert (unread, last_id, groups) == (4, last, [gid])
    assert services.reading.hello_state(add_user()) == (0, 0, [])


def test_conversations_newest_first_with_unread_and_names(services, chat):
    alice, bob, say = chat
    gid = add_group(bob, alice, name="Team")
    say(bob, 1, group=gid)
    last = say(bob, 2)[-1]
    convs = services.reading.conversations(alice)
    assert [(c["kind"], c["unread"]) for c in convs] == [("private", 2), ("group", 1)]
    assert convs[0]["user_id"] == bob and convs[0]["last_message"]["id"] == last
    assert convs[1]["name"] == "Team"
    summary = services.reading.unread_summary(alice)
    assert summary["total"] == 3 and len(summary["conversations"]) == 2
    assert services.reading.unread_summary(bob)["total"] == 0  # their own messages


def test_a_private_chat_with_nothing_in_it_is_not_listed(services, chat):
    alice, _, _ = chat
    assert services.reading.conversations(alice) == []


# -- read cursors ------------------------------------------------------------------------------


def test_mark_read_clamps_never_goes_back_and_tells_both_sides(services, published, chat):
    alice, bob, say = chat
    ids = say(alice, 3)
    published.events.clear()
    read = services.reading.mark_read(bob, alice, False, 10**12, origin="bob-tab-1")
    assert read == {"kind": "read", "code": 200, "user_id": bob, "recipient_id": alice,
                    "group_id": None, "last_read_id": ids[-1]}
    assert frames(published) == [(f"user:{bob}", "bob-tab-1", read), (f"user:{alice}", None, read)]
    back = services.reading.mark_read(bob, alice, False, ids[0])
    assert back["last_read_id"] == ids[-1]  # never backwards
    assert services.reading.hello_state(bob)[0] == 0


def test_a_read_receipt_never_reaches_someone_who_blocked_the_reader(services, published, chat):
    alice, bob, say = chat
    last = say(alice, 1)[0]
    block(alice, bob)
    published.events.clear()
    services.reading.mark_read(bob, alice, False, last, origin="tab")
    assert [c for c, _, _ in frames(published)] == [f"user:{bob}"]


def test_a_group_read_goes_only_to_the_readers_own_connections(services, published, chat):
    alice, bob, say = chat
    gid = add_group(alice, bob)
    last = say(alice, 2, group=gid)[-1]
    published.events.clear()
    services.reading.mark_read(bob, gid, True, last, origin="tab")
    assert [(c, x) for c, x, _ in frames(published)] == [(f"user:{bob}", "tab")]


@pytest.mark.parametrize("value", [None, -1, "5", 1.5])
def test_mark_read_needs_a_cursor(services, chat, value):
    alice, bob, _ = chat
    with pytest.raises(BadRequest):
        services.reading.mark_read(bob, alice, False, value)


def test_fetch_unread_answers_oldest_first_and_marks_read(services, published, chat):
    alice, bob, say = chat
    gid = add_group(alice, bob)
    ids = say(alice, 2) + say(alice, 1, group=gid) + say(alice, 1)
    say(bob, 1)  # bob's own: never unread for bob
    published.events.clear()
    answer = services.reading.fetch_unread(bob, origin="tab")
    assert [m["id"] for m in answer["messages"]] == ids and answer["has_more"] is False
    assert services.reading.fetch_unread(bob)["messages"] == []
    receipts = {(c, f["last_read_id"]) for c, _, f in frames(published)}
    assert receipts == {(f"user:{bob}", ids[-1]), (f"user:{alice}", ids[-1]),
                        (f"user:{bob}", ids[2])}


def test_sync_returns_everything_after_the_cursor(services, chat, send):
    alice, bob, say = chat
    gid = add_group(alice, bob)
    ids = say(alice, 2) + say(bob, 1, group=gid) + say(bob, 1)
    outsider = add_user()
    send(outsider, group=add_group(outsider), content="not bob's group")
    say(alice, 1, to=alice)  # a note to self: not bob's either
    answer = services.reading.sync(bob, ids[0], limit=2)
    assert [m["id"] for m in answer["messages"]] == ids[1:3] and answer["has_more"] is True
    rest = services.reading.sync(bob, ids[2])
    assert [m["id"] for m in rest["messages"]] == ids[3:] and rest["has_more"] is False
    for bad in ({"since_id": None}, {"since_id": -1}, {"since_id": 0, "limit": 1001}):
        with pytest.raises(BadRequest):
            services.reading.sync(bob, **bad)


# -- typing ------------------------------------------------------------------------------------


def test_typing_goes_to_the_peer_at_once_and_never_back(services, published, chat):
    alice, bob, _ = chat
    services.reading.typing(alice, bob, False)
    assert frames(published) == [(f"user:{bob}", None, {
        "kind": "typing", "code": 200, "user_id": alice, "recipient_id": bob, "group_id": None})]
    services.reading.typing(alice, alice, False)  # a note to self: nobody to tell
    assert len(published.events) == 1


def test_typing_in_a_group_skips_the_typist(services, published, chat):
    alice, bob, _ = chat
    gid = add_group(alice, bob)
    services.reading.typing(bob, gid, True)
    [event] = published.events
    assert (event.channel, event.exclude_user) == (f"group:{gid}", bob)


def test_typing_refusals(services, published, chat):
    alice, bob, _ = chat
    gid = add_group(alice)
    block(alice, bob)
    with pytest.raises(Forbidden):
        services.reading.typing(bob, alice, False)
    with pytest.raises(Forbidden):
        services.reading.typing(bob, gid, True)
    with pytest.raises(NotFound):
        services.reading.typing(bob, 10**9, False)
    assert published.events == []
