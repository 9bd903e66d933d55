"""Committed batches handed to this process's connections in id order, whichever
process committed them and whenever their PUBLISH arrives.

Ids come from one sequence row whose lock each batch holds until its COMMIT, so the
committed ids are dense and in commit order: every id is either committed or handed
out again to the next batch. What is not in order is the publishing: process A
commits ids 100-110, process B commits 111-120, and B's PUBLISH may reach Redis (or
this process) first. A connection that received 111 and then lost its socket would
``sync`` from 111 and never see 100-110. So every process delivers committed ids in
order here:

- each PUBLISHed event of a batch carries the batch's first id, and after its events
  the batch's publisher sends a *notice* ``(first, last)`` to every process (on a
  cluster, one on each shard that carried its events: a shard delivers in order, so
  once every shard's notice is in, every event is; on a single Redis, the batch's
  last event carries the notice itself when every other process listens to its
  channel);
- an event or a batch of this process's own waits until every id before its batch
  has been delivered here, then goes, and the position moves to its last id;
- a gap that does not close (a publisher died between its COMMIT and its PUBLISH, or
  believed itself alone, or Redis lost the message) is read back from the database
  after ``GAP_WAIT`` seconds (at once while Redis is down: nothing else can close it)
  and delivered from there; an idle process compares its position with the database's
  last id every ``IDLE_CHECK`` seconds, for a death followed by silence;
- a read-back never covers this process's own batches: the committer says which ids it
  is writing (``expect``), and a read-back stops before them, so that the sending
  connection gets its ack and not its message back (the database keeps no connection to
  leave out). On MySQL the ids are allocated, written and committed by one query, so
  they are known only after the COMMIT: the write runs inside ``writing()``, and a
  read-back that ends while it runs waits for it and its ``expect`` before handing
  anything over. An expected batch that is not handed over within ``OWN_WAIT`` seconds
  (its publisher failed) is read back like any other.

No process waits for another's lock: the only shared section left is the sequence
row, from the id allocation to the COMMIT.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from time import monotonic
from typing import Callable, Iterator, Protocol, Sequence

import gevent
from gevent.event import Event as Signal
from gevent.lock import RLock

from .base import Event

log = logging.getLogger("chat.bus")

# What a process's own batch does once its turn comes: its acks, and its events to this
# process's connections when ``True`` (``False``: the database's copy went out already).
Deliver = Callable[[bool], None]


class Backfill(Protocol):
    """What the sequencer reads from the database (wired by the runtime)."""

    def last_id(self) -> int: ...
    def events_between(self, low: int, high: int) -> list[Event]: ...


@dataclass(slots=True)
class _Batch:
    """A committed batch seen here, waiting for its turn."""

    last: int
    events: list[Event] = field(default_factory=list)
    deliver: Deliver | None = None  # set for this process's own batches
    shards: int = 0  # notices still missing (a remote batch is ready at 0)
    noticed: bool = False
    since: float = field(default_factory=monotonic)


class Sequencer:
    """Delivers committed ids to this process's connections in id order.

    Its state changes under one lock, and the database is never read while holding it:
    a read back takes its range under the lock, reads without it, and applies what it
    read only if nothing moved the position meanwhile (the listener and the committer's
    publisher never wait for the database here)."""

    GAP_WAIT = 0.5  # seconds a gap may stay open before the database fills it
    IDLE_CHECK = 1.0  # seconds between looks at the database's last id
    MAX_WAITING = 50_000  # events, or batches, held back at most; past that, clients sync
    MAX_FILL = 5_000  # ids read back at once at most; past that, clients sync instead
    OWN_WAIT = 5.0  # seconds an expected batch of ours may take to be handed over

    def __init__(self, dispatch: Callable[[Sequence[Event]], None],
                 catch_up: Callable[[], None]) -> None:
        self.dispatch = dispatch
        self.catch_up = catch_up
        self.backfill: Backfill | None = None
        self.position: int | None = None  # every id up to it has gone out here
        self.floor = 0  # ids up to it were committed before we first began to listen
        self.waiting: dict[int, _Batch] = {}  # first id -> batch
        # Our batches being written: first id -> (last id, since), until handed over.
        self.expected: dict[int, tuple[int, float]] = {}
        # Our writes whose ids are not known yet (``writing``): set when they are.
        self.writes: set[Signal] = set()
        self.held = 0  # events in ``waiting``
        self.live = False  # Redis is up: a gap may still close by itself
        # Calls waiting for the position to reach an id (acks of resends): (id, call).
        self.later: list[tuple[int, Callable[[], None]]] = []
        # The listener, the committer's publisher and the ticker all come here (re-entrant:
        # a delivery may publish, and publishing may come back here).
        self._lock = RLock()
        self._filling = False
        self._unreadable = False  # the last read-back found the database down
        self._seen_last: int | None = None
        self._looked = 0.0
        self._ticker: gevent.Greenlet | None = None

    # -- the inputs ---------------------------------------------------------

    def begin(self) -> None:
        """Start (again) from the database's last id: called before subscribing, so a
        batch committed after this read is heard of (or found as a gap). After a loss of
        Redis, what was committed meanwhile is read back first."""
        if self._ticker is None:
            self._ticker = gevent.spawn(self._tick_forever)
        last = self._read_last()
        if last is None:
            return  # the database is down: the ticker tries again
        self._unreadable = False
        if self.position is not None:
            self._fill(upto=last)
        with self._lock:
            if self.position is None:
                self.position = self.floor = last
            elif (self.position < last and self._unreadable
                  and self._ours_from(self.position + 1, last) is None):
                self._give_up("database_unreadable")
                self.position = last
            # Otherwise what is left (a read-back already running, a batch of ours being
            # written inside the range) is read back by the ticker.
            self._seen_last = None

    def expect(self, first: int, last: int) -> None:
        """This process is writing ids ``first..last`` and will hand them over (``own``)
        after its COMMIT: until then, no read-back covers them."""
        with self._lock:
            self.expected[first] = (last, monotonic())

    @contextmanager
    def writing(self) -> Iterator[None]:
        """This process is writing a batch whose ids it learns only with its COMMIT (one
        query allocates, writes and commits them): ``expect`` them inside, before the end.
        A read-back that ends meanwhile waits for the end, since it may hold those ids."""
        done = Signal()
        self.writes.add(done)
        try:
            yield
        finally:
            self.writes.discard(done)
            done.set()

    def forget(self, first: int) -> None:
        """The batch expected from ``first`` was not committed (or will not be handed
        over): its ids may be read back, or handed out again."""
        with self._lock:
            self.expected.pop(first, None)

    def own(self, first: int, last: int, deliver: Deliver) -> None:
        """This process's committed batch: delivered in its turn (its acks too)."""
        with self._lock:
            self.expected.pop(first, None)
            if self.position is None or first <= self.position:
                # Committed before we first began to listen: its events have not gone out.
                # Past that: read back from the database already, so only its acks go.
                self._safely(deliver, self.position is None or first <= self.floor)
                return
            self.waiting[first] = _Batch(last, deliver=deliver, noticed=True)
            self._advance()
            gap = bool(self.waiting) and not self.live
        if gap:
            self._fill()  # nothing else can close it while Redis is down

    def after(self, id: int, call: Callable[[], None]) -> None:
        """Call once every id up to ``id`` has gone out here (the ack of a resend, whose
        message may have been committed by another process and not be here yet)."""
        with self._lock:
            if self.position is None or id <= self.position:
                self._safely(call)
            else:
                self.later.append((id, call))

    def event(self, first: int, event: Event) -> None:
        """An event of another process's batch starting at ``first``."""
        with self._lock:
            if self.position is None:
                self._safely(self.dispatch, [event])  # nothing to order it by
                return
            if first <= self.position:
                return  # from before we listened, or read back from the database already
            batch = self.waiting.get(first)
            if batch is None:
                batch = self.waiting[first] = _Batch(first - 1)  # ``last`` comes with notice
            batch.events.append(event)
            self.held += 1
            if self.held > self.MAX_WAITING:
                self._give_up("held_too_much")

    def notice(self, first: int, last: int, shards: int = 1) -> None:
        """Another process's batch ``first..last`` is published (its notice from one of
        the ``shards`` that carried its events)."""
        with self._lock:
            if self.position is None or first <= self.position:
                return
            batch = self.waiting.get(first)
            if batch is None:
                batch = self.waiting[first] = _Batch(last)
            batch.last = last
            if not batch.noticed:
                batch.noticed, batch.shards = True, shards
            batch.shards -= 1
            self._advance()
            if len(self.waiting) > self.MAX_WAITING:
                self._give_up("held_too_much")

    def own_waiting(self) -> int:
        """This process's batches waiting for their turn, and acks waiting for theirs."""
        return sum(1 for batch in self.waiting.values() if batch.deliver is not None) + \
            len(self.later)

    def went_down(self) -> None:
        """Redis is gone: no notice can come, so gaps are read back at once."""
        self.live = False

    def came_up(self) -> None:
        """Redis is back (after ``begin``)."""
        self.live = True

    # -- the work (under the lock) ----------------------------------------------

    def _ready(self, batch: _Batch) -> bool:
        return batch.noticed and batch.shards <= 0

    def _advance(self) -> None:
        """Deliver every batch whose turn has come."""
        while self.position is not None:
            batch = self.waiting.get(self.position + 1)
            if batch is None or not self._ready(batch):
                break
            del self.waiting[self.position + 1]
            self._release(batch, events_too=True)
            self.position = max(self.position, batch.last)
        self._call_later()

    def _call_later(self) -> None:
        if self.later and self.position is not None:
            due = [call for id, call in self.later if id <= self.position]
            if due:
                self.later = [(id, call) for id, call in self.later if id > self.position]
                for call in due:
                    self._safely(call)

    def _release(self, batch: _Batch, events_too: bool) -> None:
        self.held -= len(batch.events)
        if batch.deliver is not None:
            self._safely(batch.deliver, events_too)
        elif events_too and batch.events:
            self._safely(self.dispatch, batch.events)

    @staticmethod
    def _safely(call: Callable, *args) -> None:
        try:
            call(*args)
        except Exception:  # one failing batch never stops the ones after it
            log.exception("event=sequenced_delivery_failed")

    def _gap(self) -> int | None:
        """The last id to read back for the oldest hole: the ids before the first waiting
        batch, or that batch itself when it is next but its notices are late."""
        if self.position is None or not self.waiting:
            return None
        first = min(self.waiting)
        batch = self.waiting[first]
        if first == self.position + 1:  # not a gap: its notices are late (a shard lost)
            return batch.last if batch.noticed else first
        return first - 1

    def _ours_from(self, low: int, high: int) -> int | None:
        """The first id in ``low..high`` of a batch of ours, committed or being written
        (an expectation older than ``OWN_WAIT`` is dropped: its publisher failed)."""
        firsts = [first for first, batch in self.waiting.items()
                  if batch.deliver is not None and low <= first <= high]
        now = monotonic()
        for first, (last, since) in list(self.expected.items()):
            if now - since > self.OWN_WAIT:
                log.warning("event=own_batch_late ids=%s-%s", first, last)
                del self.expected[first]
            elif low <= first <= high:
                firsts.append(first)
        return min(firsts, default=None)

    def _writes_below(self, upto: int) -> list[Signal]:
        """Our writes in flight that may hold ids up to ``upto``: none when a batch of ours
        known to start past it exists (the writer is serial: a write in flight began after
        that batch's ids came back, so its own are larger). A write that begins later gets
        ids past every id allocated by then, ``upto`` included."""
        if not self.writes:
            return []
        if any(first > upto for first in self.expected) or any(
                first > upto and batch.deliver is not None
                for first, batch in self.waiting.items()):
            return []
        return list(self.writes)

    def _give_up(self, reason: str) -> None:
        """The gap cannot be filled or too much is held back: what waits is dropped (own
        batches still get their acks) and this process's clients sync, from cursors that
        are all below the gap since nothing past it went out here."""
        log.warning("event=sequence_given_up reason=%s held=%s", reason, self.held)
        self.catch_up()
        for first in sorted(self.waiting):
            batch = self.waiting.pop(first)
            self._release(batch, events_too=False)
            if self.position is not None:
                self.position = max(self.position, batch.last)
        self.held = 0
        self._call_later()

    # -- reading back (the database read outside the lock) ---------------------------

    def _fill(self, upto: int | None = None) -> None:
        """Read the oldest hole (or everything up to ``upto``) back from the database and
        deliver it; then whatever waited behind it. A batch of ours splits the range: it
        goes out itself, with its own frames, between the parts read back."""
        while self._fill_once(upto) and upto is not None:
            pass

    def _fill_once(self, upto: int | None) -> bool:
        """One read-back, up to ``upto`` or before the first batch of ours in the way;
        ``True`` when the position moved and more may be left."""
        with self._lock:
            if self._filling or self.position is None:
                return False
            if upto is None:
                upto = self._gap()
            low = self.position + 1
            if upto is None or upto < low:
                return False
            target = upto
            ours = self._ours_from(low, upto)
            if ours is not None:
                upto = ours - 1  # read up to it; it goes itself, in its turn
                if upto < low:
                    return False
            writes = self._writes_below(upto)
            if upto - low >= self.MAX_FILL:  # Redis was gone a long while: clients sync
                if writes:
                    return False  # a batch of ours may be inside: its ids first
                self._give_up("gap_too_long")
                self.position = max(self.position, upto)
                self._call_later()
                return False
            self._filling = True
        try:
            events = self._read_between(low, upto)
            self._unreadable = events is None
            if events is None:
                return False  # the database is down too: look again at the next tick
            for write in writes:  # it may have committed ids inside what was read
                write.wait(self.OWN_WAIT)
        finally:
            self._filling = False
        with self._lock:
            if self.position != low - 1:
                return False  # the hole closed meanwhile (its notice came): nothing to do
            if self._ours_from(low, upto) is not None:
                return False  # a batch of ours committed inside it: read again, up to it
            log.warning("event=sequence_gap_filled ids=%s-%s events=%s", low, upto,
                        len(events))
            # Other processes' batches inside what was read went out from the database:
            # what of them waited here is dropped. (An own batch is never inside: the range
            # stops before it. Past ``OWN_WAIT`` it is not known as ours any more, and then
            # only its acks go, its events having gone from the database.)
            inside = sorted(f for f in self.waiting if f <= upto)
            self._safely(self.dispatch, events)
            self.position = upto
            for first in inside:
                batch = self.waiting.pop(first)
                self._release(batch, events_too=False)
                self.position = max(self.position, batch.last)
            self._advance()
            return self.position < target

    def tick(self) -> None:
        """Begin when the database was down at connect; fill a gap older than
        ``GAP_WAIT``; deliver what a dead process committed and nobody published (the
        database's last id, seen a whole check ago, is past our position)."""
        if self.position is None:
            if self.live:
                self.begin()
                if self.position is not None:
                    self.catch_up()  # what went out unordered meanwhile: clients sync
            return
        now = monotonic()
        with self._lock:
            stale = bool(self.waiting) and \
                now - min(b.since for b in self.waiting.values()) > self.GAP_WAIT
        if stale:
            self._fill()
        if self.waiting or now - self._looked < self.IDLE_CHECK:
            return
        self._looked = now
        seen, self._seen_last = self._seen_last, self._read_last()
        if seen is not None and self.position is not None and seen > self.position:
            self._fill(upto=seen)

    def _tick_forever(self) -> None:
        while True:
            gevent.sleep(min(self.GAP_WAIT, self.IDLE_CHECK) / 2)
            try:
                self.tick()
            except Exception:
                log.exception("event=sequencer_tick_failed")

    def _read_last(self) -> int | None:
        if self.backfill is None:
            return None
        try:
            return self.backfill.last_id()
        except Exception as exc:
            log.warning("event=db_unavailable phase=sequence error=%s", type(exc).__name__)
            return None

    def _read_between(self, low: int, high: int) -> list[Event] | None:
        try:
            return self.backfill.events_between(low, high) if self.backfill else None
        except Exception as exc:
            log.warning("event=db_unavailable phase=sequence error=%s", type(exc).__name__)
            return None

    def stop(self) -> None:
        """Stop the ticker (tests; the process's end)."""
        if self._ticker is not None:
            self._ticker.kill()
            self._ticker = None
