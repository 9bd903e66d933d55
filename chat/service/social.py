"""Users as seen by each other: search, profiles, follows and blocks."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..errors import BadRequest
from ..extensions import db
from ..store.models import Block, Follow, User
from ..store.queries import like_contains
from . import policy
from .i18n import N_
from .lookups import get_user, is_blocked
from .notices import Notices
from .presence import Presence
from .shapes import user_json


FOLLOW_NOTICE_EVERY = 3600  # seconds


class Social:
    """Follows, blocks and profiles."""

    def __init__(self, notices: Notices, presence: Presence) -> None:
        self.notices = notices
        self.presence = presence

    @staticmethod
    def search(query: str | None, limit: int = 20) -> list[dict]:
        """Users whose name contains ``query``, case-insensitively."""
        text = (query or "").strip().lower()
        if len(text) > 32:
            raise BadRequest(N_("q is longer than 32 characters"))
        stmt = select(User).order_by(User.username_key).limit(limit)
        if text:
            stmt = stmt.where(User.username_key.like(like_contains(text), escape="\\"))
        return [user_json(u) for u in db.session.scalars(stmt)]

    @staticmethod
    def relation(viewer_id: int, other_id: int) -> dict:
        """Who follows whom between two users, and whether the viewer blocks the other.

        Whether the other blocks the viewer is never shown: it would tell a harasser.
        """
        follows = set(db.session.execute(select(Follow.follower_id, Follow.followee_id).where(
            ((Follow.follower_id == viewer_id) & (Follow.followee_id == other_id))
            | ((Follow.follower_id == other_id) & (Follow.followee_id == viewer_id)))).all())
        return {"following": (viewer_id, other_id) in follows,
                "followed_by": (other_id, viewer_id) in follows,
                "blocking": is_blocked(viewer_id, other_id)}

    def profile(self, viewer_id: int, user_id: Any) -> dict:
        """A user with ``following`` / ``followed_by`` seen from the viewer, and presence
        between friends (docs/protocol.md, Attention)."""
        user = get_user(user_id)
        relation = self.relation(viewer_id, user.id)
        mutual = relation["following"] and relation["followed_by"]
        return {**user_json(user), **relation, **self.presence.fields(user, mutual)}

    def follow(self, actor_id: int, user_id: Any) -> dict:
        """Follow a user (idempotent); they get a ``follow`` notice the first time."""
        target = get_user(user_id)
        if target.id == actor_id:
            raise BadRequest(N_("you cannot follow yourself"))
        policy.check(policy.private_write(recipient_exists=True,
                                          blocked_by_recipient=is_blocked(target.id, actor_id)))
        if db.session.get(Follow, (actor_id, target.id)) is None:
            db.session.add(Follow(follower_id=actor_id, followee_id=target.id))
            try:
                db.session.flush()
                # Follow, unfollow, follow again: at most one notice per pair per hour.
                if not self.notices.recent(target.id, "follow", actor_id, FOLLOW_NOTICE_EVERY):
                    self.notices.add(target.id, "follow", actor_id)
                db.session.commit()
            except IntegrityError:  # a concurrent follow won the race: same end state
                db.session.rollback()
        return self.profile(actor_id, target.id)

    def unfollow(self, actor_id: int, user_id: Any) -> dict:
        """Stop following a user (idempotent)."""
        target = get_user(user_id)
        db.session.execute(delete(Follow).where(Follow.follower_id == actor_id,
                                                Follow.followee_id == target.id))
        db.session.commit()
        return self.profile(actor_id, target.id)

    def block(self, actor_id: int, user_id: Any) -> dict:
        """Block a user: their private messages get 403. Blocking also ends their follow."""
        target = get_user(user_id)
        if target.id == actor_id:
            raise BadRequest(N_("you cannot block yourself"))
        if db.session.get(Block, (actor_id, target.id)) is None:
            db.session.add(Block(blocker_id=actor_id, blocked_id=target.id))
            db.session.execute(delete(Follow).where(Follow.follower_id == target.id,
                                                    Follow.followee_id == actor_id))
            try:
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
        return self.profile(actor_id, target.id)

    def unblock(self, actor_id: int, user_id: Any) -> dict:
        """Lift a block (idempotent)."""
        target = get_user(user_id)
        db.session.execute(delete(Block).where(Block.blocker_id == actor_id,
                                               Block.blocked_id == target.id))
        db.session.commit()
        return self.profile(actor_id, target.id)
