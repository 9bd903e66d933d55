"""A real ``MessageCommitter`` for the service tests, with its collaborators in view.

The committer gets an in-process bus whose sink records every event (in one log
with the replies, so their order shows) and hands it on to a real registry.
Messages submitted in one turn of the hub (no greenlet switch between them)
form one batch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import orjson
from gevent.event import AsyncResult
from gevent.event import Event as Gate
from sqlalchemy import select

from chat.bus import Event, LocalBus
from chat.errors import ChatError
from chat.extensions import db
from chat.ops.metrics import SendStats
from chat.realtime.registry import Registry
from chat.service.committer import MessageCommitter
from chat.service.outgoing import Change, Outgoing
from chat.service.settings import ServiceSettings
from chat.store.counters import MemoryCounters
from chat.store.models import Message
from tests.wire import open_connection


@dataclass
class Outcome:
    """What one submitted message got back."""

    result: AsyncResult = field(default_factory=AsyncResult)

    def get(self, timeout: float = 10) -> tuple[dict | None, ChatError | None, bool, bool]:
        """(ack, error, created, answered inside a delivery batch)."""
        return self.result.get(timeout=timeout)

    @property
    def ack(self) -> dict:
        ack, err, _, _ = self.get()
        assert err is None, f"expected an ack, got {err.status} {err.message}"
        return ack

    @property
    def error(self) -> ChatError:
        ack, err, _, _ = self.get()
        assert err is not None, f"expected an error, got {ack}"
        return err


class Harness:
    """A committer with a recording bus sink in front of a real registry."""

    def __init__(self, app, counters=None, **settings) -> None:
        self.registry = Registry()
        self.log: list[tuple] = []
        self.bus = LocalBus()
        self.bus.attach(self)
        self.counters = counters if counters is not None else MemoryCounters()
        self.stats = SendStats()
        self.committer = MessageCommitter(app, ServiceSettings(**settings), self.bus,
                                          self.counters, self.stats, self.registry.batch)
        self.peers = []

    # the sink the bus delivers to
    def dispatch(self, event: Event, batch=None) -> None:
        self.log.append(("event", event.channel, event.exclude_conn,
                         json.loads(event.frame) if event.frame else None))
        self.registry.dispatch(event, batch)

    def channels(self) -> list[str]:
        return self.registry.channels()

    def count(self, user_id: int, exclude_conn: str | None = None) -> int:
        return self.registry.count(user_id, exclude_conn)

    def connect(self, user_id: int):
        """A live connection of the user in the registry: (Connection, Peer)."""
        conn, peer = open_connection(user_id)
        self.registry.add(conn, [])
        self.peers.append((conn, peer))
        return conn, peer

    def submit(self, sender: int, *, to: int | None = None, group: int | None = None,
               content="hello", client_id=None, conn=None, deadline: float = 0.0,
               attachments: list[int] = (), reply_to: int | None = None) -> Outcome:
        """Queue one message; with ``conn`` its answer goes to that connection too."""
        outcome = Outcome()

        def reply(ack, err, created, batch):
            self.log.append(("ack", ack["id"]) if ack else ("error", err.status))
            if conn is not None:
                conn.send_payload(orjson.dumps(ack or err.to_frame(client_id)), batch)
            outcome.result.set((ack, err, created, batch is not None))
        item = Outgoing(sender, to, group, content, client_id, conn.id if conn else None,
                        reply, deadline)
        item.attachments = list(attachments)
        item.reply_to = reply_to
        self.committer.submit(item)
        return outcome

    def change(self, actor: int, kind: str, message_id: int, client_id: str,
               **fields) -> Outcome:
        """Queue one edit (``content``), recall or reaction (``emoji``, ``on``)."""
        outcome = Outcome()

        def reply(ack, err, created, batch):
            self.log.append(("ack", ack["id"]) if ack else ("error", err.status))
            outcome.result.set((ack, err, created, batch is not None))
        self.committer.submit(Change(actor, kind, message_id, client_id, None, reply, **fields))
        return outcome

    def hold_writes(self) -> Gate:
        """Hold every batch at the writer's door until the returned event is set (batches
        behind it are still checked, and wait)."""
        gate = Gate()
        write = self.committer._store_and_publish

        def held(checked):
            gate.wait()
            return write(checked)
        self.committer._store_and_publish = held
        return gate

    def events(self) -> list[tuple]:
        return [entry for entry in self.log if entry[0] == "event"]

    def close(self) -> None:
        self.committer.stop()
        for conn, peer in self.peers:
            conn.transport.abort()
            peer.close()


def stored(**where) -> list[Message]:
    """Messages stored now, matching ``where`` (a fresh transaction: nothing cached)."""
    db.session.remove()
    query = select(Message).order_by(Message.id)
    for column, value in where.items():
        query = query.where(getattr(Message, column) == value)
    return list(db.session.scalars(query))
