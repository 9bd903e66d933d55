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
