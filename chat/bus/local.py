"""The in-process bus: one process, so publishing is delivering."""
from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Callable, ContextManager, Sequence

from .base import Batch, Event, Presence, Sink, deliver_locally

log = logging.getLogger("chat.bus")


class LocalBus:
    """The embedded default, and the twin of ``RedisBus`` for a single process."""

    def __init__(self) -> None:
        self.sink: Sink | None = None
        self.published = 0
        self.notices = 0  # one process: no batch is ever announced to another

    def attach(self, sink: Sink) -> None:
        """Deliver to ``sink`` from now on."""
        self.sink = sink

    def presence(self, channels: Sequence[str]) -> Presence:
        """Nobody else: one process."""
        return Presence()

    def publish(self, events: Sequence[Event], presence: Presence | None = None,
                batch: Batch | None = None) -> None:
        """Deliver each event to this process's connections, in order."""
        self.published += len(events)
        deliver_locally(self.sink, events, batch, log)

    def publish_committed(self, first: int, last: int, events: Sequence[Event],
                          presence: Presence | None, deliver: Callable[[bool], None],
                          asked: Callable[[Presence], None] | None = None) -> None:
        """One process commits and publishes in id order: delivered at once."""
        self.published += len(events)
        if asked is not None:
            asked(presence or Presence())
        deliver(True)

    def expect(self, first: int, last: int) -> None:
        """Nothing to keep apart: no other process, and no read-back."""

    def writing(self) -> ContextManager[None]:
        """Nothing to keep apart: no other process, and no read-back."""
        return nullcontext()

    def forget(self, first: int) -> None:
        """Nothing to keep apart: no other process, and no read-back."""

    def holding(self) -> int:
        """Nothing waits: one process delivers in commit order."""
        return 0

    def after(self, id: int, call: Callable[[], None]) -> None:
        """One process: every committed id has gone out already."""
        call()

    def deliver_here(self, events: Sequence[Event], batch: Batch | None = None) -> None:
        """Hand events to this process's connections."""
        deliver_locally(self.sink, events, batch, log)

    def online(self, user_ids: Sequence[int], exclude_conn: str | None = None,
               presence: Presence | None = None) -> set[int]:
        """The users among ``user_ids`` with a live connection (other than ``exclude_conn``)."""
        if self.sink is None:
            return set()
        return {u for u in user_ids if self.sink.count(u, exclude_conn) > 0}

    def subscribe(self, channel: str) -> None:
        """Nothing to do in one process."""

    def unsubscribe(self, channel: str) -> None:
        """Nothing to do in one process."""

    def start(self) -> None:
        """Nothing to start."""

    def status(self) -> str:
        """The in-process bus is always there."""
        return "off"
