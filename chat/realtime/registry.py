"""This process's live connections: who is connected, and who gets which frame.

The registry knows nothing of the database. It maps users to their connections
and groups to their locally connected members; the bus hands it events and it
puts pre-built wire frames on the right connections' queues (each connection's
outbound side: ``chat.realtime.connection``).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from time import monotonic
from typing import Callable, Iterable, Iterator

import gevent
import orjson
from gevent.lock import RLock

from ..bus import GROUP, USER, Event, group_channel, parse_channel, user_channel
from .connection import Connection, DeliveryBatch, QueueBudget
from .frames import text_frame
from .transport import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_AGAIN

__all__ = ["CATCH_UP", "Connection", "DeliveryBatch", "QueueBudget", "Registry"]

log = logging.getLogger("chat.registry")

# Sent when the bus lost (or regained) its connection to other processes.
CATCH_UP = orjson.dumps({"kind": "catch_up", "code": 200,
                         "content": "live messages may have been missed: send sync (type 7)"})


class Registry:
    """Lock-guarded maps of user -> connections and group -> locally connected members."""

    def __init__(self, queue_budget_bytes: int = 0) -> None:
        self.budget = QueueBudget(queue_budget_bytes, self.shed)
        self._shed_after = 0.0
        self.lock = RLock()
        self.users: dict[int, set[Connection]] = {}
        self.user_groups: dict[int, set[int]] = {}
        self.groups: dict[int, set[int]] = {}
        # user -> groups a membership event changed since a check of the user's groups
        # began (``watch``, ``correct_groups``).
        self._watched: dict[int, set[int]] = {}
        self.on_channel_added: Callable[[str], None] = lambda channel: None
        self.on_channel_removed: Callable[[str], None] = lambda channel: None
        # Called when every connection is told to catch up (the bus lost events): the
        # membership events among them were lost too.
        self.on_everyone_catches_up: Callable[[], None] = lambda: None
        self.frames_out = 0
        self._pinger: gevent.Greenlet | None = None

    # -- membership of the registry ---------------------------------------

    def add(self, conn: Connection, group_ids: Iterable[int]) -> bool:
        """Register a connection and the groups its user belongs to; True when it is the
        user's first here (its channels were asked for, and ``group_ids`` used)."""
        added: list[str] = []
        with self.lock:
            conns = self.users.get(conn.user_id)
            if conns is None:
                conns = self.users[conn.user_id] = set()
                added.append(user_channel(conn.user_id))
                groups = self.user_groups[conn.user_id] = set()
                for gid in group_ids:
                    groups.add(gid)
                    added.extend(self._join_locked(conn.user_id, gid))
            conns.add(conn)
        for channel in added:
            self.on_channel_added(channel)
        return bool(added)

    def remove(self, conn: Connection) -> None:
        """Forget a connection; the last one of a user takes its channels with it."""
        removed: list[str] = []
        with self.lock:
            conns = self.users.get(conn.user_id)
            if not conns or conn not in conns:
                return
            conns.discard(conn)
            if not conns:
                del self.users[conn.user_id]
                removed.append(user_channel(conn.user_id))
                for gid in self.user_groups.pop(conn.user_id, ()):
                    removed.extend(self._leave_locked(conn.user_id, gid))
        for channel in removed:
            self.on_channel_removed(channel)

    def _join_locked(self, user_id: int, group_id: int) -> list[str]:
        members = self.groups.get(group_id)
        if members is None:
            self.groups[group_id] = {user_id}
            return [group_channel(group_id)]
        members.add(user_id)
        return []

    def _leave_locked(self, user_id: int, group_id: int) -> list[str]:
        members = self.groups.get(group_id)
        if members is None:
            return []
        members.discard(user_id)
        if not members:
            del self.groups[group_id]
            return [group_channel(group_id)]
        return []

    def set_membership(self, user_id: int, group_id: int, joined: bool) -> None:
        """A connected user joined or left a group: route its messages accordingly."""
        changed: list[str] = []
        with self.lock:
            touched = self._watched.get(user_id)
            if touched is not None:
                touched.add(group_id)
            groups = self.user_groups.get(user_id)
            if groups is None:
                return
            if joined and group_id not in groups:
                groups.add(group_id)
                changed = self._join_locked(user_id, group_id)
            elif not joined and group_id in groups:
                groups.discard(group_id)
                changed = self._leave_locked(user_id, group_id)
        for channel in changed:
            (self.on_channel_added if joined else self.on_channel_removed)(channel)

    def watch(self, user_id: int) -> None:
        """Note which groups membership events change for this user from now on, until
        ``correct_groups``. A watch starts afresh: what an earlier watch noted (say, of a
        socket since closed) is older than the read this one is for, and must not keep a
        group that read no longer finds."""
        with self.lock:
            self._watched[user_id] = set()

    def unwatch(self, user_id: int) -> None:
        """Stop noting the user's membership events (its check is over)."""
        with self.lock:
            self._watched.pop(user_id, None)

    def correct_groups(self, user_id: int,
                       group_ids: Iterable[int]) -> tuple[set[int], set[int]]:
        """Make a connected user's groups those read from the database after ``watch``,
        except the ones an event changed since (it is as new as the read, or newer).
        Returns the groups added (their messages in between may have been missed) and
        those removed.

        A user's groups come with its first connection, read before its channel was
        subscribed: a membership change published in between never reached here."""
        joined: list[str] = []
        left: list[str] = []
        added: set[int] = set()
        removed: set[int] = set()
        with self.lock:
            touched = self._watched.pop(user_id, None) or set()
            groups = self.user_groups.get(user_id)
            if groups is None:
                return added, removed
            wanted = set(group_ids) - touched
            for gid in groups - touched - wanted:
                groups.discard(gid)
                removed.add(gid)
                left.extend(self._leave_locked(user_id, gid))
            for gid in wanted - groups:
                groups.add(gid)
                added.add(gid)
                joined.extend(self._join_locked(user_id, gid))
        for channel in joined:
            self.on_channel_added(channel)
        for channel in left:
            self.on_channel_removed(channel)
        return added, removed

    # -- questions ---------------------------------------------------------

    def channels(self) -> list[str]:
        """Every channel this process needs (for a bus that resubscribes)."""
        with self.lock:
            return ([user_channel(u) for u in self.users]
                    + [group_channel(g) for g in self.groups])

    def count(self, user_id: int, exclude_conn: str | None = None) -> int:
        """How many local connections the user has (not counting ``exclude_conn``)."""
        conns = self.users.get(user_id)
        if not conns:
            return 0
        return sum(1 for c in conns if c.id != exclude_conn)

    def connections(self) -> list[Connection]:
        """A snapshot of every local connection."""
        with self.lock:
            return [c for conns in self.users.values() for c in conns]

    def __len__(self) -> int:
        return sum(len(c) for c in self.users.values())

    # -- delivery ----------------------------------------------------------

    def dispatch(self, event: Event, batch: DeliveryBatch | None = None) -> None:
        """Apply one event from the bus to this process's connections."""
        kind, target = parse_channel(event.channel)
        if kind == USER:
            if event.member is not None:
                self.set_membership(target, event.member[0], event.member[1])
            conns = self.users.get(target)
            if not conns:
                return
            conns = list(conns)
            if event.close_auth is not None:
                for conn in conns:
                    if conn.auth_id == event.close_auth:
                        conn.close(CLOSE_POLICY, "logged out")
            if event.frame:
                self._deliver(conns, event.frame, event.exclude_conn, batch)
        elif kind == GROUP:
            members = self.groups.get(target)
            if not members:
                return
            conns = [c for uid in list(members) if uid != event.exclude_user
                     for c in self.users.get(uid, ())]
            if event.frame:
                self._deliver(conns, event.frame, event.exclude_conn, batch)

    def _deliver(self, conns: list[Connection], payload: bytes, exclude_conn: str | None,
                 batch: DeliveryBatch | None) -> None:
        """Put the same wire bytes on every connection's queue."""
        wire = text_frame(payload)
        sent = 0
        for conn in conns:
            if conn.id != exclude_conn:
                conn.enqueue(wire, batch)
                sent += 1
        self.frames_out += sent

    @staticmethod
    @contextmanager
    def batch() -> Iterator[DeliveryBatch]:
        """Hold the frames given to the batch until it ends, then write them together."""
        batch = DeliveryBatch()
        try:
            yield batch
        finally:
            batch.flush()

    # -- upkeep ------------------------------------------------------------

    def start_pinger(self, interval: float) -> None:
        """Ping idle connections every ``interval`` seconds and drop the dead."""
        if self._pinger is None and interval > 0:
            self._pinger = gevent.spawn(self._ping_loop, interval)

    def _ping_loop(self, interval: float) -> None:
        while True:
            gevent.sleep(interval / 2)
            now = monotonic()
            for conn in self.connections():
                try:
                    conn.ping(now, interval)
                except Exception:  # one broken socket must not stop the pinger
                    log.exception("event=ping_failed conn=%s", conn.id)

    def shed(self) -> None:
        """Close the biggest queues (1013) until the process is well under its budget.

        When nothing can be shed (the bytes are in writers' hands, or in connections
        the registry does not hold), it waits a second before scanning again.
        """
        now = monotonic()
        if now < self._shed_after:
            return
        target = self.budget.limit * 3 // 4
        closed = 0
        for conn in sorted(self.connections(), key=lambda c: c.queued_bytes, reverse=True):
            if self.budget.total <= target or not conn.queued_bytes:
                break
            if conn.closing:
                continue
            log.warning("event=queue_budget_shed user_id=%s conn=%s queued_bytes=%s total=%s",
                        conn.user_id, conn.id, conn.queued_bytes, self.budget.total)
            conn.close(CLOSE_TRY_AGAIN, "server busy: reconnect and sync", drop_queue=True)
            closed += 1
        if not closed:
            self._shed_after = now + 1.0

    def catch_up(self, user_id: int | None = None) -> None:
        """Tell every connection (of ``user_id``, if given) it may have missed frames: the
        client answers with sync."""
        frame = text_frame(CATCH_UP)
        if user_id is None:
            conns = self.connections()
        else:
            with self.lock:
                conns = list(self.users.get(user_id, ()))
        for conn in conns:
            conn.enqueue(frame)
        if user_id is None:
            self.on_everyone_catches_up()

    def user_ids(self) -> list[int]:
        """The users connected here."""
        with self.lock:
            return list(self.users)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server restarting") -> None:
        """Close every connection (graceful shutdown): clients reconnect elsewhere at once."""
        for conn in self.connections():
            conn.close(code, reason)

    def close_auth(self, auth_ids: set[int]) -> None:
        """Close the connections opened with these (revoked) credentials."""
        for conn in self.connections():
            if conn.auth_id in auth_ids:
                conn.close(CLOSE_POLICY, "logged out")
