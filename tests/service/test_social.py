"""Follows, blocks, profiles and user search (``chat.service.social``)."""
from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from sqlalchemy import update

from chat.errors import BadRequest, Forbidden, NotFound
from chat.extensions import db
from chat.store.models import Notice, utcnow
from tests.inprocess import add_user, block, username


def notices(published) -> list[tuple[str, str, int]]:
    return [(e.channel, f["notice"], f["actor_id"])
            for e in published.events for f in [orjson.loads(e.frame)] if e.frame]


def test_follow_shows_in_both_profiles_and_tells_the_followee_once(services, published):
    alice, bob = add_user(), add_user()
    profile = services.social.follow(alice, bob)
    assert (profile["id"], profile["following"], profile["followed_by"]) == (bob, True, False)
    services.social.follow(alice, bob)  # again: nothing changes, nobody is told twice
    assert notices(published) == [(f"user:{bob}", "follow", alice)]
    seen_by_bob = services.social.profile(bob, alice)
    assert (seen_by_bob["following"], seen_by_bob["followed_by"]) == (False, True)
    assert seen_by_bob["username"] == username(alice)


def test_unfollow_is_idempotent(services):
    alice, bob = add_user(), add_user()
    services.social.follow(alice, bob)
    assert services.social.unfollow(alice, bob)["following"] is False
    assert services.social.unfollow(alice, bob)["following"] is False


def test_follow_refusals(services, published):
    alice, bob = add_user(), add_user()
    with pytest.raises(BadRequest):
        services.social.follow(alice, alice)
    with pytest.raises(NotFound):
        services.social.follow(alice, 10**9)
    with pytest.raises(BadRequest):
        services.social.follow(alice, "2")
    block(bob, alice)
    with pytest.raises(Forbidden):
        services.social.follow(alice, bob)
    assert services.social.relation(alice, bob)["following"] is False
    assert published.events == []


def test_blocking_ends_their_follow_and_the_blocked_one_is_not_told(services):
    alice, bob = add_user(), add_user()
    services.social.follow(bob, alice)
    services.social.follow(alice, bob)
    seen = services.social.block(alice, bob)
    assert (seen["blocking"], seen["followed_by"], seen["following"]) == (True, False, True)
    seen_by_bob = services.social.relation(bob, alice)
    assert seen_by_bob == {"following": False, "followed_by": True, "blocking": False}
    services.social.block(alice, bob)  # twice is harmless
    assert services.social.unblock(alice, bob)["blocking"] is False
    assert services.social.unblock(alice, bob)["blocking"] is False
    with pytest.raises(BadRequest):
        services.social.block(alice, alice)


def test_follow_unfollow_follow_again_tells_the_followee_once_an_hour(services, published):
    alice, bob = add_user(), add_user()
    for _ in range(3):
        services.social.follow(alice, bob)
        services.social.unfollow(alice, bob)
    services.social.follow(alice, bob)
    assert notices(published) == [(f"user:{bob}", "follow", alice)]
    assert services.notices.listing(bob, unread_only=False)["unread"] == 1
    db.session.execute(update(Notice).where(Notice.user_id == bob)
                       .values(created_at=utcnow() - timedelta(hours=2)))
    db.session.commit()
    services.social.unfollow(alice, bob)
    services.social.follow(alice, bob)  # an hour later: a new notice
    assert len(notices(published)) == 2


def test_search_is_case_insensitive_and_its_wildcards_are_literal(services):
    stem = f"Zq{add_user()}"
    plain = add_user(f"{stem}_Plain")
    add_user(f"{stem}xPlain")  # "_" must not match this "x"
    found = [u["id"] for u in services.social.search(f"{stem}_plain".upper())]
    assert found == [plain]
    assert services.social.search(f"{stem}%") == []
    assert len(services.social.search(stem.lower())) == 2
    assert len(services.social.search(stem, limit=1)) == 1
    with pytest.raises(BadRequest):
        services.social.search("x" * 33)


def test_a_profile_of_nobody_is_404(services):
    with pytest.raises(NotFound):
        services.social.profile(add_user(), 10**9)
