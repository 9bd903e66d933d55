"""The seed's stranger rule: users who do not follow each other both ways may send at
most CHAT_STRANGER_LIMIT (3) private messages until the other one replies.

Counted in Redis (one pipeline per batch), with two fallbacks to the stored
messages, which hold the truth: a counter Redis does not hold (a new pair, or
one lost in a restart without persistence) is rebuilt from them, and while
Redis is down the whole rule is answered from them.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from ..errors import ChatError, ServerBusy, StrangerLimit
from ..store.committer_sql import MessageStore
from ..store.counters import Counters, CountersDown, stranger_key
from ..store.models import utcnow
from .settings import ServiceSettings


class StoreAccess(Protocol):
    """What the rule needs from the committer: its connection, and how to refuse."""

    db_down: tuple

    def connection(self) -> MessageStore: ...
    def drop_connection(self) -> None: ...
    def fail(self, item: Any, error: ChatError) -> None: ...


class StrangerRule:
    """Applies the rule to the private messages of one batch."""

    def __init__(self, settings: ServiceSettings, counters: Counters,
                 store: StoreAccess) -> None:
        self.settings = settings
        self.counters = counters
        self.store = store

    def apply(self, items: list, mutual: set[tuple[int, int]]) -> list:
        """The seed's rule: three messages to someone who has not written back.

        Pairs who follow each other both ways are never counted (no Redis work for
        them). For the others one pipeline per batch reads the reply counter and
        INCRs (with the 90-day EXPIRE) the sender's. Past the limit the stored
        messages have the last word, since a reply written while the two still
        followed each other was not counted.
        """
        watched = [i for i in items if i.recipient_id is not None
                   and i.recipient_id != i.sender_id
                   and (i.sender_id, i.recipient_id) not in mutual]
        if not watched:
            return items
        ttl, limit = self.settings.stranger_ttl, self.settings.stranger_limit
        keys = [stranger_key(i.sender_id, i.recipient_id) for i in watched]
        try:
            replied = self.counters.get_many(
                [stranger_key(i.recipient_id, i.sender_id) for i in watched])
            counts = self.counters.incr_existing_many(keys, ttl)
            if None in counts:
                counts = self._rebuild(watched, keys, counts)
        except CountersDown:
            return self._from_database(items, watched)
        except self.store.db_down:
            self.store.drop_connection()
            for item in watched:
                self.store.fail(item, ServerBusy())
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
        except self.store.db_down:
            self.store.drop_connection()
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
            self.store.fail(item, ServerBusy() if busy else StrangerLimit())
        return [i for i in items if id(i) not in refused]

    def _rebuild(self, watched: list, keys: list[str],
                          counts: list[int | None]) -> list[int]:
        """Counters that Redis does not hold (new pairs, or lost in a Redis restart) are
        rebuilt from the stored messages, so the rule survives a Redis without persistence."""
        since = utcnow() - timedelta(seconds=self.settings.stranger_ttl)
        missing = {(watched[n].conv_key, watched[n].sender_id)
                   for n, count in enumerate(counts) if count is None}
        store = self.store.connection()
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

    def _wrote_back(self, items: list) -> set[tuple[int, int]]:
        """The (sender, recipient) pairs whose recipient wrote to the sender within the TTL."""
        since = utcnow() - timedelta(seconds=self.settings.stranger_ttl)
        store = self.store.connection()
        found = store.senders_since(list({i.conv_key for i in items}),
                                    list({i.recipient_id for i in items}), since)
        store.rollback()
        return {(i.sender_id, i.recipient_id) for i in items
                if (i.conv_key, i.recipient_id) in found}

    def _from_database(self, items: Any, watched: Any) -> list:
        """Redis is down: answer the rule from the stored messages, which hold the truth."""
        since = utcnow() - timedelta(seconds=self.settings.stranger_ttl)
        refused: set[int] = set()
        sent_in_batch: dict[tuple[int, int], int] = {}
        try:
            wrote_back = self._wrote_back(watched)
            store = self.store.connection()
            for item in watched:
                pair = (item.sender_id, item.recipient_id)
                if pair in wrote_back:
                    continue
                if pair not in sent_in_batch:
                    sent_in_batch[pair] = store.count_sent(item.conv_key, item.sender_id, since)
                if sent_in_batch[pair] >= self.settings.stranger_limit:
                    refused.add(id(item))
                    self.store.fail(item, StrangerLimit())
                else:
                    sent_in_batch[pair] += 1
            store.rollback()
        except self.store.db_down:
            self.store.drop_connection()
            for item in items:
                if id(item) not in refused:
                    refused.add(id(item))
                    self.store.fail(item, ServerBusy())
        return [i for i in items if id(i) not in refused]

