"""Search and opening a message in context (PROTOCOL.md 6.4), against real servers:
``around_id`` on the shared MariaDB and on SQLite; search itself on SQLite (FTS5) and
on a private MariaDB with the Mroonga engine."""
from __future__ import annotations

import pytest


def _send(a, b, text: str) -> int:
    r = a.post("/api/messages", json={"recipient_id": b.user_id, "content": text})
    assert r.status_code == 201, r.text
    return r.json()["id"]


# -- around_id --------------------------------------------------------------------------------


def test_around_id_holds_the_message_with_older_before_and_newer_after(pair):
    a, b = pair
    ids = [_send(a, b, f"m{i}") for i in range(9)]
    page = b.get(f"/api/messages/{a.user_id}", params={"around_id": ids[4], "limit": 4}).json()
    # (4-1)//2 = 1 older, then the message, then 2 newer
    assert [m["id"] for m in page["messages"]] == ids[3:7]
    assert page["has_more"] is True and page["has_newer"] is True
    whole = b.get(f"/api/messages/{a.user_id}", params={"around_id": ids[4], "limit": 9}).json()
    assert [m["id"] for m in whole["messages"]] == ids
    assert whole["has_more"] is False and whole["has_newer"] is False


def test_around_id_fills_from_the_other_side_where_one_runs_short(pair):
    a, b = pair
    ids = [_send(a, b, f"m{i}") for i in range(6)]
    near_end = a.get(f"/api/messages/{b.user_id}", params={"around_id": ids[5], "limit": 3})
    assert [m["id"] for m in near_end.json()["messages"]] == ids[3:]
    assert near_end.json()["has_more"] is True and near_end.json()["has_newer"] is False
    near_start = a.get(f"/api/messages/{b.user_id}", params={"around_id": ids[0], "limit": 4})
    assert [m["id"] for m in near_start.json()["messages"]] == ids[:4]
    assert near_start.json()["has_more"] is False and near_start.json()["has_newer"] is True


def test_around_id_in_a_group(user):
    owner, member = user("own"), user("mem")
    member.follow_each_other(owner)
    gid = owner.post("/api/groups", json={"name": "around"}).json()["id"]
    assert owner.put(f"/api/groups/{gid}/members/{member.user_id}").status_code == 200
    ids = [owner.post("/api/messages", json={"group_id": gid, "content": f"g{i}"}).json()["id"]
           for i in range(5)]
    page = member.get(f"/api/groups/{gid}/messages", params={"around_id": ids[2], "limit": 3})
    assert [m["id"] for m in page.json()["messages"]] == ids[1:4]


def test_around_id_of_another_conversation_or_none_is_404(user):
    a, b, c = user("a"), user("b"), user("c")
    a.follow_each_other(b)
    a.follow_each_other(c)
    _send(a, b, "ours")
    theirs = _send(a, c, "not yours")
    r = b.get(f"/api/messages/{a.user_id}", params={"around_id": theirs})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert b.get(f"/api/messages/{a.user_id}",
                 params={"around_id": theirs + 10_000}).status_code == 404
    assert b.get(f"/api/messages/{a.user_id}",
                 params={"around_id": "x"}).status_code == 400
