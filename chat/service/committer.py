"""The message committer: every message and change of this process is checked, stored
and answered here.

Every send and every edit, recall or reaction, from every connection of this
process and from the HTTP API, goes through one ``MessageCommitter`` (via
``chat.service.sending``). It takes whatever has queued up while the previous
batch was being checked (a group commit: no artificial wait) and runs the batch
through its phases in a pipeline of three greenlets (the first two with a database
connection each), so that batch N+1 is checked while batch N is written and
committed, and batch N-1 is answered and published: the **checker** runs phases
1-2, the **writer** phase 3, the **publisher** phase 4, batch after batch in commit
order (under the order lock of several processes, below, the writer publishes its
batch itself before unlocking). Edits, recalls and reactions are applied by the
writer, to their messages read again under row locks held until the COMMIT, so that
changes to one message apply one after the other whichever batch or process made
them; the checker has already done their lookups.

1. **collapse**: repeats of one ``(sender, client_id)`` in the batch share one answer;
2. **check** (``chat.service.checks``): resends answered from the store, then each
   message checked in docs/protocol.md's order, then the stranger rule
   (``chat.service.stranger``);
3. **write**: the changed messages read again, locked (the quoted ones read again),
   resent change keys looked up again, and each change checked and applied in the
   protocol's order; ids allocated in commit order for the
   messages and the changes that changed something, one multi-row INSERT, the changes'
   rows (on MySQL all sent as one query once the ids are known), one COMMIT;
4. **answer**: each message and update is published once, and each sender gets its
   ack (an ack is only ever sent for a batch whose COMMIT has returned).

Ordering across processes: ids come from the ``message_sequence`` row, whose
lock is held until COMMIT, so ids follow commit order and ``sync`` from the
largest id a client saw never skips a message or update that committed late.
Nothing else is shared: each process PUBLISHes its committed batch at once, and
every process hands committed batches (its own acks included) to its connections
in id order, whichever process committed them (``chat.bus.sequencer``, which reads
back from the database what a process that died after its COMMIT never published).
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Callable
from time import monotonic, perf_counter

import gevent
import orjson
from gevent.event import AsyncResult
from gevent.queue import Channel, Queue, SimpleQueue

from ..bus import Batch, Bus, Event, Presence
from ..errors import DATABASE_UNAVAILABLE, ChatError, NotFound, ServerBusy
from ..store.committer_sql import MessageStore, as_datetime, db_time
from ..store.committer_writes import NewId
from ..store.counters import Counters
from ..store.models import utcnow
from . import rich
from .changes import Applied, reply_refresh
from .checks import BatchChecks, Checked
from .i18n import N_
from .outgoing import Change, OpenBatch, Outgoing, Row, Stored
from .publishing import add_events
from .settings import ServiceSettings
from .shapes import ack_frame, change_ack, dumps, message_frame, update_frame
from .stranger import StrangerRule

log = logging.getLogger("chat.committer")

NOT_IN_TIME = N_("the message could not be stored in time; retry with the same client_id")
Item = Outgoing | Change


class _Committed:
    """A committed batch (ids ``first..last``) on its way to the publisher."""

    __slots__ = ("items", "rows", "applied", "now", "first", "last")

    def __init__(self, items: list[Outgoing], rows: list[Row], applied: list[Applied],
                 now, first: int, last: int) -> None:
        self.items, self.rows, self.applied = items, rows, applied
        self.now, self.first, self.last = now, first, last


class MessageCommitter:
    """The single writer of messages and changes in this process (a group commit loop)."""

    def __init__(self, app, settings: ServiceSettings, bus: Bus, counters: Counters,
                 stats, open_batch: OpenBatch = nullcontext,
                 files: rich.FileResolver = rich.no_files) -> None:
        self.app = app
        self.settings = settings
        self.bus = bus
        self.counters = counters
        self.stats = stats
        # Holds the acks and deliveries of one batch so that each connection gets them in
        # one write (the registry's; wired by the runtime, so this module needs no registry).
        self.open_batch = open_batch
        self.queue: SimpleQueue = SimpleQueue()
        self.greenlet: gevent.Greenlet | None = None  # the checker
        self.writer: gevent.Greenlet | None = None
        # The checker hands over one batch at a time: it waits until the writer takes it,
        # so at most one checked batch waits while another is written.
        self._handoff: Channel = Channel()
        # Committed batches waiting for the publisher, in commit order. Small, so that a
        # writer that runs ahead of its acks waits (and what is queued stays bounded).
        self._committed: Queue = Queue(maxsize=2)
        self.publisher: gevent.Greenlet | None = None
        self.publishing = 0  # committed batches not yet answered and published
        self.store: MessageStore | None = None  # the writer's connection
        self.check_store: MessageStore | None = None  # the checker's
        # What a dead or unreachable database raises: through the pool (SQLAlchemy's
        # errors) or from the bare connection (the driver's own).
        from ..extensions import db
        with app.app_context():
            self.db_down = (*DATABASE_UNAVAILABLE, db.engine.dialect.loaded_dbapi.Error)
        self.names: dict[int, str] = {}
        self.checks = BatchChecks(settings, self.names, self._fail, files)
        self.stranger = StrangerRule(settings, counters, self)
        self.known_pairs: set[str] = set()
        self.inflight = 0
        self._now = utcnow()  # the time of the batch being written
        self._written: tuple[int, int] | None = None  # the batch's ids, once committed
        # Told of each committed batch's messages after they are published (Web Push's
        # queue: it must return at once).
        self.on_messages: Callable[[list[Row]], None] | None = None

    # -- the public face ----------------------------------------------------

    def start(self) -> None:
        """Start the checker, the writer and the publisher (once; the first ``submit``
        also does)."""
        if self.greenlet is None:
            self.publisher = gevent.spawn(self._publish_loop)
            self.writer = gevent.spawn(self._write_loop)
            self.greenlet = gevent.spawn(self._run)

    def submit(self, item: Item) -> None:
        """Queue a message or change; its ``answer`` is called once it is stored or refused."""
        if not item.deadline:
            item.deadline = monotonic() + self.settings.send_timeout
        self.start()
        self.stats.messages_in += 1
        self.queue.put(item)

    def submit_and_wait(self, item: Item) -> tuple[dict, bool]:
        """Submit and block this greenlet until the ack: (ack, created) or raises ChatError.

        An item not answered by its deadline is given up (503): the committer drops it
        if it has not begun writing it, so a retry with the same client_id is safe.
        """
        result = AsyncResult()
        item.answer = lambda ack, err, created, batch: result.set((ack, err, created))
        self.submit(item)
        try:
            ack, err, created = result.get(timeout=max(0.0, item.deadline - monotonic()))
        except gevent.Timeout:
            item.deadline = 0.0  # expired: refused if it has not been picked up yet
            raise ServerBusy(NOT_IN_TIME) from None
        if err is not None:
            raise err
        return ack, created

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued so far is stored (graceful shutdown)."""
        deadline = perf_counter() + timeout
        while self._busy() and perf_counter() < deadline:
            gevent.sleep(0.05)
        return not self._busy()

    def _busy(self) -> bool:
        return (not self.queue.empty() or self.inflight > 0 or self.publishing > 0
                or self.bus.holding() > 0)

    # -- what the stranger rule uses --------------------------------------------

    def _store_attr(self) -> str:
        return "check_store" if gevent.getcurrent() is self.greenlet else "store"

    def connection(self) -> MessageStore:
        """The calling stage's own database connection, the checker's or the writer's
        (opened again after a failure)."""
        attr = self._store_attr()
        store = getattr(self, attr)
        if store is None or store.closed:
            from ..extensions import db
            store = MessageStore(db.engine, reads_only=attr == "check_store")
            setattr(self, attr, store)
        return store

    def drop_connection(self) -> None:
        """Throw the calling stage's connection away after an error (it may be dead)."""
        attr = self._store_attr()
        store = getattr(self, attr)
        setattr(self, attr, None)
        if store is not None:
            store.discard()

    def stop(self) -> None:
        """Stop the greenlets and close both connections (tests; the process's end)."""
        for greenlet in (self.greenlet, self.writer, self.publisher):
            if greenlet is not None:
                greenlet.kill()
        self.greenlet = self.writer = self.publisher = None
        self._committed = Queue(maxsize=2)  # what a killed publisher left is not coming
        self.publishing = 0
        for attr in ("store", "check_store"):
            store = getattr(self, attr)
            setattr(self, attr, None)
            if store is not None:
                store.discard()

    def fail(self, item: Item, error: ChatError) -> None:
        """Answer an item (and its repeats in the batch) with an error."""
        self._fail(item, error)

    # -- the loop -----------------------------------------------------------

    def _run(self) -> None:
        """The checker: take what queued up, check it, hand it to the writer."""
        with self.app.app_context():
            while True:
                batch = [self.queue.get()]
                while len(batch) < self.settings.batch_max and not self.queue.empty():
                    batch.append(self.queue.get())
                self.inflight += len(batch)
                started = perf_counter()
                handed = False
                try:
                    job = self._check_messages(batch)
                    if job is not None:
                        self._handoff.put((job, started, len(batch)))  # waits for the writer
                        handed = True
                except Exception:  # never let one bad batch stop sending for everyone
                    log.exception("event=batch_failed size=%s", len(batch))
                    for item in batch:
                        self._fail(item, ServerBusy())
                finally:
                    if not handed:
                        self.inflight -= len(batch)
                        self._observe(started, len(batch))

    def _write_loop(self) -> None:
        """The writer: write and commit what the checker handed over (the publisher
        answers and publishes it)."""
        with self.app.app_context():
            while True:
                job, started, size = self._handoff.get()
                try:
                    self._write_checked(job)
                except Exception:  # never let one bad batch stop sending for everyone
                    log.exception("event=batch_failed size=%s", size)
                    for item in (*job.messages, *job.changes):
                        self._fail(item, ServerBusy())
                finally:
                    self.inflight -= size
                    self._observe(started, size)

    def _publish_loop(self) -> None:
        """The publisher: acks and deliveries of committed batches, in commit order."""
        with self.app.app_context():
            while True:
                job: _Committed = self._committed.get()
                try:
                    self._answer_and_publish(job)
                except Exception:  # stored, but unanswered: a resend gets the stored ack
                    log.exception("event=publish_failed size=%s", len(job.items))
                    self.bus.forget(job.first)  # read back, then, by the sequencer
                    for item in (*job.items, *(a.change for a in job.applied)):
                        self._fail(item, ServerBusy())
                finally:
                    self.publishing -= 1

    def _observe(self, started: float, size: int) -> None:
        self.stats.batches += 1
        self.stats.observe(perf_counter() - started, size)

    def _fail(self, item: Item, error: ChatError) -> None:
        self.stats.error(error.code, 1 + len(item.duplicates))
        self._answer(item, None, error, False, None)

    @staticmethod
    def _answer(item: Item, ack: dict | None, error: ChatError | None, created: bool,
                batch: Batch | None) -> None:
        for each in (item, *item.duplicates):
            try:
                each.answer(ack, error, created and each is item, batch)
            except Exception:
                log.exception("event=answer_failed")

    def _check_messages(self, batch: list[Item]) -> Checked | None:
        """The checker's part: a batch checked (its resends answered, the stranger rule
        applied) for the writer, ``None`` when nothing is left to write."""
        batch = self._refuse_late(batch)
        if not batch:
            return None
        messages = self._collapse([i for i in batch if isinstance(i, Outgoing)], "sender_id")
        changes = self._collapse([i for i in batch if isinstance(i, Change)], "actor_id")
        try:
            store = self.connection()
            checked = self.checks.check(store, messages, changes)
            self._answer_stored(store, checked, messages, changes)
        except self.db_down as exc:
            log.warning("event=db_unavailable phase=check error=%s",
                        type(getattr(exc, "orig", exc)).__name__)
            self.drop_connection()
            for item in (*messages, *changes):
                self._fail(item, ServerBusy())
            return None
        checked.messages = self.stranger.apply(checked.messages, checked.mutual)
        self._end_read()
        return checked if checked.messages or checked.changes else None

    def _write_checked(self, checked: Checked) -> None:
        """The writer's part of a checked batch: what expired while it waited is refused
        unwritten (its stranger count given back), the rest stored and published."""
        now = monotonic()
        late = [i for i in (*checked.messages, *checked.changes) if i.deadline <= now]
        if late:
            undo = [i.counted for i in late if isinstance(i, Outgoing) and i.counted is not None]
            if undo:
                self.counters.decr_many(undo)
            for item in late:
                self._fail(item, ServerBusy(NOT_IN_TIME))
            checked.messages = [i for i in checked.messages if i.deadline > now]
            checked.changes = [c for c in checked.changes if c.deadline > now]
            if not checked.messages and not checked.changes:
                return
        self._store_and_publish(checked)

    def _end_read(self) -> None:
        """End the lookup's transaction, or the next batch would read an old snapshot."""
        try:
            store = getattr(self, self._store_attr())
            if store is not None and not store.autocommit:
                store.rollback()
        except self.db_down:
            self.drop_connection()

    def _refuse_late(self, batch: list[Item]) -> list[Item]:
        """Items past their deadline (the database was hung) get 503, unwritten."""
        now = monotonic()
        late = [item for item in batch if item.deadline <= now]
        for item in late:
            self._fail(item, ServerBusy(NOT_IN_TIME))
        return [item for item in batch if item.deadline > now] if late else batch

    # -- phase 1: collapse ----------------------------------------------------

    @staticmethod
    def _collapse(batch: list, author: str) -> list:
        """One item per (author, client_id): repeats in the same batch share its answer."""
        first: dict[tuple[int, str], Item] = {}
        items = []
        for item in batch:
            key = item.key
            if key is not None:
                pair = (getattr(item, author), key)
                if pair in first:
                    first[pair].duplicates.append(item)
                    continue
                first[pair] = item
            items.append(item)
        return items

    def _answer_stored(self, store: MessageStore, checked: Checked, messages: list[Outgoing],
                       changes: list[Change]) -> None:
        """Resends of stored client_ids get the stored message's (or change's) ack."""
        if checked.stored:
            rows = {r[0]: Stored(*r[:5], as_datetime(r[5]))
                    for r in store.messages_by_id(list(checked.stored.values()))}
            for item in messages:
                row = rows.get(checked.stored.get((item.sender_id, item.key)))
                if row is None:
                    continue
                online = None
                if row.group_id is None:
                    online = bool(self.bus.online([row.recipient_id], exclude_conn=item.origin))
                self._answer_when_here(row.id, item, ack_frame(row, online))
        self._answer_stored_changes(changes, checked.stored_changes)

    def _answer_stored_changes(self, changes: list[Change],
                               stored: dict[tuple[int, str], tuple]) -> None:
        """Resends of stored change client_ids get the stored change's ack."""
        for change in changes:
            found = stored.get((change.actor_id, change.key))
            if found is not None:
                self._answer_when_here(found[0], change,
                                       change_ack(found[0], found[1], change.client_id))

    def _answer_when_here(self, id: int | None, item: Item, ack: dict) -> None:
        """A resend's stored ack, once every id up to its own has gone out here: its
        original may have been committed by another process whose batch (or an earlier
        one) is not here yet, and a cursor moved to this ack must not skip them."""
        if id is None:
            self._answer(item, ack, None, False, None)
        else:
            self.bus.after(id, lambda: self._answer(item, ack, None, False, None))

    # -- phases 3 and 4: write, then answer and publish ---------------------------

    def _store_and_publish(self, checked: Checked) -> None:
        """Write the batch, then hand it to the publisher (acks and deliveries)."""
        items = checked.messages
        changes = checked.changes  # unanswered changes (until they are applied, below)
        applied: list[Applied] = []
        self._written = None
        try:
            store = self.connection()
            applied = self._apply_changes(store, checked)
            changes = [a.change for a in applied]
            items = self._with_files_held(store, items)
            try:
                if items or applied:
                    rows = self._write(store, items, applied)
                else:  # every change refused or changing nothing: the read's locks go
                    rows = []
                    store.rollback()
            except store.IntegrityError:
                # A resend of the same client_id raced us from another connection or
                # process: answer it from what is stored now, write the rest.
                store.rollback()
                checked.stored = store.stored_client_ids(
                    {(i.sender_id, i.key) for i in items if i.key is not None})
                checked.stored_changes = store.stored_changes(
                    {(a.change.actor_id, a.change.key) for a in applied if a.change.key})
                self._answer_stored(store, checked, items, [a.change for a in applied])
                for each in applied:  # their messages' state was read under locks now gone
                    if (each.change.actor_id, each.change.key) not in checked.stored_changes:
                        self._fail(each.change, ServerBusy())
                items = [i for i in items if (i.sender_id, i.key) not in checked.stored]
                applied, changes = [], []
                # The rollback let go of the files too: held again (a clean-up may have
                # deleted one since).
                items = self._with_files_held(store, items)
                rows = self._write(store, items, applied) if items else []
                if not items:
                    store.rollback()
        except (*self.db_down, ServerBusy) as exc:
            log.warning("event=db_unavailable phase=commit error=%s",
                        type(getattr(exc, "orig", exc)).__name__)
            self.drop_connection()
            undo = [i.counted for i in items if i.counted is not None]
            if undo:
                self.counters.decr_many(undo)
            for item in (*items, *changes):
                self._fail(item, ServerBusy())
            return
        except Exception:
            # Not the database: a bug. The connection may hold the sequence row and half a
            # transaction; closing it lets go of both (the loop answers the batch 503).
            self.drop_connection()
            raise
        if self._written is None:
            return  # nothing was written
        first, last = self._written
        self.publishing += 1
        self._committed.put(_Committed(items, rows, applied, self._now, first, last))

    def _apply_changes(self, store: MessageStore, checked: Checked) -> list[Applied]:
        """The batch's changes applied to their messages as they are now, read under
        locks until COMMIT (so that changes to one message from several batches and
        processes apply one after the other); the replies' quotes refreshed from a read
        of their messages as they are now (no lock: every writer that could change them
        has committed, this process's batches being written one after the other and
        other processes' under the order lock). Resends of a change committed since the
        check get its ack; changes that change nothing are acked at once; the others
        are returned."""
        changed = {c.message_id for c in checked.changes}
        quoted = {m.reply_to for m in checked.messages if m.reply_to is not None} - changed
        if not changed and not quoted:
            return []
        # The change keys read under the rows' locks, so a change whose original was being
        # written when the check looked (in this process or another) is found now, as it
        # was before. One round trip on MySQL.
        current, resent = store.current_targets(
            sorted(changed), sorted(quoted),
            {(c.actor_id, c.key) for c in checked.changes if c.key is not None})
        if changed:
            self._answer_stored_changes(checked.changes, resent)
            if resent:
                checked.changes = [c for c in checked.changes
                                   if (c.actor_id, c.key) not in resent]
        applied = []
        for each in self.checks.apply_changes(checked, current):
            if each.payload is None:  # changed nothing: acked with the message's id
                self._answer(each.change, change_ack(None, each.state.id, each.change.client_id),
                             None, False, None)
            else:
                applied.append(each)
        return applied

    def _answer_and_publish(self, job: _Committed) -> None:
        """Publish each message and update (serialised once); ack each sender and deliver
        here when every id before the batch has gone out here.

        Who listens where is asked after the COMMIT: a socket that subscribes on another
        process after this question reads the database after the COMMIT (it subscribes
        before its first ``sync``), so only the channels listened to elsewhere now are
        PUBLISHed."""
        events: list[Event] = []
        rows = job.rows
        for item, row in zip(job.items, rows):
            add_events(events, dumps(message_frame(row)), item.sender_id, item.sender_id,
                       item.recipient_id, item.group_id, item.origin)
        for each in job.applied:
            change, state = each.change, each.state
            frame = update_frame(change.id, change.kind, state, change.actor_id,
                                 job.now, each.payload)
            add_events(events, dumps(frame), change.actor_id, state.sender_id,
                       state.recipient_id, state.group_id, change.origin)

        def asked(presence: Presence) -> None:  # before any ack of the batch goes out
            for item in job.items:
                if item.recipient_id is not None:
                    exclude = item.origin if item.recipient_id == item.sender_id else None
                    item.online = bool(self.bus.online([item.recipient_id],
                                                       exclude_conn=exclude,
                                                       presence=presence))

        def deliver(events_too: bool) -> None:
            with self.open_batch() as batch:
                for item, row in zip(job.items, rows):
                    self._answer(item, ack_frame(row, item.online), None, True, batch)
                for each in job.applied:
                    change = each.change
                    self._answer(change, change_ack(change.id, each.state.id,
                                                    change.client_id), None, True, batch)
                if events_too:
                    self.bus.deliver_here(events, batch)
        self.bus.publish_committed(job.first, job.last, events, None, deliver, asked)
        if self.on_messages is not None and rows:
            self.on_messages(rows)

    def _with_files_held(self, store: MessageStore, items: list[Outgoing]) -> list[Outgoing]:
        """The messages whose files all still exist, locked until COMMIT; the others (a
        clean-up deleted a file while the write waited, which the clean-up's margin makes
        rare) get 404 as at their check, unwritten, their stranger count given back."""
        wanted = sorted({upload_id for item in items for upload_id in item.attachments})
        if not wanted:
            return items
        present = store.hold_uploads(wanted)
        if len(present) == len(wanted):
            return items
        kept, gone = [], []
        for item in items:
            held = all(upload_id in present for upload_id in item.attachments)
            (kept if held else gone).append(item)
        undo = [item.counted for item in gone if item.counted is not None]
        if undo:
            self.counters.decr_many(undo)
        for item in gone:
            self._fail(item, NotFound(N_("no such upload")))
        return kept

    def _write(self, store: MessageStore, items: list[Outgoing],
               applied: list[Applied]) -> list[Row]:
        """Allocate ids in commit order, INSERT the messages, write the changes, COMMIT.

        On MySQL one query does it all, naming the ids ``NewId(k)``: the sequence row's
        lock, which every process's writer waits for, is not held across a round trip
        here (but for a batch sent in parts, past ``KEEP_AT_MOST``, or a failed one's
        ROLLBACK). The ids are known once it returns; a read-back of the sequencer waits for
        them meanwhile (``bus.writing``). Elsewhere the ids are allocated first."""
        count = len(items) + len(applied)
        if store.ids_in_query:
            with self.bus.writing():
                extras = self._write_allocated(store, items, applied, NewId)
                first_id = store.first_id
                assert first_id is not None, "the write query returned no first id"
                # These ids go out from here with their senders' own frames: no read-back
                # of them (``chat.bus.sequencer``).
                self.bus.expect(first_id, first_id + count - 1)
        else:
            first_id = store.allocate_ids(count)
            self.bus.expect(first_id, first_id + count - 1)
            try:
                extras = self._write_allocated(store, items, applied, lambda k: first_id + k)
            except BaseException:
                self.bus.forget(first_id)
                raise
        self._written = (first_id, first_id + count - 1)
        return self._numbered(items, applied, first_id, extras)

    def _numbered(self, items: list[Outgoing], applied: list[Applied], first_id: int,
                  extras: list[tuple] | None) -> list[Row]:
        """The committed batch's ids given to its messages and changes; the messages' rows
        (``extras``: their reply, mentions and files, in a batch that has any)."""
        now, rows = self._now, []
        for offset, item in enumerate(items):
            item.id = first_id + offset
            row = Row(item.id, item.sender_id, item.recipient_id, item.group_id, item.content,
                      item.client_id, now, self.names[item.sender_id])
            if extras is not None:
                (row.reply_to_id, row.reply_sender_id, row.reply_excerpt, row.reply_recalled,
                 row.mentions, row.mention_all, row.attachments) = extras[offset]
            rows.append(row)
        for offset, each in enumerate(applied, start=first_id + len(items)):
            each.change.id = offset
        return rows

    def _write_allocated(self, store: MessageStore, items: list[Outgoing],
                         applied: list[Applied],
                         id_of: Callable[[int], int | NewId]) -> list[tuple] | None:
        """Every write of the batch and its COMMIT, in one round trip where the database
        allows; ``id_of(k)`` is the batch's k-th id (messages first, then changes).
        Returns the messages' reply, mention and file columns when the batch has any."""
        self._now = now = utcnow()
        stamp = db_time(now)
        rich_batch = any(rich.is_rich(item) for item in items)
        values, mentions = [], []
        extras: list[tuple] | None = [] if rich_batch else None
        with store.in_one_round_trip():  # nothing needs an answer but the first id
            if store.ids_in_query:
                store.allocate_ids_in_query(len(items) + len(applied))
            for offset, item in enumerate(items):
                item.id = id_of(offset)
                value = (item.id, item.conv_key, item.sender_id, item.recipient_id,
                         item.group_id, item.content, item.client_id, stamp)
                if extras is not None:
                    extra = rich.stored_columns(item)
                    extras.append(extra)
                    value += extra
                    mentions.extend(rich.mention_rows(item))
                values.append(value)
            if values:
                store.insert_messages(values, rich_batch)
            store.insert_mentions(mentions)
            store.insert_upload_links([(upload_id, item.id) for item in items
                                       for upload_id in item.attachments])
            new_pairs = self._write_cursors(store, items)
            self._write_changes(store, applied, id_of, len(items), stamp)
            store.commit_with_writes()
        if len(self.known_pairs) > 200_000:
            self.known_pairs.clear()
        self.known_pairs.update(new_pairs)
        return extras

    def _write_cursors(self, store: MessageStore, items: list[Outgoing]) -> dict:
        """Read cursors for private chats seen for the first time (a group's exist)."""
        new_pairs = {}
        for item in items:
            if item.recipient_id is not None and item.conv_key not in self.known_pairs:
                new_pairs[item.conv_key] = item
        if new_pairs:
            cursors = []
            for key, item in new_pairs.items():
                cursors.append((item.sender_id, key, item.recipient_id))
                if item.recipient_id != item.sender_id:
                    cursors.append((item.recipient_id, key, item.sender_id))
            store.insert_cursors(cursors)
        return new_pairs

    @staticmethod
    def _write_changes(store: MessageStore, applied: list[Applied],
                       id_of: Callable[[int], int | NewId], skip: int, stamp: str) -> None:
        """The updates' rows (``id_of(skip + k)`` the k-th's id), and each changed
        message's new state (and what follows)."""
        if not applied:
            return
        updates, states = [], {}
        for offset, each in enumerate(applied, start=skip):
            change = each.change
            change.id = id_of(offset)
            updates.append((change.id, each.state.conv_key, each.state.id, change.kind,
                            change.actor_id, change.key, orjson.dumps(each.payload).decode(),
                            stamp))
            states[each.state.id] = each.state
        store.insert_updates(updates)
        changed = [s for s in states.values() if s.changed]
        store.save_states([s.stored() for s in changed])
        store.refresh_replies([reply_refresh(s) for s in changed if s.edited or s.recalled_now])
        recalled = [s for s in changed if s.recalled_now]
        store.delete_mentions([key for s in recalled for key in s.forgotten_mentions])
        store.scrub_edits([s.id for s in recalled])
