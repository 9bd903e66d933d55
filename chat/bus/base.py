"""What every bus shares: the event it carries, its channel names, and the interfaces.

Events are routed on per-user (``user:<id>``) and per-group (``group:<id>``)
channels; a process listens only to the channels of the users connected to it
and of their groups. (Storage names a conversation differently, ``p:<lo>:<hi>``
or ``g:<id>``, see ``chat.store.models``; the browser names it ``private:<id>``
or ``group:<id>`` after the API's conversation ``kind``.)

The bus knows no models and no sockets: it hands events to a ``Sink`` (the
realtime registry), wired by the runtime.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol, Sequence

import orjson

USER, GROUP = "user", "group"


def user_channel(user_id: int) -> str:
    """The channel of every connection of one user."""
    return f"user:{user_id}"


def group_channel(group_id: int) -> str:
    """The channel of a group's locally connected members."""
    return f"group:{group_id}"


def parse_channel(channel: str) -> tuple[str, int]:
    """(``"user"`` or ``"group"``, id) of a channel name."""
    kind, _, ident = channel.partition(":")
    return kind, int(ident)


@dataclass(slots=True)
class Event:
    """Something to deliver on one channel.

    ``frame`` is the serialised JSON frame (built once, whatever the number of
    recipients); ``member`` updates the registry's view of a user's groups;
    ``close_auth`` closes the sockets opened with a revoked credential.
    """

    channel: str
    frame: bytes = b""
    exclude_conn: str | None = None
    exclude_user: int | None = None
    member: tuple[int, bool] | None = None
    close_auth: int | None = None

    def encode(self, origin: str | None = None, first: int | None = None,
               last: int | None = None) -> bytes:
        """Header line (JSON) + newline + frame: orjson never writes a raw newline.
        ``first``: the first id of the committed batch the event belongs to; ``last``:
        its last id, when the event also is the batch's notice (its last event)."""
        header: dict[str, Any] = {"o": origin} if origin else {}
        if first is not None:
            header["s"] = first
        if last is not None:
            header["n"] = last
        if self.exclude_conn is not None:
            header["x"] = self.exclude_conn
        if self.exclude_user is not None:
            header["xu"] = self.exclude_user
        if self.member is not None:
            header["m"] = [self.member[0], self.member[1]]
        if self.close_auth is not None:
            header["c"] = self.close_auth
        return orjson.dumps(header) + b"\n" + self.frame

    @classmethod
    def decode(cls, channel: str, data: bytes
               ) -> tuple["Event", str | None, int | None, int | None]:
        """The inverse of ``encode``: the event, the tag of the process that sent it, the
        first id of its committed batch (``None`` for an event outside any), and the
        batch's last id when the event carries the batch's notice."""
        head, _, frame = data.partition(b"\n")
        header = orjson.loads(head)
        member = header.get("m")
        return cls(channel, frame, header.get("x"), header.get("xu"),
                   (member[0], member[1]) if member else None, header.get("c")), \
            header.get("o"), header.get("s"), header.get("n")


@dataclass(slots=True)
class Presence:
    """Who listens where, asked once per batch: other live processes, the channels (of
    those asked about) that some other process subscribes to, and those that every other
    process subscribes to."""

    others: int = 0
    remote: frozenset[str] = frozenset()
    everywhere: frozenset[str] = frozenset()


class Batch(Protocol):
    """Frames of one committed batch, written together when it ends (the registry's)."""

    def flush(self) -> None: ...


class Sink(Protocol):
    """Where a bus delivers (the realtime registry)."""

    def dispatch(self, event: Event, batch: Batch | None = None) -> None: ...
    def catch_up(self) -> None: ...
    def channels(self) -> list[str]: ...
    def count(self, user_id: int, exclude_conn: str | None = None) -> int: ...


class Bus(Protocol):
    """What the service and the runtime use; ``LocalBus`` and ``RedisBus`` are its twins."""

    published: int
    notices: int

    def attach(self, sink: Sink) -> None: ...
    def presence(self, channels: Sequence[str]) -> Presence: ...
    def publish(self, events: Sequence[Event], presence: Presence | None = None,
                batch: Batch | None = None) -> None: ...
    def publish_committed(self, first: int, last: int, events: Sequence[Event],
                          presence: Presence | None, deliver: Callable[[bool], None],
                          asked: Callable[[Presence], None] | None = None) -> None: ...
    def deliver_here(self, events: Sequence[Event], batch: Batch | None = None) -> None: ...
    def expect(self, first: int, last: int) -> None: ...
    def writing(self) -> ContextManager[None]: ...
    def forget(self, first: int) -> None: ...
    def holding(self) -> int: ...
    def after(self, id: int, call: Callable[[], None]) -> None: ...
    def online(self, user_ids: Sequence[int], exclude_conn: str | None = None,
               presence: Presence | None = None) -> set[int]: ...
    def subscribe(self, channel: str) -> None: ...
    def unsubscribe(self, channel: str) -> None: ...
    def start(self) -> None: ...
    def status(self) -> str: ...


def deliver_locally(sink: Sink | None, events: Sequence[Event], batch: Batch | None,
                    log: Any) -> None:
    """Hand events to this process's sink in order; one failing event never stops the rest."""
    if sink is None:
        return
    for event in events:
        try:
            sink.dispatch(event, batch)
        except Exception:
            log.exception("event=dispatch_failed channel=%s", event.channel)
