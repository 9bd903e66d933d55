"""Presence (PROTOCOL.md 6.5): who is online, told to friends (mutual follows) only.

The realtime layer reports each socket that opens and closes; the shared store
(``chat.store.presence``) says when that makes a user's first socket anywhere
(announce online) and, ``presence_grace`` seconds after the last one closed,
whether none came back (announce offline, and remember when they were last
seen). The ``presence`` frames go through the bus to each friend's channel, so
friends connected to any process hear it. Nothing of it runs on the hello path.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import gevent
from sqlalchemy import select, text, update

from ..bus import Bus, Event, user_channel
from ..extensions import db
from ..store.models import User, utcnow
from ..store.presence import PresenceStore
from .shapes import dumps, iso

log = logging.getLogger("chat.presence")

_FRIENDS = text("SELECT f1.follower_id FROM follows f1 JOIN follows f2 "
                "ON f2.follower_id = :me AND f2.followee_id = f1.follower_id "
                "WHERE f1.followee_id = :me")


def presence_frame(user_id: int, online: bool, last_seen: datetime | None) -> dict:
    """The ``presence`` frame a friend receives."""
    return {"kind": "presence", "code": 200, "user_id": user_id, "online": online,
            "last_seen_at": None if online else iso(last_seen)}


class Presence:
    """Tracks sockets in the shared store and announces the transitions to friends."""

    def __init__(self, app: Any, store: PresenceStore, bus: Bus, grace: float) -> None:
        self.app = app
        self.store = store
        self.bus = bus
        self.grace = grace

    def opened(self, user_id: int, conn_id: str) -> None:
        """A socket of the user opened (announced off the caller's path)."""
        gevent.spawn(self._opened, user_id, conn_id)

    def closed(self, user_id: int, conn_id: str) -> None:
        """A socket of the user closed: offline, unless another opens within the grace."""
        self.store.closed(user_id, conn_id)
        gevent.spawn_later(self.grace, self._maybe_gone, user_id, utcnow())

    def _opened(self, user_id: int, conn_id: str) -> None:
        if self.store.opened(user_id, conn_id):
            self._announce(user_id, True, None)

    def _maybe_gone(self, user_id: int, closed_at: datetime) -> None:
        if self.store.gone(user_id):
            self._announce(user_id, False, closed_at)

    def _announce(self, user_id: int, online: bool, last_seen: datetime | None) -> None:
        """Remember the last-seen time and tell the user's friends (if the user shows it)."""
        try:
            with self.app.app_context():
                try:
                    if last_seen is not None:
                        db.session.execute(update(User).where(User.id == user_id)
                                           .values(last_seen_at=last_seen))
                        db.session.commit()
                    shown = db.session.scalar(select(User.show_presence)
                                              .where(User.id == user_id))
                    friends = ([r[0] for r in db.session.execute(_FRIENDS, {"me": user_id})]
                               if shown else [])
                finally:
                    db.session.remove()
        except Exception as exc:  # the database may be down: presence is best effort
            log.warning("event=presence_announce_failed user_id=%s error=%s", user_id,
                        type(exc).__name__)
            return
        if friends:
            frame = dumps(presence_frame(user_id, online, last_seen))
            self.bus.publish([Event(user_channel(f), frame) for f in friends])

    def fields(self, user: Any, mutual: bool) -> dict:
        """``online`` and ``last_seen_at`` of a profile: null unless the viewer and the user
        follow each other and the user shows their presence."""
        if not mutual or not user.show_presence:
            return {"online": None, "last_seen_at": None}
        online = bool(self.store.online([user.id]))
        return {"online": online, "last_seen_at": None if online else iso(user.last_seen_at)}
