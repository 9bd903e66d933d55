"""One-at-a-time lookups (``chat.service.lookups``): 400 for a malformed id, 404, 403."""
from __future__ import annotations

import pytest

from chat.errors import BadRequest, Forbidden, NotFound
from chat.service import lookups
from tests.inprocess import add_group, add_user, block


def test_get_user_and_get_group(app):
    uid = add_user()
    gid = add_group(uid)
    assert lookups.get_user(uid).id == uid
    assert lookups.get_group(gid).owner_id == uid


@pytest.mark.parametrize("fn", [lookups.get_user, lookups.get_group])
@pytest.mark.parametrize("bad", ["1", 0, -3, 1.0, True, None, 2**53])
def test_a_malformed_id_is_400_whatever_exists(app, fn, bad):
    add_user()
    with pytest.raises(BadRequest):
        fn(bad)


def test_a_well_formed_id_of_nothing_is_404(app):
    with pytest.raises(NotFound) as user:
        lookups.get_user(10**9)
    with pytest.raises(NotFound) as group:
        lookups.get_group(10**9)
    assert (user.value.message, group.value.message) == ("no such user", "no such group")


def test_membership_and_blocks(app):
    owner, member, outsider = add_user(), add_user(), add_user()
    gid = add_group(owner, member)
    assert lookups.membership(gid, member).role == "member"
    assert lookups.membership(gid, owner).role == "owner"
    assert lookups.membership(gid, outsider) is None
    block(member, outsider)
    assert lookups.is_blocked(member, outsider) and not lookups.is_blocked(outsider, member)


def test_writable_peer_refuses_whoever_blocked_the_sender(app):
    alice, bob = add_user(), add_user()
    assert lookups.writable_peer(alice, bob).id == bob
    assert lookups.writable_peer(alice, alice).id == alice  # notes to self
    block(bob, alice)
    with pytest.raises(Forbidden):
        lookups.writable_peer(alice, bob)
    assert lookups.writable_peer(bob, alice).id == alice  # the blocker may still write
    with pytest.raises(NotFound):
        lookups.writable_peer(alice, 10**9)


def test_member_group_answers_404_before_403(app):
    owner, outsider = add_user(), add_user()
    gid = add_group(owner)
    assert lookups.member_group(owner, gid).id == gid
    with pytest.raises(Forbidden):
        lookups.member_group(outsider, gid)
    with pytest.raises(NotFound):
        lookups.member_group(outsider, 10**9)
    with pytest.raises(BadRequest):
        lookups.member_group(outsider, "1")
