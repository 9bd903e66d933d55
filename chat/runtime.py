"""The live parts of one server process, wired together: bus -> registry, committer, limits.

Created by the factory (which is the only place that connects the bus to the
registry); its greenlets start with the server (``start``), never in
``create_app``, so tests and ``flask db upgrade`` spawn nothing.
"""
from __future__ import annotations

import logging

import gevent

from .bus import Bus, LocalBus, RedisBus
from .limits import Counters, FloodLimiter, MemoryCounters, RedisCounters
from .registry import Registry, corked
from .service.sending import MessageCommitter

log = logging.getLogger("chat.runtime")


class ChatRuntime:
    """Bus, registry, counters, flood limiter and message committer of one app."""

    def __init__(self, app) -> None:
        cfg = app.config
        self.app = app
        url = cfg.get("REDIS_URL")
        prefix = cfg["CHAT_REDIS_PREFIX"]
        self.bus: Bus = RedisBus(url, prefix) if url else LocalBus()
        self.counters: Counters = RedisCounters(url, prefix) if url else MemoryCounters()
        # Stands in for Redis where a limit must hold even while Redis is down.
        self.local_counters = MemoryCounters()
        self.registry = Registry()
        self.flood = FloodLimiter(cfg["CHAT_RATE_PER_MINUTE"])
        self.committer = MessageCommitter(app, self.bus, self.counters, batch_scope=corked)
        # The only wiring between bus and registry.
        self.bus.attach(self.registry)
        self.registry.on_channel_added = self.bus.subscribe
        self.registry.on_channel_removed = self.bus.unsubscribe
        self.started = False
        self.draining = False
        self._janitor: gevent.Greenlet | None = None

    def start(self) -> None:
        """Start the bus listener, the pinger and the credential re-check (once)."""
        if self.started:
            return
        self.started = True
        self.bus.start()
        self.registry.start_pinger(self.app.config["CHAT_PING_INTERVAL"])
        interval = self.app.config["CHAT_AUTH_RECHECK_INTERVAL"]
        if interval > 0:
            self._janitor = gevent.spawn(self._recheck_credentials, interval)

    def _recheck_credentials(self, interval: float) -> None:
        """Close sockets whose session or token was revoked, even if the event was lost."""
        from .extensions import db
        from .service import accounts

        while True:
            gevent.sleep(interval)
            auth_ids = {c.auth_id for c in self.registry.connections() if c.auth_id}
            if not auth_ids:
                continue
            try:
                with self.app.app_context():
                    revoked = accounts.revoked_among(sorted(auth_ids))
                    db.session.remove()
            except Exception as exc:  # the database may be down: try again next round
                log.warning("event=auth_recheck_failed error=%s", type(exc).__name__)
                continue
            if revoked:
                log.info("event=revoked_sockets_closed count=%s", len(revoked))
                self.registry.close_auth(revoked)

    def shutdown(self, timeout: float) -> None:
        """Graceful stop: refuse new sends, store what is queued, close sockets with 1001."""
        self.draining = True
        stored = self.committer.drain(timeout)
        log.info("event=shutdown drained=%s connections=%s", stored, len(self.registry))
        self.registry.close_all()
        gevent.sleep(0.5)
