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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from time import monotonic, perf_counter
from typing import Any, Callable

import gevent
from gevent.event import AsyncResult
from gevent.queue import SimpleQueue

from ..bus import Batch, Bus, Event, Presence, group_channel, user_channel
from ..errors import DATABASE_UNAVAILABLE, ChatError, ServerBusy, StrangerLimit
from ..store.committer_sql import MessageStore, as_datetime, db_time
from ..store.counters import Counters, CountersDown, stranger_key
from ..store.models import group_conv_key, private_conv_key, utcnow
from . import policy, validation
from .settings import ServiceSettings
from .shapes import ack_frame, dumps, message_frame

log = logging.getLogger("chat.committer")

# reply(ack, error, created, batch): exactly one of ack and error is set; ``batch`` holds
# the frames of one committed batch until they are written together (None otherwise).
Reply = Callable[[dict | None, ChatError | None, bool, Batch | None], None]
OpenBatch = Callable[[], AbstractContextManager]
NOT_IN_TIME = "the message could not be stored in time; retry with the same client_id"


@dataclass(slots=True)
class Outgoing:
    """One message on its way in; ``reply`` is called exactly once.

    ``content`` and ``client_id`` are as the client sent them: they are checked in
    the batch, after the recipient (PROTOCOL.md 6.6: permission before fields).
    """

    sender_id: int
    recipient_id: int | None
    group_id: int | None
    content: Any
    client_id: Any
    origin: str | None
    reply: Reply
    deadline: float = 0.0  # monotonic time after which it is refused unwritten (503)
    conv_key: str = ""
    id: int = 0
    counted: str | None = None  # the stranger counter this send incremented
    online: bool | None = None
    duplicates: list["Outgoing"] = field(default_factory=list)

    @property
    def key(self) -> str | None:
        """The idempotency key, when the client_id is a well-formed one."""
        return self.client_id if validation.is_client_id(self.client_id) else None


@dataclass(slots=True)
class _Stored:
    """A message found stored under a resent client_id (what an ack needs)."""

    id: int
    sender_id: int
    recipient_id: int | None
    group_id: int | None
    client_id: str | None
    created_at: object


@dataclass(slots=True)
class _Row:
    """What ``message_frame`` reads, without a round trip to fetch it back."""

    id: int
    sender_id: int
    recipient_id: int | None
    group_id: int | None
    content: str
    client_id: str | None
    created_at: object
    sender_name: str


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
        rows = {r[0]: _Stored(*r[:5], as_datetime(r[5]))
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
        """The seed's rule: three messages to someone who has not written back.

        Pairs who follow each other both ways are never counted (no Redis work for
        them). For the others one pipeline per batch reads the reply counter and
        INCRs (with the 90-day EXPIRE) the sender's. Past the limit the stored
        messages have the last word, since a reply written while the two still
        followed each other was not counted.
        """
        watched = [i for i in items if i.recipient_id is not None
                   and i.recipient_id != i.sender_id
                   and (i.sender_id, i.recipient_id) not in self._mutual]
        if not watched:
            return items
        ttl, limit = self.settings.stranger_ttl, self.settings.stranger_limit
        keys = [stranger_key(i.sender_id, i.recipient_id) for i in watched]
        try:
            replied = self.counters.get_many(
                [stranger_key(i.recipient_id, i.sender_id) for i in watched])
            counts = self.counters.incr_existing_many(keys, ttl)
            if None in counts:
                counts = self._rebuild_counters(watched, keys, counts)
        except CountersDown:
            return self._apply_stranger_rule_from_database(items, watched)
        except self.db_down:
            self._drop_connection()
            for item in watched:
                self._fail(item, ServerBusy())
            refused = {id(i) for i in watched}
            return [i for i in items if id(i) not in refused]
        over = []
        for item, back, count in zip(watched, replied, counts):
            item.counted = stranger_key(item.sender_id, item.recipient_id)
            if count > limit and back <= 0:
                over.append(item)
        if not over:
            return items
        try:
            wrote_back = self._wrote_back(over)
        except self.db_down:
            self._drop_connection()
            wrote_back, busy = set(), True
        else:
            busy = False
        refused: set[int] = set()
        for item in over:
            if (item.sender_id, item.recipient_id) in wrote_back:
                continue
            refused.add(id(item))
            self.counters.decr_many([item.counted])
            item.counted = None
            self._fail(item, ServerBusy() if busy else StrangerLimit())
        return [i for i in items if id(i) not in refused]

    def _rebuild_counters(self, watched: list[Outgoing], keys: list[str],
                          counts: list[int | None]) -> list[int]:
        """Counters that Redis does not hold (new pairs, or lost in a Redis restart) are
        rebuilt from the stored messages, so the rule survives a Redis without persistence."""
        since = utcnow() - timedelta(seconds=self.settings.stranger_ttl)
        missing = {(watched[n].conv_key, watched[n].sender_id)
                   for n, count in enumerate(counts) if count is None}
        store = self._connection()
        sent = store.counts_sent(missing, since)
        store.rollback()
        running: dict[str, list[int]] = {}  # key -> [count so far, added in this batch]
        filled: list[int] = []
        for item, key, count in zip(watched, keys, counts):
            if count is None:
                entry = running.setdefault(key, [sent.get((item.conv_key, item.sender_id), 0), 0])
                entry[0] += 1
                entry[1] += 1
                count = entry[0]
            filled.append(count)
        self.counters.seed_many({key: (total, added) for key, (total, added) in running.items()},
                                self.settings.stranger_ttl)
        return filled

    def _wrote_back(self, items: list[Outgoing]) -> set[tuple[int, int]]:
        """The (sender, recipient) pairs whose recipient wrote to the sender within the TTL."""
        since = utcnow() - timedelta(seconds=self.settings.stranger_ttl)
        store = self._connection()
        found = store.senders_since(list({i.conv_key for i in items}),
                                    list({i.recipient_id for i in items}), since)
        store.rollback()
        return {(i.sender_id, i.recipient_id) for i in items
                if (i.conv_key, i.recipient_id) in found}

    def _apply_stranger_rule_from_database(self, items, watched) -> list[Outgoing]:
        """Redis is down: answer the rule from the stored messages, which hold the truth."""
        since = utcnow() - timedelta(seconds=self.settings.stranger_ttl)
        refused: set[int] = set()
        sent_in_batch: dict[tuple[int, int], int] = {}
        try:
            wrote_back = self._wrote_back(watched)
            store = self._connection()
            for item in watched:
                pair = (item.sender_id, item.recipient_id)
                if pair in wrote_back:
                    continue
                if pair not in sent_in_batch:
                    sent_in_batch[pair] = store.count_sent(item.conv_key, item.sender_id, since)
                if sent_in_batch[pair] >= self.settings.stranger_limit:
                    refused.add(id(item))
                    self._fail(item, StrangerLimit())
                else:
                    sent_in_batch[pair] += 1
            store.rollback()
        except self.db_down:
            self._drop_connection()
            for item in items:
                if id(item) not in refused:
                    refused.add(id(item))
                    self._fail(item, ServerBusy())
        return [i for i in items if id(i) not in refused]

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
                    raise ServerBusy("the message store is congested")
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

    def _answer_and_publish(self, items: list[Outgoing], rows: list[_Row],
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

    def _write(self, store: MessageStore, items: list[Outgoing]) -> list[_Row]:
        """Allocate ids in commit order, INSERT the batch, create read cursors, COMMIT."""
        first_id = store.allocate_ids(len(items))
        now = utcnow()
        stamp = db_time(now)
        rows: list[_Row] = []
        values = []
        for offset, item in enumerate(items):
            item.id = first_id + offset
            rows.append(_Row(item.id, item.sender_id, item.recipient_id, item.group_id,
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
