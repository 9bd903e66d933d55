"""The message committer: every message of this process is checked, stored and answered here.

Every send from every connection of this process (and ``POST /api/messages``)
goes through one ``MessageCommitter`` (via ``chat.service.sending``). It takes
whatever has queued up while the previous batch was being written (a group
commit: no artificial wait) and runs the batch through its phases:

1. **collapse**: repeats of one ``(sender, client_id)`` in the batch share one answer;
2. **check**: one query finds resent client_ids (answered with the stored ack),
   recipients, groups, blocks, memberships and follows; then each message is
   checked in PROTOCOL.md's order: existence and permission (``policy``), its
   fields (``validation``), the stranger rule (one Redis pipeline per batch);
3. **write**: ids allocated in commit order, one multi-row INSERT, one COMMIT;
4. **answer**: each sender gets its ack, then each message is published once.

Ordering across processes: ids come from the ``message_sequence`` row, whose
lock is held until COMMIT, so ids follow commit order and ``sync`` from the
largest id a client saw never skips a message that committed late. On MySQL a
named lock is also held from the id allocation until the batch is delivered and
published, so batches are delivered in id order across processes (the bus's
fence does the rest; see ``chat.bus.redis``).
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from time import monotonic, perf_counter

import gevent
from gevent.event import AsyncResult
from gevent.queue import SimpleQueue

from ..bus import Batch, Bus, Event, Presence, group_channel, user_channel
from ..errors import DATABASE_UNAVAILABLE, ChatError, ServerBusy
from ..store.committer_sql import MessageStore, as_datetime, db_time
from ..store.counters import Counters
from ..store.models import group_conv_key, private_conv_key, utcnow
from . import policy, validation
from .i18n import N_
from .settings import ServiceSettings
from .outgoing import OpenBatch, Outgoing, Row, Stored
from .shapes import ack_frame, dumps, message_frame
from .stranger import StrangerRule

log = logging.getLogger("chat.committer")

NOT_IN_TIME = N_("the message could not be stored in time; retry with the same client_id")


class MessageCommitter:
    """The single writer of messages in this process (a group commit loop)."""

    def __init__(self, app, settings: ServiceSettings, bus: Bus, counters: Counters,
                 stats, open_batch: OpenBatch = nullcontext) -> None:
        self.app = app
        self.settings = settings
        self.bus = bus
        self.counters = counters
        self.stats = stats
        # Holds the acks and deliveries of one batch so that each connection gets them in
        # one write (the registry's; wired by the runtime, so this module needs no registry).
        self.open_batch = open_batch
        self.queue: SimpleQueue = SimpleQueue()
        self.greenlet: gevent.Greenlet | None = None
        self.store: MessageStore | None = None
        # What a dead or unreachable database raises: through the pool (SQLAlchemy's
        # errors) or from the bare connection (the driver's own).
        from ..extensions import db
        with app.app_context():
            self.db_down = (*DATABASE_UNAVAILABLE, db.engine.dialect.loaded_dbapi.Error)
        self.stranger = StrangerRule(settings, counters, self)
        self.names: dict[int, str] = {}
        self.known_pairs: set[str] = set()
        self.inflight = 0
        self._mutual: set[tuple[int, int]] = set()

    # -- the public face ----------------------------------------------------

    def submit(self, item: Outgoing) -> None:
        """Queue a message; its ``reply`` is called once it is stored or refused."""
        if not item.deadline:
            item.deadline = monotonic() + self.settings.send_timeout
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._run)
        self.stats.messages_in += 1
        self.queue.put(item)

    def submit_and_wait(self, item: Outgoing) -> tuple[dict, bool]:
        """Submit and block this greenlet until the ack: (ack, created) or raises ChatError.

        A message not answered by its deadline is given up (503): the committer drops it
        if it has not begun writing it, so a retry with the same client_id is safe.
        """
        result = AsyncResult()
        item.reply = lambda ack, err, created, batch: result.set((ack, err, created))
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
        while (not self.queue.empty() or self.inflight) and perf_counter() < deadline:
            gevent.sleep(0.05)
        return self.queue.empty() and not self.inflight

    # -- the loop -----------------------------------------------------------

    def _run(self) -> None:
        with self.app.app_context():
            while True:
                batch = [self.queue.get()]
                while len(batch) < self.settings.batch_max and not self.queue.empty():
                    batch.append(self.queue.get())
                self.inflight = len(batch)
                started = perf_counter()
                try:
                    self._process(batch)
                except Exception:  # never let one bad batch stop sending for everyone
                    log.exception("event=batch_failed size=%s", len(batch))
                    for item in batch:
                        self._fail(item, ServerBusy())
                finally:
                    self.inflight = 0
                self.stats.batches += 1
                self.stats.observe(perf_counter() - started, len(batch))

    def connection(self) -> MessageStore:
        """The committer's own database connection (opened again after a failure)."""
        return self._connection()

    def drop_connection(self) -> None:
        """Throw the connection away after an error (it may be dead)."""
        self._drop_connection()

    def fail(self, item: "Outgoing", error: ChatError) -> None:
        """Answer a message (and its repeats in the batch) with an error."""
        self._fail(item, error)

    def _connection(self) -> MessageStore:
        if self.store is None or self.store.closed:
            from ..extensions import db
            self.store = MessageStore(db.engine)
        return self.store

    def _drop_connection(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            store.discard()

    def _fail(self, item: Outgoing, error: ChatError) -> None:
        self.stats.error(error.code, 1 + len(item.duplicates))
        for each in (item, *item.duplicates):
            try:
                each.reply(None, error, False, None)
            except Exception:
                log.exception("event=reply_failed")

    def _process(self, batch: list[Outgoing]) -> None:
        batch = self._refuse_late(batch)
        if not batch:
            return
        try:
            store = self._connection()
            pending = self._check(store, self._collapse(batch))
        except self.db_down as exc:
            log.warning("event=db_unavailable phase=check error=%s",
                        type(getattr(exc, "orig", exc)).__name__)
            self._drop_connection()
            for item in batch:
                self._fail(item, ServerBusy())
            return
        pending = self._apply_stranger_rule(pending)
        if pending:
            self._store_and_publish(pending)  # ends the transaction with its COMMIT
        else:
            self._end_read()

    def _end_read(self) -> None:
        """End the lookup's transaction, or the next batch would read an old snapshot."""
        try:
            if self.store is not None:
                self.store.rollback()
        except self.db_down:
            self._drop_connection()

    def _refuse_late(self, batch: list[Outgoing]) -> list[Outgoing]:
        """Messages past their deadline (the database was hung) get 503, unwritten."""
        now = monotonic()
        late = [item for item in batch if item.deadline <= now]
        for item in late:
            self._fail(item, ServerBusy(NOT_IN_TIME))
        return [item for item in batch if item.deadline > now] if late else batch

    # -- phase 1: collapse ----------------------------------------------------

    @staticmethod
    def _collapse(batch: list[Outgoing]) -> list[Outgoing]:
        """One item per (sender, client_id): repeats in the same batch share its answer."""
        first: dict[tuple[int, str], Outgoing] = {}
        items: list[Outgoing] = []
        for item in batch:
            key = item.key
            if key is not None:
                if (item.sender_id, key) in first:
                    first[(item.sender_id, key)].duplicates.append(item)
                    continue
                first[(item.sender_id, key)] = item
            items.append(item)
        return items

    def _answer_stored(self, store: MessageStore, stored: dict[tuple[int, str], int],
                       items: list[Outgoing]) -> list[Outgoing]:
        """Resends of stored client_ids get the stored message's ack; the rest go on."""
        if not stored:
            return items
        rows = {r[0]: Stored(*r[:5], as_datetime(r[5]))
                for r in store.messages_by_id(list(stored.values()))}
        rest = []
        for item in items:
            message_id = stored.get((item.sender_id, item.key))
            row = rows.get(message_id) if message_id is not None else None
            if row is None:
                rest.append(item)
                continue
            online = None
            if row.group_id is None:
                online = bool(self.bus.online([row.recipient_id], exclude_conn=item.origin))
            ack = ack_frame(row, online)
            for each in (item, *item.duplicates):
                each.reply(ack, None, False, None)
        return rest

    # -- phase 2: who may send what ---------------------------------------------

    def _check(self, store: MessageStore, items: list[Outgoing]) -> list[Outgoing]:
        """Resends answered; then per message: permission (``policy``), then its fields.

        One round trip for the whole batch (``MessageStore.lookup``); it also fills
        the sender names and the follows that the stranger rule needs.
        """
        private = [i for i in items if i.recipient_id is not None]
        groups = [i for i in items if i.group_id is not None]
        user_ids = {i.sender_id for i in items} | {i.recipient_id for i in private}
        pairs = {(i.sender_id, i.recipient_id) for i in private
                 if i.recipient_id != i.sender_id}
        found = store.lookup(
            client_keys={(i.sender_id, i.key) for i in items if i.key is not None},
            user_ids=[u for u in user_ids if u not in self.names],  # names never change
            block_pairs={(b, a) for a, b in pairs},
            follow_pairs=pairs | {(b, a) for a, b in pairs},
            group_ids=list({i.group_id for i in groups}),
            member_pairs={(i.group_id, i.sender_id) for i in groups})
        self.names.update(found["names"])
        items = self._answer_stored(store, found["stored"], items)
        follows = found["follows"]
        self._mutual = {(a, b) for a, b in pairs if (a, b) in follows and (b, a) in follows}
        accepted = []
        for item in items:
            if item.recipient_id is not None:
                error = policy.private_write(
                    recipient_exists=item.recipient_id in self.names,
                    blocked_by_recipient=(item.recipient_id, item.sender_id) in found["blocks"])
                item.conv_key = private_conv_key(item.sender_id, item.recipient_id)
            else:
                error = policy.group_write(
                    group_exists=item.group_id in found["groups"],
                    is_member=(item.group_id, item.sender_id) in found["members"])
                item.conv_key = group_conv_key(item.group_id)
            if error is None:
                error = self._field_error(item)
            if error is not None:
                self._fail(item, error)
                continue
            accepted.append(item)
        return accepted

    def _field_error(self, item: Outgoing) -> ChatError | None:
        """The message's own fields, checked once it is known who may send it."""
        try:
            item.content = validation.content(item.content, self.settings.max_content)
            validation.client_id(item.client_id)
        except ChatError as err:
            return err
        return None

    def _apply_stranger_rule(self, items: list[Outgoing]) -> list[Outgoing]:
        """Phase 2's last check: the seed's stranger rule (``chat.service.stranger``)."""
        return self.stranger.apply(items, self._mutual)

    # -- phases 3 and 4: write, then answer and publish ---------------------------

    def _store_and_publish(self, items: list[Outgoing]) -> None:
        """Write the batch (under the order lock when other processes write too), then ack
        and deliver, then unlock."""
        channels: dict[str, None] = {}
        for item in items:
            if item.group_id is not None:
                channels[group_channel(item.group_id)] = None
            else:
                channels[user_channel(item.sender_id)] = None
                channels[user_channel(item.recipient_id)] = None
        presence = self.bus.presence(list(channels))
        for item in items:
            if item.recipient_id is not None:
                exclude = item.origin if item.recipient_id == item.sender_id else None
                item.online = bool(self.bus.online([item.recipient_id], exclude_conn=exclude,
                                                   presence=presence))
        locked = False
        try:
            store = self._connection()
            if store.dialect == "mysql" and self.settings.order_lock and presence.others:
                locked = store.lock(self.settings.order_lock_name, 10)
                if not locked:
                    raise ServerBusy(N_("the message store is congested"))
            try:
                rows = self._write(store, items)
            except store.IntegrityError:
                # A resend of the same client_id raced us from another connection or
                # process: answer it from what is stored now, write the rest.
                store.rollback()
                stored = store.stored_client_ids({(i.sender_id, i.key) for i in items
                                                  if i.key is not None})
                items = self._answer_stored(store, stored, items)
                if items:
                    rows = self._write(store, items)
                else:
                    rows = []
                    store.rollback()
        except (*self.db_down, ServerBusy) as exc:
            log.warning("event=db_unavailable phase=commit error=%s",
                        type(getattr(exc, "orig", exc)).__name__)
            self._drop_connection()
            undo = [i.counted for i in items if i.counted is not None]
            if undo:
                self.counters.decr_many(undo)
            for item in items:
                self._fail(item, ServerBusy())
            return
        try:
            with self.open_batch() as batch:
                self._answer_and_publish(items, rows, presence, batch)
        finally:
            if locked:
                try:
                    store.unlock(self.settings.order_lock_name)
                    store.rollback()
                except self.db_down:
                    self._drop_connection()

    def _answer_and_publish(self, items: list[Outgoing], rows: list[Row],
                            presence: Presence, batch: Batch | None) -> None:
        """Ack each sender, then publish each message (serialised once) to its channels."""
        events: list[Event] = []
        for item, row in zip(items, rows):
            ack = ack_frame(row, item.online)
            for each in (item, *item.duplicates):
                try:
                    each.reply(ack, None, each is item, batch)
                except Exception:
                    log.exception("event=reply_failed")
            frame = dumps(message_frame(row))
            if item.group_id is not None:
                events.append(Event(group_channel(item.group_id), frame,
                                    exclude_conn=item.origin))
            else:
                events.append(Event(user_channel(item.sender_id), frame,
                                    exclude_conn=item.origin))
                if item.recipient_id != item.sender_id:
                    events.append(Event(user_channel(item.recipient_id), frame))
        self.bus.publish(events, presence, batch)

    def _write(self, store: MessageStore, items: list[Outgoing]) -> list[Row]:
        """Allocate ids in commit order, INSERT the batch, create read cursors, COMMIT."""
        first_id = store.allocate_ids(len(items))
        now = utcnow()
        stamp = db_time(now)
        rows: list[Row] = []
        values = []
        for offset, item in enumerate(items):
            item.id = first_id + offset
            rows.append(Row(item.id, item.sender_id, item.recipient_id, item.group_id,
                             item.content, item.client_id, now, self.names[item.sender_id]))
            values.append((item.id, item.conv_key, item.sender_id, item.recipient_id,
                           item.group_id, item.content, item.client_id, stamp))
        store.insert_messages(values)
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
        store.commit()
        if len(self.known_pairs) > 200_000:
            self.known_pairs.clear()
        self.known_pairs.update(new_pairs)
        return rows
