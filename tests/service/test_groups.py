"""Groups (``chat.service.groups``): lifecycle, membership, and who may do each."""
from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from chat.errors import BadRequest, Conflict, Forbidden, NotFound
from chat.extensions import db
from chat.store.models import Message, ReadCursor, group_conv_key
from tests.inprocess import add_group, add_user, block, follow


def told(published) -> list[tuple]:
    """(channel, notice kind or None, member change) of every event published."""
    return [(e.channel, orjson.loads(e.frame)["notice"] if e.frame else None, e.member)
            for e in published.events]


def cursor(user_id: int, group_id: int) -> int | None:
    db.session.expire_all()
    return db.session.scalar(select(ReadCursor.last_read_id).where(
        ReadCursor.user_id == user_id, ReadCursor.conv_key == group_conv_key(group_id)))


def test_the_creator_owns_the_group_and_is_its_first_member(services, published):
    owner = add_user()
    group = services.groups.create(owner, "  Team  ", "what we do", "https://x.y/i.png")
    assert (group["name"], group["owner_id"], group["member_count"], group["role"]) == (
        "Team", owner, 1, "owner")
    assert told(published) == [(f"user:{owner}", None, (group["id"], True))]
    assert cursor(owner, group["id"]) == 0


@pytest.mark.parametrize("name, icon", [("", None), (" ", None), ("x" * 65, None),
                                        (None, None), ("ok", "javascript:alert(1)")])
def test_an_invalid_group_is_400_and_not_created(services, published, name, icon):
    owner = add_user()
    with pytest.raises(BadRequest):
        services.groups.create(owner, name, None, icon)
    assert services.groups.list_mine(owner) == [] and published.events == []


def test_anyone_may_look_a_group_up_and_sees_their_role(services):
    owner, member, stranger = add_user(), add_user(), add_user()
    gid = add_group(owner, member, name="Visible")
    assert services.groups.show(stranger, gid)["role"] is None
    assert services.groups.show(member, gid)["role"] == "member"
    assert services.groups.show(member, gid)["member_count"] == 2
    with pytest.raises(NotFound):
        services.groups.show(owner, 10**9)


def test_list_mine_is_by_name_with_my_role(services):
    me, other = add_user(), add_user()
    b = add_group(me, name="beta")
    a = add_group(other, me, name="Alpha")
    add_group(other, name="not mine")
    assert [(g["id"], g["role"]) for g in services.groups.list_mine(me)] == [(a, "member"),
                                                                             (b, "owner")]


def test_group_search_treats_wildcards_literally(services):
    owner = add_user()
    hit = add_group(owner, name="100% fun")
    add_group(owner, name="100 percent fun")
    assert [g["id"] for g in services.groups.search(owner, "0% F")] == [hit]
    with pytest.raises(BadRequest):
        services.groups.search(owner, "x" * 65)


def test_only_the_owner_edits_and_hands_over_to_a_member(services):
    owner, member, outsider = add_user(), add_user(), add_user()
    gid = add_group(owner, member)
    with pytest.raises(Forbidden):
        services.groups.update(member, gid, {"name": "mine now"})
    with pytest.raises(BadRequest):
        services.groups.update(owner, gid, {"owner_id": outsider})
    edited = services.groups.update(owner, gid, {"description": "new words"})
    assert edited["description"] == "new words" and edited["name"] != "mine now"
    handed = services.groups.update(owner, gid, {"owner_id": member})
    assert (handed["owner_id"], handed["role"]) == (member, "member")
    with pytest.raises(Forbidden):
        services.groups.update(owner, gid, {"name": "too late"})


def test_deleting_tells_every_other_member_and_removes_the_history(services, published, send):
    owner, member = add_user(), add_user()
    gid = add_group(owner, member)
    send(owner, group=gid, content="soon gone")
    published.events.clear()
    with pytest.raises(Forbidden):
        services.groups.delete_group(member, gid)
    assert services.groups.delete_group(owner, gid) == {"deleted": True, "id": gid}
    assert told(published) == [(f"user:{member}", "group_deleted", (gid, False)),
                               (f"user:{owner}", None, (gid, False))]
    with pytest.raises(NotFound):
        services.groups.show(owner, gid)
    assert db.session.scalars(select(Message).where(
        Message.conv_key == group_conv_key(gid))).all() == []
    assert cursor(member, gid) is None


def test_only_members_see_the_members_owner_first(services):
    owner, member, outsider = add_user("zz"), add_user("aa"), add_user()
    gid = add_group(owner, member)
    assert [(m["id"], m["role"]) for m in services.groups.members(member, gid)] == [
        (owner, "owner"), (member, "member")]
    with pytest.raises(Forbidden):
        services.groups.members(outsider, gid)


def test_joining_counts_only_what_arrives_afterwards_as_unread(services, published, send):
    owner, joiner = add_user(), add_user()
    gid = add_group(owner)
    last = send(owner, group=gid, content="before")["id"]
    published.events.clear()
    joined = services.groups.add_member(joiner, gid, joiner)
    assert (joined["role"], joined["member_count"]) == ("member", 2)
    assert told(published) == [(f"user:{joiner}", None, (gid, True))]  # no notice to oneself
    assert cursor(joiner, gid) == last
    services.groups.add_member(joiner, gid, joiner)  # idempotent
    assert len(published.events) == 1


def test_the_owner_adds_a_follower_and_they_are_told(services, published):
    owner, member, newcomer, blocker = add_user(), add_user(), add_user(), add_user()
    gid = add_group(owner, member)
    follow(newcomer, owner)
    with pytest.raises(Forbidden):
        services.groups.add_member(member, gid, newcomer)  # only the owner adds others
    block(blocker, owner)
    with pytest.raises(Forbidden):
        services.groups.add_member(owner, gid, blocker)
    assert services.groups.add_member(owner, gid, newcomer)["member_count"] == 3
    assert told(published) == [(f"user:{newcomer}", "group_added", (gid, True))]
    with pytest.raises(NotFound):
        services.groups.add_member(owner, gid, 10**9)


def test_someone_who_does_not_follow_the_owner_is_invited_not_added(services, published):
    owner, stranger = add_user(), add_user()
    gid = add_group(owner)
    answer = services.groups.add_member(owner, gid, stranger)
    assert answer == {"invited": True, "group_id": gid, "user_id": stranger}
    assert services.groups.add_member(owner, gid, stranger)["invited"]  # asked again
    assert told(published) == [(f"user:{stranger}", "group_invited", None)]  # one notice
    assert services.groups.show(owner, gid)["member_count"] == 1
    joined = services.groups.add_member(stranger, gid, stranger)  # saying yes
    assert joined["role"] == "member" and services.groups.invitation(gid, stranger) is None


def test_an_invitation_can_be_declined(services):
    owner, stranger = add_user(), add_user()
    gid = add_group(owner)
    services.groups.add_member(owner, gid, stranger)
    answer = services.groups.remove_member(stranger, gid, stranger)
    assert (answer["id"], answer["member_count"]) == (gid, 1)  # the group, still without them
    assert services.groups.invitation(gid, stranger) is None
    with pytest.raises(NotFound):
        services.groups.remove_member(stranger, gid, stranger)


def test_leaving_and_removing(services, published):
    owner, alice, bob = add_user(), add_user(), add_user()
    gid = add_group(owner, alice, bob)
    with pytest.raises(Forbidden):
        services.groups.remove_member(alice, gid, owner)  # 403 before "the owner cannot leave"
    with pytest.raises(Forbidden):
        services.groups.remove_member(alice, gid, bob)
    with pytest.raises(Conflict):
        services.groups.remove_member(owner, gid, owner)
    services.groups.remove_member(alice, gid, alice)
    services.groups.remove_member(owner, gid, bob)
    assert told(published) == [(f"user:{alice}", None, (gid, False)),
                               (f"user:{bob}", "group_removed", (gid, False))]
    assert services.groups.show(owner, gid)["member_count"] == 1
    assert cursor(alice, gid) is None
    with pytest.raises(NotFound):
        services.groups.remove_member(owner, gid, alice)
