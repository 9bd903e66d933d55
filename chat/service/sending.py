"""Sending and changing messages: the one call that every way in (socket frame, HTTP)
goes through.

The caller has parsed its own envelope (the frame's ``type``, or which of
``recipient_id`` and ``group_id`` the body names); everything else is decided
here and in the committer, in docs/protocol.md's order (3.4, which error comes first): the ids it names are
well-formed (400), the server is not draining (503), then in the batch: the
target exists and the sender may write to it, or may change that message
(404/403), the item's own fields (400), the stranger rule and the other limits
(429, 409). The flood limit is counted by the caller for every frame and every
state-changing call, before anything else.
"""
from __future__ import annotations

from typing import Any, Callable

from ..errors import ServerBusy
from . import rich, validation
from .changes import EDIT, REACTION, RECALL
from .committer import MessageCommitter
from .i18n import N_
from .outgoing import Change, Outgoing, Reply

RESTARTING = N_("the server is restarting; retry with the same client_id")


def _ignore(*args) -> None:
    """The answer of an item whose caller waits for it another way."""


class Sending:
    """Accepts messages and changes for the committer, or refuses them with the right error."""

    def __init__(self, committer: MessageCommitter, draining: Callable[[], bool]) -> None:
        self.committer = committer
        self.draining = draining

    def _ready(self) -> None:
        if self.draining():
            raise ServerBusy(RESTARTING)

    def _outgoing(self, sender_id: int, recipient_id: Any, group_id: Any, fields: dict,
                  origin: str | None, answer: Reply) -> Outgoing:
        if group_id is None:
            recipient_id = validation.entity_id(recipient_id, "recipient_id")
        else:
            group_id = validation.entity_id(group_id, "group_id")
        extra = rich.parse_rich_fields(fields)
        self._ready()
        return Outgoing(sender_id, recipient_id, group_id, fields.get("content"),
                        fields.get("client_id"), origin, answer, **extra)

    def submit(self, sender_id: int, *, recipient_id: Any = None, group_id: Any = None,
               fields: dict, origin: str | None, answer: Reply) -> None:
        """Queue a message to a user (``recipient_id``) or a group (``group_id``).

        ``fields`` holds ``content``, ``client_id`` and the optional ``reply_to``,
        ``mentions``, ``mention_all`` and ``attachments``, as the client sent them.
        ``answer(ack, error, created, batch)`` is called exactly once; a ChatError raised
        here means it was refused before being queued (and ``answer`` is not called).
        """
        self.committer.submit(self._outgoing(sender_id, recipient_id, group_id, fields, origin,
                                             answer))

    def send(self, sender_id: int, *, recipient_id: Any = None, group_id: Any = None,
             fields: dict) -> tuple[dict, bool]:
        """Send and wait for the outcome: (ack, created), or raises the ChatError."""
        item = self._outgoing(sender_id, recipient_id, group_id, fields, None, _ignore)
        return self.committer.submit_and_wait(item)

    def _change(self, actor_id: int, kind: str, message_id: Any, fields: dict,
                origin: str | None, answer: Reply) -> Change:
        message_id = validation.entity_id(message_id, "message_id")
        self._ready()
        return Change(actor_id, kind, message_id, fields.get("client_id"), origin, answer,
                      content=fields.get("content"), emoji=fields.get("emoji"),
                      on=fields.get("on"))

    def submit_change(self, actor_id: int, kind: str, message_id: Any, *, fields: dict,
                      origin: str | None, answer: Reply) -> None:
        """Queue an edit (``content``), recall or reaction (``emoji``, ``on``) of a message."""
        if kind not in (EDIT, RECALL, REACTION):
            raise ValueError(kind)
        self.committer.submit(self._change(actor_id, kind, message_id, fields, origin, answer))

    def change(self, actor_id: int, kind: str, message_id: Any, *,
               fields: dict) -> tuple[dict, bool]:
        """Change a message and wait for the outcome: (ack, changed), or raises."""
        item = self._change(actor_id, kind, message_id, fields, None, _ignore)
        return self.committer.submit_and_wait(item)
