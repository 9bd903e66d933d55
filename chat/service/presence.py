"""Presence (docs/protocol.md, Attention): who is online, told to friends (mutual follows) only.

The realtime layer reports each socket that opens and closes; the shared store
(``chat.store.presence``) says when that makes a user's first socket anywhere
(announce online) and, ``presence_grace`` seconds after the last one closed,
whether none came back (announce offline, and remember when they were last
seen). The ``presence`` frames go through the bus to each friend's channel, so
friends connected to any process hear it. Nothing of it runs on the hello path.

Announcements are made in batches by one greenlet: whatever queued up while the
previous batch was out costs one query for the settings and one for the friends of
all its users. One query pair per socket, each in a greenlet of its own, took a
pooled database connection per user: 5,000 users connecting at once held the whole
pool, and the hello path of every socket waited behind them (a reconnect storm of
5,000 went from 6.7 s to a minute).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime
from typing import Any

import gevent
from sqlalchemy import bindparam, select, text, update

from ..bus import Bus, Event, user_channel
from ..extensions import db
from ..store.models import User, utcnow
from ..store.presence import PresenceStore
from .shapes import dumps, iso

log = logging.getLogger("chat.presence")

# Each user of the batch with each of their friends (mutual follows).
_FRIENDS = text("SELECT f1.followee_id, f1.follower_id FROM follows f1 JOIN follows f2 "
                "ON f2.follower_id = f1.followee_id AND f2.followee_id = f1.follower_id "
                "WHERE f1.followee_id IN :ids").bindparams(bindparam("ids", expanding=True))
CHUNK = 500  # users per query


def presence_frame(user_id: int, online: bool, last_seen: datetime | None) -> dict:
    """The ``presence`` frame a friend receives."""
    return {"kind": "presence", "code": 200, "user_id": user_id, "online": online,
            "last_seen_at": None if online else iso(last_seen)}


class Presence:
    """Tracks sockets in the shared store and announces the transitions to friends."""

    def __init__(self, app: Any, store: PresenceStore, bus: Bus, grace: float,
                 announce: bool = True) -> None:
        self.app = app
        self.announce = announce
        self.store = store
        self.bus = bus
        self.grace = grace
        self._queue: list[tuple[int, bool, datetime | None]] = []
        self._sender: gevent.Greenlet | None = None
        # (when the grace ends, user, when the socket closed), in closing order.
        self._due: deque[tuple[float, int, datetime]] = deque()
        self._checker: gevent.Greenlet | None = None

    def opened(self, user_id: int, conn_id: str) -> None:
        """A socket of the user opened (announced off the caller's path)."""
        gevent.spawn(self._opened, user_id, conn_id)

    def closed(self, user_id: int, conn_id: str) -> None:
        """A socket of the user closed: offline, unless another opens within the grace."""
        self.store.closed(user_id, conn_id)
        if self.announce:
            self._due.append((time.monotonic() + self.grace, user_id, utcnow()))
            if self._checker is None:
                self._checker = gevent.spawn(self._check_gone)

    def _opened(self, user_id: int, conn_id: str) -> None:
        if self.store.opened(user_id, conn_id) and self.announce:
            self._announce(user_id, True, None)

    def _check_gone(self) -> None:
        """Whose grace ended, checked together: a reconnect storm's thousands of closes
        cost a few pipelined round trips ten seconds later, not a greenlet and a round
        trip each."""
        try:
            while self._due:
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    gevent.sleep(wait)
                now = time.monotonic()
                closed_at: dict[int, datetime] = {}
                while self._due and self._due[0][0] <= now:
                    _, user_id, at = self._due.popleft()
                    closed_at[user_id] = at
                for user_id in sorted(self.store.gone(list(closed_at))):
                    self._announce(user_id, False, closed_at[user_id])
        finally:
            self._checker = None

    def _announce(self, user_id: int, online: bool, last_seen: datetime | None) -> None:
        """Queue a transition; the sender greenlet tells the friends, batch after batch."""
        self._queue.append((user_id, online, last_seen))
        if self._sender is None:
            self._sender = gevent.spawn(self._send)

    def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                for start in range(0, len(batch), CHUNK):
                    self._announce_batch(batch[start:start + CHUNK])
        finally:
            self._sender = None

    def _announce_batch(self, batch: list[tuple[int, bool, datetime | None]]) -> None:
        """Remember last-seen times and tell each user's friends (if the user shows it)."""
        ids = sorted({user_id for user_id, _, _ in batch})
        try:
            with self.app.app_context():
                try:
                    gone = {user_id: seen for user_id, online, seen in batch if not online}
                    for user_id, seen in gone.items():
                        db.session.execute(update(User).where(User.id == user_id)
                                           .values(last_seen_at=seen))
                    if gone:
                        db.session.commit()
                    shown = set(db.session.scalars(select(User.id).where(
                        User.id.in_(ids), User.show_presence.is_(True))))
                    friends: dict[int, list[int]] = {}
                    if shown:
                        for user_id, friend in db.session.execute(_FRIENDS,
                                                                  {"ids": sorted(shown)}):
                            friends.setdefault(user_id, []).append(friend)
                finally:
                    db.session.remove()
        except Exception as exc:  # the database may be down: presence is best effort
            log.warning("event=presence_announce_failed users=%s error=%s", len(ids),
                        type(exc).__name__)
            return
        events = []
        for user_id, online, seen in batch:
            if friends.get(user_id):
                frame = dumps(presence_frame(user_id, online, seen))
                events.extend(Event(user_channel(f), frame) for f in friends[user_id])
        if events:
            self.bus.publish(events)

    def fields(self, user: Any, mutual: bool) -> dict:
        """``online`` and ``last_seen_at`` of a profile: null unless the viewer and the user
        follow each other and the user shows their presence."""
        if not mutual or not user.show_presence or not self.announce:
            return {"online": None, "last_seen_at": None}
        online = bool(self.store.online([user.id]))
        return {"online": online, "last_seen_at": None if online else iso(user.last_seen_at)}
