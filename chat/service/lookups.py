"""One-at-a-time lookups through the ORM, with the 400/404 every caller needs."""
from __future__ import annotations

from typing import Any

from ..errors import NotFound
from ..extensions import db
from ..store.models import Block, Follow, Group, Invitation, Membership, User
from . import policy, validation


def get_user(user_id: Any) -> User:
    """The user with this id; 400 for a malformed id, 404 when there is none."""
    user = db.session.get(User, validation.entity_id(user_id, "user_id"))
    if user is None:
        raise NotFound(policy.NO_SUCH_USER)
    return user


def get_group(group_id: Any) -> Group:
    """The group with this id; 400 for a malformed id, 404 when there is none."""
    group = db.session.get(Group, validation.entity_id(group_id, "group_id"))
    if group is None:
        raise NotFound(policy.NO_SUCH_GROUP)
    return group


def membership(group_id: int, user_id: int) -> Membership | None:
    """The user's membership of the group, if any."""
    return db.session.get(Membership, (group_id, user_id))


def is_blocked(recipient_id: int, sender_id: int) -> bool:
    """Whether ``recipient_id`` blocks ``sender_id``."""
    return db.session.get(Block, (recipient_id, sender_id)) is not None


def follows(follower_id: int, followee_id: int) -> bool:
    """Whether ``follower_id`` follows ``followee_id``."""
    return db.session.get(Follow, (follower_id, followee_id)) is not None


def writable_peer(sender_id: int, peer_id: Any) -> User:
    """A user the sender may write to (exists, and has not blocked the sender)."""
    peer = get_user(peer_id)
    policy.check(policy.private_write(recipient_exists=True,
                                      blocked_by_recipient=is_blocked(peer.id, sender_id)))
    return peer


def visible_group(viewer_id: int, group_id: Any) -> Group:
    """A group the viewer may know of: every public one; a private one only for its
    members and the people invited to it (404 for anyone else: existence is hidden)."""
    group = get_group(group_id)
    if (group.visibility == "private" and membership(group.id, viewer_id) is None
            and db.session.get(Invitation, (group.id, viewer_id)) is None):
        raise NotFound(policy.NO_SUCH_GROUP)
    return group


def member_group(user_id: int, group_id: Any) -> Group:
    """A group the user is a member of (404 when there is none, or a private one they
    were not invited to; 403 for a non-member)."""
    group = visible_group(user_id, group_id)
    policy.check(policy.group_write(group_exists=True,
                                    is_member=membership(group.id, user_id) is not None))
    return group
