"""The service layer: the one place that decides. Plain ids in, results or ChatError out.

It never imports Flask's ``request``, the socket layer or the registry: what it
needs (the bus, the counters, the flood limiter, the settings) is handed to
``Services`` once, by the runtime.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

from ..bus import Bus
from ..config import INSTANCE_DIR
from ..store.counters import Counters
from ..store.presence import LocalPresence, PresenceStore
from ..store.tickets import Tickets
from .accounts import Accounts
from .committer import MessageCommitter
from .events import Events
from .groups import Groups
from .limits import FloodLimiter, SharedFloodLimiter
from .notices import Notices
from . import rich
from .passwords import PasswordHasher
from .presence import Presence
from .push import Push
from .prefs import ConversationPrefs
from .reading import Reading
from .search import Search
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
                 draining: Callable[[], bool],
                 presence_store: PresenceStore | None = None, uploads=None) -> None:
        self.settings = settings
        self.flood = flood
        self.events = Events(bus)
        self.notices = Notices(self.events)
        self.accounts = Accounts(settings, counters, local_counters, self.events,
                                 PasswordHasher(settings.hash_threads), tickets)
        self.presence = Presence(app, presence_store or LocalPresence(), bus,
                                 settings.presence_grace, announce=settings.presence)
        self.social = Social(self.notices, self.presence)
        self.groups = Groups(self.notices, self.events)
        self.reading = Reading(self.events)
        self.search = Search(app.config.get("CHAT_SEARCH_WINDOW", 20000))
        self.prefs = ConversationPrefs(self.reading)
        # Files (chat.files.service.Uploads); without them no upload id names anything.
        self.uploads = uploads
        self.committer = MessageCommitter(app, settings, bus, counters, stats, open_batch,
                                          files=uploads.resolve if uploads else rich.no_files)
        self.push = Push(app, self.presence.store, app.config.get("CHAT_VAPID_PRIVATE_KEY"),
                         app.config.get("CHAT_VAPID_SUBJECT", "mailto:admin@localhost"),
                         app.config.get("NAME") == "testing", INSTANCE_DIR)
        self.committer.on_messages = self.push.enqueue
        self.sending = Sending(self.committer, draining)
