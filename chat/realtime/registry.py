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
import orjson
from gevent.event import Event as GeventEvent
from gevent.lock import RLock

from ..bus import GROUP, USER, Event, group_channel, parse_channel, user_channel
from .frames import text_frame
from .transport import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_AGAIN

log = logging.getLogger("chat.registry")

_PROCESS_TAG = f"{os.getpid():x}{secrets.token_hex(3)}"
# Sent when the bus lost (or regained) its connection to other processes.
CATCH_UP = orjson.dumps({"kind": "catch_up", "code": 200,
                         "content": "live messages may have been missed: send sync (type 7)"})
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
    def linger(self, timeout: float) -> None: ...
    def abort(self) -> None: ...


class QueueBudget:
    """The bytes queued by every connection of this process together (CHAT_SEND_QUEUE_TOTAL_BYTES).

    Each connection's own bound keeps one slow reader from growing without end;
    this one keeps many of them (each just under its own bound) from taking the
    process's memory. Past it, ``shed`` closes the biggest queues first with 1013,
    so the clients that fell furthest behind reconnect and sync.
    """

    __slots__ = ("total", "limit", "shed")

    def __init__(self, limit: int, shed: Callable[[], None] = lambda: None) -> None:
        self.total = 0
        self.limit = limit
        self.shed = shed


class Connection:
    """One live WebSocket of one user: a bounded outbound queue and one writer."""

    __slots__ = ("id", "user_id", "auth_id", "transport", "queue", "queued_bytes",
                 "max_bytes", "budget", "writer", "closing", "dirty", "drained")

    def __init__(self, user_id: int, auth_id: int | None, transport: Transport,
                 max_bytes: int, budget: QueueBudget | None = None):
        self.id = f"{_PROCESS_TAG}-{next(_counter)}"
        self.user_id = user_id
        self.auth_id = auth_id
        self.transport = transport
        self.queue: list[bytes] = []  # a list: an empty deque costs 600 bytes per socket
        # What the queue and the writer hold until the socket has taken it.
        self.queued_bytes = 0
        self.max_bytes = max_bytes
        self.budget = budget if budget is not None else QueueBudget(0)
        self.writer: gevent.Greenlet | None = None
        self.closing = False
        self.dirty = False
        self.drained: GeventEvent | None = None  # made when someone waits for the queue
        transport.write = self.enqueue

    def _queued(self, change: int) -> None:
        """Account bytes put on (or taken off) the queue, here and in the process budget."""
        self.queued_bytes += change
        self.budget.total += change
        if change < 0 and self.drained is not None:
            self.drained.set()

    def _drop_queue(self) -> None:
        """Forget the frames not yet handed to the socket (never a frame half written)."""
        dropped = sum(map(len, self.queue))
        self.queue = []
        self._queued(-dropped)

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
            self.close(CLOSE_TRY_AGAIN, "too slow: reconnect and sync", drop_queue=True)
            return
        self.queue.append(wire)
        self._queued(len(wire))
        if self.writer is None and not self.dirty:
            if batch is not None:
                self.dirty = True
                batch.dirty.append(self)
            else:
                self.flush()
        if self.budget.limit and self.budget.total > self.budget.limit:
            self.budget.shed()

    def flush(self) -> None:
        """Write what is queued now if the socket takes it; else leave it to a writer.

        Most frames go out here with one non-blocking send and no greenlet at all;
        only a socket whose buffer is full gets a writer, which waits for the peer.
        """
        self.dirty = False
        if self.writer is not None or not self.queue:
            return
        data = self.queue[0] if len(self.queue) == 1 else b"".join(self.queue)
        self.queue = []
        try:
            sent = self.transport.try_send(data)
        except OSError:
            self._queued(-self.queued_bytes)
            self.transport.abort()
            return
        self._queued(-sent)
        if sent != len(data):
            # The rest of a frame the socket took in part: the writer's, never the queue's,
            # so that dropping the queue can never cut a frame in two.
            self.writer = gevent.spawn(self._write_loop, data[sent:] if sent else data)

    def _write_loop(self, first: bytes = b"") -> None:
        """Drain the queue, waiting for the peer, up to 64 frames per system call.

        ``queued_bytes`` counts what the loop holds until the socket took it.
        """
        send_all = self.transport.send_all
        try:
            if first:
                send_all(first)
                self._queued(-len(first))
            while self.queue:
                parts, self.queue = self.queue, []
                for start in range(0, len(parts), 64):
                    chunk = b"".join(parts[start:start + 64]) if len(parts) > 1 else parts[0]
                    send_all(chunk)
                    self._queued(-len(chunk))
        except OSError:
            # The peer is gone; the reader notices too and unregisters us.
            self.queue = []
            self._queued(-self.queued_bytes)
            self.transport.abort()
        finally:
            self.writer = None
        if self.closing:
            self._finish_close()

    def wait_until_read(self, limit: int) -> None:
        """Block this greenlet while more than ``limit`` bytes wait for the peer to read.

        The socket's handler calls it before answering a request for a page of history
        (or unread, or sync): a client that asks and never reads stops being served
        (and, no longer read, is dropped by the pinger), instead of filling memory.
        """
        while self.queued_bytes > limit and not self.closing and self.transport.connected:
            if self.drained is None:
                self.drained = GeventEvent()
            self.drained.clear()
            self.drained.wait(1.0)

    def close(self, code: int, reason: str = "", drop_queue: bool = False) -> None:
        """Send a close frame after what is queued (or instead of it) and end the socket."""
        if self.closing:
            return
        if drop_queue:
            self._drop_queue()
        frame = self.transport.close_frame(code, reason)
        if frame:
            self.queue.append(frame)
            self._queued(len(frame))
        self.closing = True
        if self.writer is None:
            self.writer = gevent.spawn(self._write_loop)
        # A peer that never reads would keep the close frame queued forever.
        gevent.spawn_later(5, self._abort)

    def _abort(self) -> None:
        """Drop the TCP connection; a writer blocked on it gives its queue back on the error."""
        self.transport.abort()
        if self.writer is None:
            self._drop_queue()

    def discard(self) -> None:
        """The connection's life is over: drop the socket and whatever is still queued."""
        self.closing = True
        self._abort()

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
            self._abort()
            return
        transport.pong_received = False
        self.enqueue(transport.ping_frame())


class Registry:
    """Lock-guarded maps of user -> connections and group -> locally connected members."""

    def __init__(self, queue_budget_bytes: int = 0) -> None:
        self.budget = QueueBudget(queue_budget_bytes, self.shed)
        self._shed_after = 0.0
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

    def catch_up(self) -> None:
        """Tell every connection it may have missed frames: the client answers with sync."""
        frame = text_frame(CATCH_UP)
        for conn in self.connections():
            conn.enqueue(frame)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server restarting") -> None:
        """Close every connection (graceful shutdown): clients reconnect elsewhere at once."""
        for conn in self.connections():
            conn.close(code, reason)

    def close_auth(self, auth_ids: set[int]) -> None:
        """Close the connections opened with these (revoked) credentials."""
        for conn in self.connections():
            if conn.auth_id in auth_ids:
                conn.close(CLOSE_POLICY, "logged out")
