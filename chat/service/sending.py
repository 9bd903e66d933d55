"""Sending messages: validate, check limits, store in batches, commit, ack, then deliver.

Every send from every connection of this process (and ``POST /api/messages``)
goes through one ``MessageCommitter``. It takes whatever has queued up while the
previous batch was being written (a group commit: no artificial wait), checks
the whole batch with a handful of queries (recipients, blocks, follows,
memberships, stranger counters in one Redis pipeline), writes it with one
multi-row INSERT and one COMMIT, acks each sender and only then publishes.

Ordering across processes: ids come from the ``message_sequence`` row, whose
lock is held until COMMIT, so ids follow commit order and ``sync`` from the
largest id a client saw never skips a message that committed late. On MySQL a
named lock is also held from the id allocation until the batch is delivered and
published, so batches are delivered in id order across processes (the bus's
fence does the rest; see ``bus.RedisBus``).
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from time import perf_counter
from typing import Callable, ContextManager

import gevent
from gevent.event import AsyncResult
from gevent.queue import SimpleQueue
from ..bus import Bus, Event, Presence
from ..errors import (DATABASE_UNAVAILABLE, ChatError, Forbidden, NotFound, ServerBusy,
                      StrangerLimit)
from ..limits import Counters, CountersDown, stranger_key
from ..models import group_key, private_key, utcnow
from .messages import message_frame
from .runtime import dumps, iso
from .store import MessageStore, as_datetime, db_time

log = logging.getLogger("chat.sending")

Reply = Callable[[dict | None, ChatError | None, bool], None]


@dataclass(slots=True)
class Outgoing:
    """One message on its way in; ``reply(ack, error, created)`` is called exactly once."""

    sender_id: int
    recipient_id: int | None
    group_id: int | None
    content: str
    client_id: str | None
    origin: str | None
    reply: Reply
    conv_key: str = ""
    id: int = 0
    counted: str | None = None  # the stranger counter this send incremented
    online: bool | None = None
    duplicates: list["Outgoing"] = field(default_factory=list)


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


def ack_frame(row, online: bool | None) -> dict:
    """The ack for a stored message (also the body of ``POST /api/messages``)."""
    ack = {"kind": "ack", "code": 200, "id": row.id, "client_id": row.client_id,
           "created_at": iso(row.created_at), "recipient_id": row.recipient_id,
           "group_id": row.group_id}
    if row.group_id is None:
        ack["online"] = bool(online)
        ack["content"] = "recipient online" if online else "recipient offline"
    else:
        ack["content"] = "sent"
    return ack


class SendStats:
    """Counters and a latency histogram for /metrics."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self) -> None:
        self.messages_in = 0
        self.batches = 0
        self.errors: dict[str, int] = {}
        self.latency_counts = [0] * (len(self.BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe(self, seconds: float, count: int) -> None:
        """Record the commit latency of ``count`` messages."""
        for i, bound in enumerate(self.BUCKETS):
            if seconds <= bound:
                self.latency_counts[i] += count
                break
        else:
            self.latency_counts[-1] += count
        self.latency_sum += seconds * count

    def error(self, code: str, count: int = 1) -> None:
        """Count errors by code."""
        self.errors[code] = self.errors.get(code, 0) + count


class MessageCommitter:
    """The single writer of messages in this process (a group commit loop)."""

    def __init__(self, app, bus: Bus, counters: Counters,
                 batch_scope: Callable[[], ContextManager] = nullcontext) -> None:
        self.app = app
        self.bus = bus
        self.counters = counters
        # Wraps the acks and deliveries of one batch (the registry's cork: one write per
        # connection per batch), wired by the runtime so this module needs no registry.
        self.batch_scope = batch_scope
        cfg = app.config
        self.batch_max = cfg["CHAT_BATCH_MAX"]
        self.stranger_limit = cfg["CHAT_STRANGER_LIMIT"]
        self.stranger_ttl = cfg["CHAT_STRANGER_TTL"]
        self.order_lock = cfg.get("CHAT_ORDER_LOCK", True)
        self.lock_name = cfg["CHAT_REDIS_PREFIX"] + "message-order"
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
        self.stats = SendStats()
        self.inflight = 0
        self.idle = AsyncResult()
        self.idle.set()

    # -- the public face ----------------------------------------------------

    def submit(self, item: Outgoing) -> None:
        """Queue a message; its ``reply`` is called once it is stored or refused."""
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._run)
        self.stats.messages_in += 1
        self.queue.put(item)

    def send_and_wait(self, item_args: dict, timeout: float = 30.0) -> tuple[dict, bool]:
        """Submit and block this greenlet until the ack: (ack, created) or raises ChatError."""
        result = AsyncResult()
        self.submit(Outgoing(reply=lambda ack, err, created: result.set((ack, err, created)),
                             **item_args))
        try:
            ack, err, created = result.get(timeout=timeout)
        except gevent.Timeout:
            raise ServerBusy("the message could not be stored in time") from None
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
                while len(batch) < self.batch_max and not self.queue.empty():
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
                each.reply(None, error, False)
            except Exception:
                log.exception("event=reply_failed")

    def _process(self, batch: list[Outgoing]) -> None:
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

    @staticmethod
    def _collapse(batch: list[Outgoing]) -> list[Outgoing]:
        """One item per (sender, client_id): repeats in the same batch share its answer."""
        first: dict[tuple[int, str], Outgoing] = {}
        items: list[Outgoing] = []
        for item in batch:
            if item.client_id is not None:
                key = (item.sender_id, item.client_id)
                if key in first:
                    first[key].duplicates.append(item)
                    continue
                first[key] = item
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
            message_id = stored.get((item.sender_id, item.client_id))
            row = rows.get(message_id) if message_id is not None else None
            if row is None:
                rest.append(item)
                continue
            online = None
            if row.group_id is None:
                online = bool(self.bus.online([row.recipient_id], exclude_conn=item.origin))
            ack = ack_frame(row, online)
            for each in (item, *item.duplicates):
                each.reply(ack, None, False)
        return rest

    # -- phase 1: who may send what -----------------------------------------

    def _check(self, store: MessageStore, items: list[Outgoing]) -> list[Outgoing]:
        """Resends answered; recipients and groups exist, no block, sender is a member.

        One round trip for the whole batch (``MessageStore.lookup``); it also fills
        the sender names and the follows that the stranger rule needs.
        """
        private = [i for i in items if i.recipient_id is not None]
        groups = [i for i in items if i.group_id is not None]
        user_ids = {i.sender_id for i in items} | {i.recipient_id for i in private}
        pairs = {(i.sender_id, i.recipient_id) for i in private
                 if i.recipient_id != i.sender_id}
        found = store.lookup(
            client_keys={(i.sender_id, i.client_id) for i in items if i.client_id is not None},
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
                if item.recipient_id not in self.names:
                    self._fail(item, NotFound("no such user"))
                    continue
                if (item.recipient_id, item.sender_id) in found["blocks"]:
                    self._fail(item, Forbidden("this user has blocked you"))
                    continue
                item.conv_key = private_key(item.sender_id, item.recipient_id)
            else:
                if item.group_id not in found["groups"]:
                    self._fail(item, NotFound("no such group"))
                    continue
                if (item.group_id, item.sender_id) not in found["members"]:
                    self._fail(item, Forbidden("you are not a member of this group"))
                    continue
                item.conv_key = group_key(item.group_id)
            accepted.append(item)
        return accepted

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
        try:
            replied = self.counters.get_many(
                [stranger_key(i.recipient_id, i.sender_id) for i in watched])
            counts = self.counters.incr_many(
                [stranger_key(i.sender_id, i.recipient_id) for i in watched], self.stranger_ttl)
        except CountersDown:
            return self._apply_stranger_rule_from_database(items, watched)
        over = []
        for item, back, count in zip(watched, replied, counts):
            item.counted = stranger_key(item.sender_id, item.recipient_id)
            if count > self.stranger_limit and back <= 0:
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

    def _wrote_back(self, items: list[Outgoing]) -> set[tuple[int, int]]:
        """The (sender, recipient) pairs whose recipient wrote to the sender within the TTL."""
        since = utcnow() - timedelta(seconds=self.stranger_ttl)
        store = self._connection()
        found = store.senders_since(list({i.conv_key for i in items}),
                                    list({i.recipient_id for i in items}), since)
        store.rollback()
        return {(i.sender_id, i.recipient_id) for i in items
                if (i.conv_key, i.recipient_id) in found}

    def _apply_stranger_rule_from_database(self, items, watched) -> list[Outgoing]:
        """Redis is down: answer the rule from the stored messages, which hold the truth."""
        since = utcnow() - timedelta(seconds=self.stranger_ttl)
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
                if sent_in_batch[pair] >= self.stranger_limit:
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

    # -- phase 2: write, ack, publish ---------------------------------------

    def _store_and_publish(self, items: list[Outgoing]) -> None:
        """Write the batch (under the order lock when other processes write too), then ack
        and deliver, then unlock."""
        channels: dict[str, None] = {}
        for item in items:
            if item.group_id is not None:
                channels[f"g:{item.group_id}"] = None
            else:
                channels[f"u:{item.sender_id}"] = channels[f"u:{item.recipient_id}"] = None
        presence = self.bus.presence(list(channels))
        for item in items:
            if item.recipient_id is not None:
                exclude = item.origin if item.recipient_id == item.sender_id else None
                item.online = bool(self.bus.online([item.recipient_id], exclude_conn=exclude,
                                                   presence=presence))
        locked = False
        try:
            store = self._connection()
            if store.dialect == "mysql" and self.order_lock and presence.others:
                locked = store.lock(self.lock_name, 10)
                if not locked:
                    raise ServerBusy("the message store is congested")
            try:
                rows = self._write(store, items)
            except store.IntegrityError:
                # A resend of the same client_id raced us from another connection or
                # process: answer it from what is stored now, write the rest.
                store.rollback()
                stored = store.lookup(client_keys={(i.sender_id, i.client_id) for i in items
                                                   if i.client_id is not None}, user_ids=[],
                                      block_pairs=set(), follow_pairs=set(), group_ids=[],
                                      member_pairs=set())["stored"]
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
            with self.batch_scope():
                self._answer_and_publish(items, rows, presence)
        finally:
            if locked:
                try:
                    store.unlock(self.lock_name)
                    store.rollback()
                except self.db_down:
                    self._drop_connection()

    def _answer_and_publish(self, items: list[Outgoing], rows: list[_Row],
                            presence: Presence) -> None:
        """Ack each sender, then publish each message (serialised once) to its channels."""
        events: list[Event] = []
        for item, row in zip(items, rows):
            ack = ack_frame(row, item.online)
            for each in (item, *item.duplicates):
                try:
                    each.reply(ack, None, each is item)
                except Exception:
                    log.exception("event=reply_failed")
            frame = dumps(message_frame(row))
            if item.group_id is not None:
                events.append(Event(f"g:{item.group_id}", frame, exclude_conn=item.origin))
            else:
                events.append(Event(f"u:{item.sender_id}", frame, exclude_conn=item.origin))
                if item.recipient_id != item.sender_id:
                    events.append(Event(f"u:{item.recipient_id}", frame))
        self.bus.publish(events, presence)

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
