"""A message on its way into the committer, and what the committer reads back."""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Callable

from ..bus import Batch
from ..errors import ChatError
from . import validation

# reply(ack, error, created, batch): exactly one of ack and error is set; ``batch`` holds
# the frames of one committed batch until they are written together (None otherwise).
Reply = Callable[[dict | None, ChatError | None, bool, Batch | None], None]
OpenBatch = Callable[[], AbstractContextManager]


@dataclass(slots=True)
class Outgoing:
    """One message on its way in; ``answer`` is called exactly once.

    ``content`` and ``client_id`` are as the client sent them: they are checked in
    the batch, after the recipient (docs/protocol.md 3.4: permission before fields).
    """

    sender_id: int
    recipient_id: int | None
    group_id: int | None
    content: Any
    client_id: Any
    origin: str | None
    answer: Reply
    deadline: float = 0.0  # monotonic time after which it is refused unwritten (503)
    # Version 2 (docs/protocol.md 3.9): ids already well-formed, checked in the batch.
    reply_to: int | None = None
    mentions: list[int] = field(default_factory=list)
    mention_all: Any = False  # as sent; a bool once rich.field_error has checked it
    attachments: list[int] = field(default_factory=list)
    conv_key: str = ""
    id: int = 0
    counted: str | None = None  # the stranger counter this send incremented
    online: bool | None = None
    reply: "ReplyTo | None" = None
    files: list[dict] = field(default_factory=list)  # the attachments' file objects
    duplicates: list["Outgoing"] = field(default_factory=list)

    @property
    def key(self) -> str | None:
        """The idempotency key, when the client_id is a well-formed one."""
        return self.client_id if validation.is_client_id(self.client_id) else None


@dataclass(slots=True)
class ReplyTo:
    """The message a new one answers, as the new one's row keeps it."""

    id: int
    sender_id: int
    excerpt: str
    recalled: bool


@dataclass(slots=True)
class Change:
    """An edit, recall or reaction on its way in; ``answer`` is called exactly once."""

    actor_id: int
    kind: str  # "edit", "recall" or "reaction"
    message_id: int
    client_id: Any
    origin: str | None
    answer: Reply
    content: Any = None  # edit
    emoji: Any = None  # reaction
    on: Any = None  # reaction: True adds (the default), False removes
    deadline: float = 0.0
    id: int = 0  # the update's id, once it changed something
    duplicates: list["Change"] = field(default_factory=list)

    @property
    def key(self) -> str | None:
        """The idempotency key, when the client_id is a well-formed one."""
        return self.client_id if validation.is_client_id(self.client_id) else None


@dataclass(slots=True)
class Stored:
    """A message found stored under a resent client_id (what an ack needs)."""

    id: int
    sender_id: int
    recipient_id: int | None
    group_id: int | None
    client_id: str | None
    created_at: object


@dataclass(slots=True)
class Row:
    """What ``message_frame`` reads, without a round trip to fetch it back."""

    id: int
    sender_id: int
    recipient_id: int | None
    group_id: int | None
    content: str
    client_id: str | None
    created_at: object
    sender_name: str
    reply_to_id: int | None = None
    reply_sender_id: int | None = None
    reply_excerpt: str | None = None
    reply_recalled: bool = False
    mentions: str | None = None  # JSON, as stored
    mention_all: bool = False
    attachments: str | None = None
    reactions: str | None = None
    edited_at: object = None
    recalled: bool = False
