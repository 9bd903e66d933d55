"""How many sockets one user may hold, across every process (CHAT_MAX_SOCKETS_PER_USER).

Past the cap the new socket is refused (closed before its hello with
``CLOSE_TOO_MANY`` and a reason), never an older one: a user's live tabs keep
working, and a client that reconnects in a loop cannot push the others out.
While Redis is down the cap holds per process.
"""
from __future__ import annotations

import logging
from typing import Iterable

from ..store.slots import LocalSlots, Slots, SlotsDown

log = logging.getLogger("chat.quota")

CLOSE_TOO_MANY = 4008
TOO_MANY_REASON = "too many open connections for this user"


class SocketQuota:
    """Claims and releases a slot per socket; ``cap`` 0 means no cap."""

    def __init__(self, slots: Slots, cap: int) -> None:
        self.slots = slots
        self.cap = cap
        self.local = LocalSlots()  # this process's share: the cap while Redis is down

    def claim(self, user_id: int, conn_id: str) -> bool:
        """True when the user may open this socket (then ``release`` it when it closes)."""
        if self.cap <= 0:
            return True
        if not self.local.claim(user_id, conn_id, self.cap):
            return False
        try:
            if self.slots is not self.local and not self.slots.claim(user_id, conn_id, self.cap):
                self.local.release(user_id, conn_id)
                return False
        except SlotsDown as exc:
            log.warning("event=slots_down user_id=%s error=%s", user_id, exc)
        return True

    def release(self, user_id: int, conn_id: str) -> None:
        """The socket closed."""
        if self.cap <= 0:
            return
        self.local.release(user_id, conn_id)
        self.slots.release(user_id, conn_id)

    def refresh(self, held: Iterable[tuple[int, str]]) -> None:
        """Vouch again for this process's sockets (called periodically)."""
        if self.cap > 0:
            self.slots.refresh(held)
