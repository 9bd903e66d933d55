"""Sending a message: the one call that every way in (socket frame, HTTP) goes through.

The caller has parsed its own envelope (the frame's ``type``, or which of
``recipient_id`` and ``group_id`` the body names); everything else is decided
here and in the committer, in PROTOCOL.md's order (6.6): the target's id is
well-formed (400), the server is not draining (503), then in the batch: the
target exists and the sender may write to it (404/403), the message's own
fields (400), the stranger rule (429). The flood limit is counted by the caller
for every frame and every state-changing call, before anything else.
"""
from __future__ import annotations

from typing import Any, Callable

from ..errors import ServerBusy
from . import validation
from .committer import MessageCommitter
from .i18n import N_
from .outgoing import Outgoing, Reply

RESTARTING = N_("the server is restarting; retry with the same client_id")


class Sending:
    """Accepts messages for the committer, or refuses them with the right error."""

    def __init__(self, committer: MessageCommitter, draining: Callable[[], bool]) -> None:
        self.committer = committer
        self.draining = draining

    def _outgoing(self, sender_id: int, recipient_id: Any, group_id: Any, content: Any,
                  client_id: Any, origin: str | None, reply: Reply) -> Outgoing:
        if group_id is None:
            recipient_id = validation.entity_id(recipient_id, "recipient_id")
        else:
            group_id = validation.entity_id(group_id, "group_id")
        if self.draining():
            raise ServerBusy(RESTARTING)
        return Outgoing(sender_id, recipient_id, group_id, content, client_id, origin, reply)

    def submit(self, sender_id: int, *, recipient_id: Any = None, group_id: Any = None,
               content: Any, client_id: Any, origin: str | None, reply: Reply) -> None:
        """Queue a message to a user (``recipient_id``) or a group (``group_id``).

        ``reply(ack, error, created, batch)`` is called exactly once; a ChatError raised
        here means it was refused before being queued (and ``reply`` is not called).
        """
        self.committer.submit(self._outgoing(sender_id, recipient_id, group_id, content,
                                             client_id, origin, reply))

    def send(self, sender_id: int, *, recipient_id: Any = None, group_id: Any = None,
             content: Any, client_id: Any) -> tuple[dict, bool]:
        """Send and wait for the outcome: (ack, created), or raises the ChatError."""
        item = self._outgoing(sender_id, recipient_id, group_id, content, client_id, None,
                              lambda *args: None)
        return self.committer.submit_and_wait(item)
