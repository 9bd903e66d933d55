"""Notices (``chat.service.notices``): stored, pushed after commit, listed and marked read."""
from __future__ import annotations

import orjson
import pytest

from chat.errors import BadRequest
from chat.extensions import db
from tests.inprocess import add_user, username


def pushed(published) -> list[tuple[str, dict, tuple | None]]:
    return [(e.channel, orjson.loads(e.frame), e.member) for e in published.events]


def test_a_notice_is_pushed_to_its_user_after_commit(services, published):
    actor, user = add_user(), add_user()
    services.notices.add(user, "group_added", actor, 4, "team", member=(4, True))
    assert published.events == []
    db.session.commit()
    [(channel, frame, member)] = pushed(published)
    assert channel == f"user:{user}" and member == (4, True)
    assert frame == {"kind": "notice", "code": 200, "id": frame["id"], "notice": "group_added",
                     "actor_id": actor, "actor_name": username(actor), "group_id": 4,
                     "group_name": "team", "created_at": frame["created_at"], "read": False}
    assert services.notices.listing(user, unread_only=False)["notices"] == [frame]


def test_nobody_gets_a_notice_for_their_own_action(services, published):
    uid = add_user()
    services.notices.add(uid, "follow", uid)
    db.session.commit()
    assert published.events == []
    assert services.notices.listing(uid, unread_only=False) == {"notices": [], "unread": 0}


def test_a_rolled_back_notice_is_neither_stored_nor_pushed(services, published):
    actor, user = add_user(), add_user()
    services.notices.add(user, "follow", actor)
    db.session.rollback()
    db.session.commit()
    assert published.events == []
    assert services.notices.listing(user, unread_only=False)["unread"] == 0


def test_listing_is_newest_first_and_counts_the_unread(services):
    actor, user, other = add_user(), add_user(), add_user()
    for kind in ("follow", "group_added", "group_removed"):
        services.notices.add(user, kind, actor, 1, "g")
    services.notices.add(other, "follow", actor)
    db.session.commit()
    listing = services.notices.listing(user, unread_only=False)
    assert [n["notice"] for n in listing["notices"]] == ["group_removed", "group_added", "follow"]
    assert listing["unread"] == 3
    first_id = listing["notices"][-1]["id"]
    assert services.notices.mark_read(user, first_id) == {"marked": 1}
    unread = services.notices.listing(user, unread_only=True)
    assert [n["notice"] for n in unread["notices"]] == ["group_removed", "group_added"]
    assert unread["unread"] == 2
    assert services.notices.mark_read(user, None) == {"marked": 2}
    assert services.notices.listing(user, unread_only=True) == {"notices": [], "unread": 0}
    assert services.notices.listing(other, unread_only=True)["unread"] == 1  # not theirs


@pytest.mark.parametrize("bad", [-1, "3", 1.5, True])
def test_mark_read_refuses_a_malformed_cursor_and_marks_nothing(services, bad):
    actor, user = add_user(), add_user()
    services.notices.add(user, "follow", actor)
    db.session.commit()
    with pytest.raises(BadRequest):
        services.notices.mark_read(user, bad)
    assert services.notices.listing(user, unread_only=True)["unread"] == 1
