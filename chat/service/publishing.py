"""Where a stored message or update is published, and the read-back of committed ids
for the bus's sequencer (a gap: their process died between COMMIT and PUBLISH, or its
PUBLISH was lost)."""
from __future__ import annotations

from dataclasses import dataclass

import orjson

from ..bus import Event, group_channel, parse_channel, user_channel
from ..store.committer_sql import MessageStore, as_datetime
from .outgoing import Row
from .shapes import dumps, message_frame, update_frame


def conversation_channels(sender_id: int, recipient_id: int | None,
                          group_id: int | None) -> list[str]:
    """The channels of a conversation: the group's, or both users' (one for a note to self)."""
    if group_id is not None:
        return [group_channel(group_id)]
    if recipient_id == sender_id:
        return [user_channel(sender_id)]
    return [user_channel(sender_id), user_channel(recipient_id)]


def add_events(events: list[Event], frame: bytes, actor_id: int, sender_id: int,
               recipient_id: int | None, group_id: int | None, origin: str | None) -> None:
    """One frame to every connection of the conversation but the one that sent it."""
    for channel in conversation_channels(sender_id, recipient_id, group_id):
        mine = group_id is not None or parse_channel(channel)[1] == actor_id
        events.append(Event(channel, frame, exclude_conn=origin if mine else None))


@dataclass(slots=True)
class UpdatedMessage:
    """What an update frame says of its message."""

    id: int
    sender_id: int
    recipient_id: int | None
    group_id: int | None


def unpublished_events(store: MessageStore, low: int, high: int) -> list[Event]:
    """The ``message`` and ``update`` events of ids ``low..high`` as they are stored now,
    in id order, for every connection of each conversation (the sender's own too: the
    connection that sent it died with the process)."""
    entries: list[tuple[int, bytes, int, int, int | None, int | None]] = []
    for r in store.messages_between(low, high):
        row = Row(*r[:6], as_datetime(r[6]), *r[7:16],
                  as_datetime(r[16]) if r[16] is not None else None, r[17])
        entries.append((row.id, dumps(message_frame(row)), row.sender_id, row.sender_id,
                        row.recipient_id, row.group_id))
    for (update_id, kind, message_id, actor_id, payload, created_at, sender_id, recipient_id,
         group_id) in store.updates_between(low, high):
        message = UpdatedMessage(message_id, sender_id, recipient_id, group_id)
        frame = update_frame(update_id, kind, message, actor_id, as_datetime(created_at),
                             orjson.loads(payload))
        entries.append((update_id, dumps(frame), actor_id, sender_id, recipient_id, group_id))
    events: list[Event] = []
    for _, frame, actor_id, sender_id, recipient_id, group_id in sorted(entries,
                                                                        key=lambda e: e[0]):
        add_events(events, frame, actor_id, sender_id, recipient_id, group_id, None)
    return events


class StoreBackfill:
    """The sequencer's reads (``chat.bus.sequencer.Backfill``): the last committed id, and
    committed ids read back as events. One connection of its own, opened when needed;
    the sequencer calls one at a time."""

    def __init__(self, app) -> None:
        self.app = app
        self.store: MessageStore | None = None

    def last_id(self) -> int:
        """The last id committed, as the database says now."""
        return self._read(lambda store: store.last_id())

    def events_between(self, low: int, high: int) -> list[Event]:
        """The events of ids ``low..high``, for every connection of their conversations."""
        return self._read(lambda store: unpublished_events(store, low, high))

    def _read(self, read):
        from ..extensions import db
        with self.app.app_context():
            try:
                if self.store is None or self.store.closed:
                    self.store = MessageStore(db.engine, reads_only=True)
                try:
                    return read(self.store)
                finally:
                    if not self.store.autocommit:
                        self.store.rollback()  # no snapshot kept between reads
            except Exception:
                store, self.store = self.store, None
                if store is not None:
                    store.discard()
                raise
