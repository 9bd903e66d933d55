"""One live WebSocket's outbound side: a bounded queue, one writer, and the budgets.

Each connection has one bounded queue and at most one writer greenlet, started
when there is something to write and gone when the queue is empty, so an idle
connection costs no greenlet of its own and a slow reader only ever fills its
own queue. Frames are whole when they reach the socket: a frame the socket took
in part is finished by the writer, never dropped.
"""
from __future__ import annotations

import itertools
import logging
import os
import secrets
from typing import Callable, Protocol

import gevent
from gevent.event import Event as GeventEvent

from .frames import text_frame
from .transport import CLOSE_TRY_AGAIN

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
