"""This process's live connections: who is connected, and who gets which frame.

The registry knows nothing of the database. It maps users to their connections
and groups to their locally connected members; the bus hands it events and it
puts pre-built wire frames on the right connections' queues. Each connection has
one bounded queue and at most one writer greenlet, started when there is
something to write and gone when the queue is empty, so an idle connection costs
no greenlet of its own and a slow reader only ever fills its own queue.
"""
from __future__ import annotations

import itertools
import logging
import os
import secrets
from contextlib import contextmanager
from time import monotonic
from typing import Callable, Iterable, Iterator, Protocol

import gevent
from gevent.lock import RLock

from ..bus import GROUP, USER, Event, group_channel, parse_channel, user_channel
from .frames import text_frame
from .transport import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_AGAIN

log = logging.getLogger("chat.registry")

_PROCESS_TAG = f"{os.getpid():x}{secrets.token_hex(3)}"
_counter = itertools.count(1)


class DeliveryBatch:
    """The frames of one committed batch: queued as they come, written together at the end.

    A sender's acks and a recipient's messages of the same batch then leave in one
    system call, mostly without a writer greenlet. Only frames given to this batch
    wait; pings, error replies and other connections' traffic go out at once.
    """

    __slots__ = ("dirty",)

    def __init__(self) -> None:
        self.dirty: list[Connection] = []

    def flush(self) -> None:
        """Write what each touched connection has queued."""
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush()


class Transport(Protocol):
    """What a connection needs from its socket (``transport.WebSocket``)."""

    connected: bool
    last_received: float
    pong_received: bool
    write: Callable[[bytes], None]

    def try_send(self, data: bytes) -> int: ...
    def send_all(self, data: bytes) -> None: ...
    def close_frame(self, code: int = 1000, reason: str = "") -> bytes: ...
    def ping_frame(self) -> bytes: ...
    def abort(self) -> None: ...


class Connection:
    """One live WebSocket of one user: a bounded outbound queue and one writer."""

    __slots__ = ("id", "user_id", "auth_id", "transport", "queue", "queued_bytes",
                 "max_bytes", "writer", "closing", "sent_frames", "on_overflow", "dirty")

    def __init__(self, user_id: int, auth_id: int | None, transport: Transport,
                 max_bytes: int):
        self.id = f"{_PROCESS_TAG}-{next(_counter)}"
        self.user_id = user_id
        self.auth_id = auth_id
        self.transport = transport
        self.queue: list[bytes] = []  # a list: an empty deque costs 600 bytes per socket
        self.queued_bytes = 0
        self.max_bytes = max_bytes
        self.writer: gevent.Greenlet | None = None
        self.closing = False
        self.sent_frames = 0
        self.on_overflow: Callable[[Connection], None] | None = None
        self.dirty = False
        transport.write = self.enqueue

    def send_payload(self, payload: bytes, batch: DeliveryBatch | None = None) -> None:
        """Queue one JSON frame (already serialised) for this connection."""
        self.enqueue(text_frame(payload), batch)

    def enqueue(self, wire: bytes, batch: DeliveryBatch | None = None) -> None:
        """Queue wire bytes and write them now, or when ``batch`` ends.

        A full queue closes the connection with 1013 (try again).
        """
        if self.closing or not wire:
            return
        # Any single frame fits into an empty queue (a big answer the client asked for
        # must not close it for good); a backlog beyond the bound means it cannot keep up.
        if self.queued_bytes and self.queued_bytes + len(wire) > self.max_bytes:
            log.warning("event=queue_full user_id=%s conn=%s queued_bytes=%s",
                        self.user_id, self.id, self.queued_bytes)
            if self.on_overflow:
                self.on_overflow(self)
            self.close(CLOSE_TRY_AGAIN, "too slow: reconnect and sync", drop_queue=True)
            return
        self.queue.append(wire)
        self.queued_bytes += len(wire)
        if self.writer is None and not self.dirty:
            if batch is not None:
                self.dirty = True
                batch.dirty.append(self)
            else:
                self.flush()

    def flush(self) -> None:
        """Write what is queued now if the socket takes it; else leave it to a writer.

        Most frames go out here with one non-blocking send and no greenlet at all;
        only a socket whose buffer is full gets a writer, which waits with sendall.
        """
        self.dirty = False
        if self.writer is not None or not self.queue:
            return
        data = self.queue[0] if len(self.queue) == 1 else b"".join(self.queue)
        self.queue = []
        try:
            sent = self.transport.try_send(data)
        except OSError:
            self.queued_bytes = 0
            self.transport.abort()
            return
        self.queued_bytes -= sent
        if sent == len(data):
            self.sent_frames += 1
        else:
            self.queue.append(data[sent:] if sent else data)
            self.writer = gevent.spawn(self._write_loop)

    def _write_loop(self) -> None:
        """Drain the queue, waiting for the peer, up to 64 frames per system call."""
        send_all = self.transport.send_all
        try:
            while self.queue:
                parts, self.queue = self.queue, []
                for start in range(0, len(parts), 64):
                    chunk = b"".join(parts[start:start + 64]) if len(parts) > 1 else parts[0]
                    self.queued_bytes -= len(chunk)
                    send_all(chunk)
                    self.sent_frames += min(64, len(parts) - start)
        except OSError:
            # The peer is gone; the reader notices too and unregisters us.
            self.queue = []
            self.queued_bytes = 0
            self.transport.abort()
        finally:
            self.writer = None
        if self.closing:
            self._finish_close()

    def close(self, code: int, reason: str = "", drop_queue: bool = False) -> None:
        """Send a close frame after what is queued (or instead of it) and end the socket."""
        if self.closing:
            return
        if drop_queue:
            self.queue = []
            self.queued_bytes = 0
        frame = self.transport.close_frame(code, reason)
        if frame:
            self.queue.append(frame)
            self.queued_bytes += len(frame)
        self.closing = True
        if self.writer is None:
            self.writer = gevent.spawn(self._write_loop)
        # A peer that never reads would keep the close frame queued forever.
        gevent.spawn_later(5, self.transport.abort)

    def _finish_close(self) -> None:
        """After the close frame went out, give the peer a moment to answer, then drop TCP."""
        gevent.spawn_later(1, self.transport.abort)

    def ping(self, now: float, interval: float) -> None:
        """Ping when idle; drop the connection when the last ping got no answer."""
        transport = self.transport
        if now - transport.last_received < interval:
            return
        if not transport.pong_received:
            log.info("event=ping_timeout user_id=%s conn=%s", self.user_id, self.id)
            transport.abort()
            return
        transport.pong_received = False
        self.enqueue(transport.ping_frame())


class Registry:
    """Lock-guarded maps of user -> connections and group -> locally connected members."""

    def __init__(self) -> None:
        self.lock = RLock()
        self.users: dict[int, set[Connection]] = {}
        self.user_groups: dict[int, set[int]] = {}
        self.groups: dict[int, set[int]] = {}
        self.on_channel_added: Callable[[str], None] = lambda channel: None
        self.on_channel_removed: Callable[[str], None] = lambda channel: None
        self.frames_out = 0
        self._pinger: gevent.Greenlet | None = None

    # -- membership of the registry ---------------------------------------

    def add(self, conn: Connection, group_ids: Iterable[int]) -> None:
        """Register a connection and the groups its user belongs to."""
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

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server restarting") -> None:
        """Close every connection (graceful shutdown): clients reconnect elsewhere at once."""
        for conn in self.connections():
            conn.close(code, reason)

    def close_auth(self, auth_ids: set[int]) -> None:
        """Close the connections opened with these (revoked) credentials."""
        for conn in self.connections():
            if conn.auth_id in auth_ids:
                conn.close(CLOSE_POLICY, "logged out")
