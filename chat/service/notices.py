"""Notices, the seed's notification system: stored, then pushed live after commit."""
from __future__ import annotations

from typing import Any

from datetime import timedelta

from sqlalchemy import func, select, update

from ..extensions import db
from ..store.models import Notice, User, utcnow
from . import validation
from .events import Events
from .shapes import notice_frame

KINDS = ("follow", "group_added", "group_removed", "group_deleted", "group_invited")


class Notices:
    """Stores notices and pushes them to their user after commit."""

    def __init__(self, events: Events) -> None:
        self.events = events

    def add(self, user_id: int, kind: str, actor_id: int, group_id: int | None = None,
            group_name: str | None = None, member: tuple[int, bool] | None = None) -> None:
        """Store a notice for ``user_id`` in the current transaction; push it after commit.

        Nobody gets a notice for their own action. ``member`` rides along to tell the
        user's processes that a group was joined or left.
        """
        if user_id == actor_id:
            return
        notice = Notice(user_id=user_id, kind=kind, actor_id=actor_id, group_id=group_id,
                        group_name=group_name, created_at=utcnow())
        db.session.add(notice)
        db.session.flush()  # gives the notice its id for the frame
        actor = db.session.get(User, actor_id)
        self.events.after_commit(self.events.to_user(
            user_id, notice_frame(notice, actor and actor.username), member=member))

    @staticmethod
    def recent(user_id: int, kind: str, actor_id: int, seconds: int) -> bool:
        """Whether ``user_id`` got a ``kind`` notice from ``actor_id`` in the last ``seconds``."""
        since = utcnow() - timedelta(seconds=seconds)
        return db.session.scalar(select(Notice.id).where(
            Notice.user_id == user_id, Notice.actor_id == actor_id, Notice.kind == kind,
            Notice.created_at >= since).limit(1)) is not None

    @staticmethod
    def listing(user_id: int, unread_only: bool, limit: int = 100) -> dict:
        """The user's notices, newest first, and how many are unread."""
        query = (select(Notice, User.username).outerjoin(User, User.id == Notice.actor_id)
                 .where(Notice.user_id == user_id))
        if unread_only:
            query = query.where(Notice.read_at.is_(None))
        rows = db.session.execute(query.order_by(Notice.id.desc()).limit(limit)).all()
        unread = db.session.scalar(select(func.count()).select_from(Notice).where(
            Notice.user_id == user_id, Notice.read_at.is_(None)))
        return {"notices": [notice_frame(n, name) for n, name in rows], "unread": unread}

    @staticmethod
    def mark_read(user_id: int, up_to_id: Any) -> dict:
        """Mark the user's notices read, all of them or those up to ``up_to_id``."""
        up_to = validation.cursor(up_to_id, "up_to_id")
        query = update(Notice).where(Notice.user_id == user_id, Notice.read_at.is_(None))
        if up_to is not None:
            query = query.where(Notice.id <= up_to)
        result = db.session.execute(query.values(read_at=utcnow()))
        db.session.commit()
        return {"marked": result.rowcount}
