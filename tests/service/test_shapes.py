"""Wire shapes (``chat.service.shapes``): every frame's fields, as docs/protocol.md names them."""
from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import orjson

from chat.service import shapes


def row(**kw):
    base = dict(id=1235, sender_id=7, sender_name="alice", recipient_id=9, group_id=None,
                content="hi", client_id="a1", created_at=datetime(2026, 11, 27, 10, 0, 0, 123456),
                reply_to_id=None, reply_sender_id=None, reply_excerpt=None, reply_recalled=None,
                mentions=None, mention_all=False, attachments=None, edited_at=None,
                recalled=False, reactions=None)
    return SimpleNamespace(**{**base, **kw})


def test_iso_is_utc_with_milliseconds_and_z():
    assert shapes.iso(datetime(2026, 11, 27, 10, 0, 0, 123456)) == "2026-11-27T10:00:00.123Z"
    assert shapes.iso(datetime(50, 1, 2, 3, 4, 5)) == "0050-01-02T03:04:05.000Z"
    assert shapes.iso(None) is None
    a, b = datetime(2026, 1, 1), datetime(2026, 1, 2)
    assert [shapes.iso(a), shapes.iso(b), shapes.iso(a)] == [
        "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z", "2026-01-01T00:00:00.000Z"]


def test_a_private_message_frame():
    assert shapes.message_frame(row()) == {
        "kind": "message", "code": 200, "id": 1235, "from": "7->9", "sender_id": 7,
        "sender_name": "alice", "recipient_id": 9, "group_id": None, "content": "hi",
        "created_at": "2026-11-27T10:00:00.123Z", "client_id": "a1", "reply_to": None,
        "mentions": [], "mention_all": False, "attachments": [], "edited_at": None,
        "recalled": False, "reactions": []}


def test_a_recalled_message_frame_keeps_no_trace_of_what_it_said():
    frame = shapes.message_frame(row(
        recalled=True, content="secret", mentions="[3]", mention_all=True,
        attachments='[{"id": 1}]', reactions='[["👍", [3]]]',
        edited_at=datetime(2026, 11, 27, 10, 1), reply_to_id=5, reply_sender_id=3,
        reply_excerpt="the original", reply_recalled=True))
    assert (frame["content"], frame["mentions"], frame["mention_all"], frame["attachments"],
            frame["reactions"], frame["recalled"]) == ("", [], False, [], [], True)
    assert frame["reply_to"] == {"id": 5, "sender_id": 3, "excerpt": "", "recalled": True}


def test_reactions_and_a_reply_show_as_the_wire_names_them():
    frame = shapes.message_frame(row(reactions='[["👍", [3, 9]]]', reply_to_id=5,
                                     reply_sender_id=3, reply_excerpt="first line",
                                     reply_recalled=False))
    assert frame["reactions"] == [{"emoji": "👍", "count": 2, "user_ids": [3, 9]}]
    assert frame["reply_to"] == {"id": 5, "sender_id": 3, "excerpt": "first line",
                                 "recalled": False}


def test_a_group_message_frame_names_the_group_in_from():
    frame = shapes.message_frame(row(recipient_id=None, group_id=4))
    assert frame["from"] == "7->g4" and frame["recipient_id"] is None and frame["group_id"] == 4


def test_acks_say_online_for_private_messages_only():
    assert shapes.ack_frame(row(), online=True) == {
        "kind": "ack", "code": 200, "id": 1235, "client_id": "a1",
        "created_at": "2026-11-27T10:00:00.123Z", "recipient_id": 9, "group_id": None,
        "online": True, "content": "recipient online"}
    offline = shapes.ack_frame(row(), online=None)
    assert offline["online"] is False and offline["content"] == "recipient offline"
    group = shapes.ack_frame(row(recipient_id=None, group_id=4), online=True)
    assert "online" not in group and group["content"] == "sent"


def test_read_and_typing_frames():
    assert shapes.read_frame(9, 7, None, 1235) == {
        "kind": "read", "code": 200, "user_id": 9, "recipient_id": 7, "group_id": None,
        "last_read_id": 1235}
    assert shapes.typing_frame(7, None, 4) == {
        "kind": "typing", "code": 200, "user_id": 7, "recipient_id": None, "group_id": 4}


def test_user_and_notice_shapes():
    user = SimpleNamespace(id=7, username="alice", created_at=datetime(2026, 1, 1))
    assert shapes.user_json(user) == {"id": 7, "username": "alice",
                                      "created_at": "2026-01-01T00:00:00.000Z"}
    notice = SimpleNamespace(id=88, kind="group_added", actor_id=7, group_id=4,
                             group_name="team", created_at=datetime(2026, 1, 1), read_at=None)
    assert shapes.notice_frame(notice, "alice") == {
        "kind": "notice", "code": 200, "id": 88, "notice": "group_added", "actor_id": 7,
        "actor_name": "alice", "group_id": 4, "group_name": "team",
        "created_at": "2026-01-01T00:00:00.000Z", "read": False}


def test_dumps_is_compact_utf8_json_without_a_raw_newline():
    data = shapes.dumps({"content": "line\nnext 😀 \u2028"})
    assert b"\n" not in data
    assert orjson.loads(data) == {"content": "line\nnext 😀 \u2028"}
    assert "😀".encode() in data  # UTF-8, not \\u escapes
