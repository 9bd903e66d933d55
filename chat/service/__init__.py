"""The service layer: the one place that decides. Plain ids in, results or ChatError out.

It never imports Flask's ``request``, the socket layer or the registry: what it
needs (the bus, the counters, the flood limiter, the settings) is handed to
``Services`` once, by the runtime.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

from ..bus import Bus
from ..store.counters import Counters
from ..store.tickets import Tickets
from .accounts import Accounts
from .committer import MessageCommitter
from .events import Events
from .groups import Groups
from .limits import FloodLimiter, SharedFloodLimiter
from .notices import Notices
from .passwords import PasswordHasher
from .reading import Reading
from .sending import Sending
from .settings import ServiceSettings
from .social import Social

__all__ = ["Services", "ServiceSettings"]


class Services:
    """Every service of one app, each given its collaborators explicitly."""

    def __init__(self, app, *, settings: ServiceSettings, bus: Bus, counters: Counters,
                 local_counters: Counters, tickets: Tickets,
                 flood: FloodLimiter | SharedFloodLimiter, stats,
                 open_batch: Callable[[], AbstractContextManager],
                 draining: Callable[[], bool]) -> None:
        self.settings = settings
        self.flood = flood
        self.events = Events(bus)
        self.notices = Notices(self.events)
        self.accounts = Accounts(settings, counters, local_counters, self.events,
                                 PasswordHasher(settings.hash_threads), tickets)
        self.social = Social(self.notices)
        self.groups = Groups(self.notices, self.events)
        self.reading = Reading(self.events)
        self.committer = MessageCommitter(app, settings, bus, counters, stats, open_batch)
        self.sending = Sending(self.committer, draining)
