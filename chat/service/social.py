"""Users as seen by each other: search, profiles, follows and blocks."""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from .. import validation
from ..errors import BadRequest, Forbidden, NotFound
from ..extensions import db
from ..models import Block, Follow, User
from . import notices
from .accounts import user_json


def get_user(user_id) -> User:
    """The user with this id; 400 for a malformed id, 404 when there is none."""
    uid = validation.entity_id(user_id, "user_id")
    user = db.session.get(User, uid)
    if user is None:
        raise NotFound("no such user")
    return user


def search(query: str | None, limit: int = 20) -> list[dict]:
    """Users whose name starts with ``query`` (or contains it), case-insensitively."""
    text = (query or "").strip().lower()
    if len(text) > 32:
        raise BadRequest("q is longer than 32 characters")
    stmt = select(User).order_by(User.username_key).limit(limit)
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(User.username_key.like(f"%{escaped}%", escape="\\"))
    return [user_json(u) for u in db.session.scalars(stmt)]


def relation(viewer_id: int, other_id: int) -> dict:
    """Who follows whom, and who blocks whom, between two users."""
    follows = set(db.session.execute(select(Follow.follower_id, Follow.followee_id).where(
        ((Follow.follower_id == viewer_id) & (Follow.followee_id == other_id))
        | ((Follow.follower_id == other_id) & (Follow.followee_id == viewer_id)))).all())
    blocks = set(db.session.execute(select(Block.blocker_id, Block.blocked_id).where(
        ((Block.blocker_id == viewer_id) & (Block.blocked_id == other_id))
        | ((Block.blocker_id == other_id) & (Block.blocked_id == viewer_id)))).all())
    return {"following": (viewer_id, other_id) in follows,
            "followed_by": (other_id, viewer_id) in follows,
            "blocking": (viewer_id, other_id) in blocks,
            "blocked_by": (other_id, viewer_id) in blocks}


def profile(viewer_id: int, user_id) -> dict:
    """A user with ``following`` / ``followed_by`` seen from the viewer."""
    user = get_user(user_id)
    return {**user_json(user), **relation(viewer_id, user.id)}


def follow(actor_id: int, user_id) -> dict:
    """Follow a user (idempotent); they get a ``follow`` notice the first time."""
    target = get_user(user_id)
    if target.id == actor_id:
        raise BadRequest("you cannot follow yourself")
    if is_blocked(target.id, actor_id):
        raise Forbidden("this user has blocked you")
    if db.session.get(Follow, (actor_id, target.id)) is None:
        db.session.add(Follow(follower_id=actor_id, followee_id=target.id))
        try:
            db.session.flush()
            notices.add(target.id, "follow", actor_id)
            db.session.commit()
        except IntegrityError:  # a concurrent follow won the race: same end state
            db.session.rollback()
    return profile(actor_id, target.id)


def unfollow(actor_id: int, user_id) -> dict:
    """Stop following a user (idempotent)."""
    target = get_user(user_id)
    db.session.execute(delete(Follow).where(Follow.follower_id == actor_id,
                                            Follow.followee_id == target.id))
    db.session.commit()
    return profile(actor_id, target.id)


def block(actor_id: int, user_id) -> dict:
    """Block a user: their private messages get 403. Blocking also ends their follow."""
    target = get_user(user_id)
    if target.id == actor_id:
        raise BadRequest("you cannot block yourself")
    if db.session.get(Block, (actor_id, target.id)) is None:
        db.session.add(Block(blocker_id=actor_id, blocked_id=target.id))
        db.session.execute(delete(Follow).where(Follow.follower_id == target.id,
                                                Follow.followee_id == actor_id))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
    return profile(actor_id, target.id)


def unblock(actor_id: int, user_id) -> dict:
    """Lift a block (idempotent)."""
    target = get_user(user_id)
    db.session.execute(delete(Block).where(Block.blocker_id == actor_id,
                                           Block.blocked_id == target.id))
    db.session.commit()
    return profile(actor_id, target.id)


def is_blocked(recipient_id: int, sender_id: int) -> bool:
    """Whether ``recipient_id`` blocks ``sender_id``."""
    return db.session.get(Block, (recipient_id, sender_id)) is not None
