"""The live parts of one app, wired once: bus -> registry, counters, services.

Created by the factory (the only place that connects the bus to the registry);
its greenlets start when the server starts (``start``, called by gunicorn's
``post_worker_init`` and by the development server), never in ``create_app``,
so tests and ``flask db upgrade`` spawn nothing.
"""
from __future__ import annotations

import gc
import logging
from time import monotonic
from typing import Callable, Sequence

import gevent
from flask import Flask, current_app
from gevent.pool import Group

from .bus import Bus, make_bus
from .extensions import db
from .files import make_storage
from .files.service import UploadSettings, Uploads
from .ops.dbcheck import DatabaseCheck
from .ops.metrics import SendStats
from .realtime.group_check import GroupCheck
from .realtime.quota import SocketQuota
from .realtime.registry import Registry
from .service import Services, ServiceSettings
from .service.limits import make_flood
from .service.publishing import StoreBackfill
from .store.counters import Counters, MemoryCounters, make_counters
from .store.presence import make_presence
from .store.slots import make_slots
from .store.tickets import make_tickets

log = logging.getLogger("chat.runtime")
# MySQL's "deadlock found" and "lock wait timeout": the indexer's copy (shared locks on
# the newest messages) met a batch editing one of them; nothing is wrong, it runs again.
_LOCK_CONFLICTS = (1213, 1205)

SLOT_REFRESH_EVERY = 20.0
# The indexer's round runs after this process committed messages, and at least this often
# (seconds) when it did not: another process may have stopped before indexing its own.
INDEX_IDLE_ROUND = 1.0
# Messages a round should find. A round costs a query however little it indexes, and at
# low rates a round every interval found one or two messages: spent on about every
# message, it was about a seventh of the server's CPU and a quarter of MariaDB's at
# 50 msgs/s.
# Fewer messages than this and the next round waits longer, up to INDEX_IDLE_ROUND; more
# and it comes after the interval, so that a round's burst of indexing stays short at
# high rates (search walks what is not indexed yet, so a later round changes no result).
INDEX_ROUND_TARGET = 50

SLOT_STALE_AFTER = 3 * SLOT_REFRESH_EVERY


def index_pause(interval: float, covered: int) -> float:
    """Seconds before the indexer's next round, after one that covered ``covered`` ids:
    ``interval`` when the round found its target, longer in proportion when it found
    less (nothing new, or another process took the round), at most INDEX_IDLE_ROUND."""
    if covered >= INDEX_ROUND_TARGET:
        return interval
    return min(max(interval, INDEX_IDLE_ROUND),
               interval * INDEX_ROUND_TARGET / max(covered, 1))


class ChatRuntime:
    """Bus, registry, counters, metrics and the services of one app."""

    def __init__(self, app: Flask) -> None:
        cfg = app.config
        self.app = app
        prefix = cfg["CHAT_REDIS_PREFIX"]
        self.bus: Bus = make_bus(cfg.get("REDIS_URL"), prefix)
        self.counters: Counters = make_counters(cfg.get("REDIS_URL"), prefix)
        self.registry = Registry(cfg["CHAT_SEND_QUEUE_TOTAL_BYTES"])
        # A process that dies keeps its slots until they are this old (refreshed every 20 s).
        self.quota = SocketQuota(make_slots(cfg.get("REDIS_URL"), prefix, SLOT_STALE_AFTER),
                                 cfg["CHAT_MAX_SOCKETS_PER_USER"])
        self.stats = SendStats()
        self.database_check = DatabaseCheck(app)
        self.draining = False
        self.services = Services(
            app, settings=ServiceSettings.from_config(cfg), bus=self.bus,
            counters=self.counters, local_counters=MemoryCounters(),
            tickets=make_tickets(cfg.get("REDIS_URL"), prefix),
            flood=make_flood(cfg.get("REDIS_URL"), prefix, cfg["CHAT_RATE_PER_MINUTE"]),
            stats=self.stats,
            open_batch=self.registry.batch, draining=lambda: self.draining,
            presence_store=make_presence(cfg.get("REDIS_URL"), prefix, SLOT_STALE_AFTER),
            uploads=Uploads(app, UploadSettings.from_config(cfg), make_storage(cfg)))
        # The only wiring between bus and registry.
        self.bus.attach(self.registry)
        self.registry.on_channel_added = self.bus.subscribe
        self.registry.on_channel_removed = self.bus.unsubscribe
        # The groups of a user's first socket here, read again once its channel listens.
        self.group_check = GroupCheck(self.registry, self._groups_of)
        self.registry.on_everyone_catches_up = self.group_check.queue_everyone
        if hasattr(self.bus, "attach_backfill"):  # several processes: gaps read back
            self.bus.attach_backfill(StoreBackfill(app))
        # One greenlet per open WebSocket, each in an app context of its own (its request
        # ended at the upgrade: ``chat.realtime.route``).
        self.connections = Group()
        self.started = False
        self._janitor: gevent.Greenlet | None = None

    def start(self) -> None:
        """Start the bus listener, the pinger and the credential re-check, once per process.

        Also tunes the garbage collector for a long-lived server (see CHAT_GC_THRESHOLDS).
        """
        if self.started:
            return
        self.started = True
        cfg = self.app.config
        self.bus.start()
        self.services.committer.start()
        self.registry.start_pinger(cfg["CHAT_PING_INTERVAL"])
        self._say_search_status()
        interval = cfg["CHAT_AUTH_RECHECK_INTERVAL"]
        if interval > 0:
            self._janitor = gevent.spawn(self._recheck_credentials, interval)
        gevent.spawn(self._refresh_socket_slots)
        if cfg["CHAT_UPLOAD_CLEANUP_INTERVAL"] > 0:
            gevent.spawn(self._clean_uploads, cfg["CHAT_UPLOAD_CLEANUP_INTERVAL"])
        if cfg["CHAT_SEARCH_INDEX_INTERVAL_MS"] > 0 and self._on_mariadb():
            gevent.spawn(self._index_search, cfg["CHAT_SEARCH_INDEX_INTERVAL_MS"] / 1000)
        # Everything loaded so far lives as long as the process: keep the cyclic collector
        # from walking it again and again (its pauses showed as latency spikes), and make
        # young collections rarer (a third of a reconnect storm's CPU was the collector
        # re-walking the objects of thousands of live sockets).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*cfg["CHAT_GC_THRESHOLDS"])

    def _groups_of(self, user_ids: Sequence[int]) -> dict[int, list[int]]:
        """The users' groups, read in an app context of the check's own."""
        with self.app.app_context():
            return self.services.reading.groups_of(user_ids)

    def _say_search_status(self) -> None:
        """Log at start whether search works here (MariaDB needs the Mroonga plugin)."""
        try:
            with self.app.app_context():
                self.services.search.log_status()
                db.session.remove()
        except Exception as exc:  # the database may be down: search says so when asked
            log.warning("event=search_status_unknown error=%s", type(exc).__name__)

    def _recheck_credentials(self, interval: float) -> None:
        """Close sockets whose session or token was revoked, even if the event was lost."""
        accounts = self.services.accounts
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

    def _refresh_socket_slots(self) -> None:
        """Vouch for this process's sockets in the shared slot store, every 20 seconds."""
        while True:
            gevent.sleep(SLOT_REFRESH_EVERY)
            try:
                held = [(c.user_id, c.id) for c in self.registry.connections()]
                self.quota.refresh(held)
                self.services.presence.store.refresh(held)
            except Exception:
                log.exception("event=slot_refresh_failed")

    def _on_mariadb(self) -> bool:
        with self.app.app_context():
            return db.engine.dialect.name in ("mysql", "mariadb")

    def _index_search(self, interval: float) -> None:
        """Add new messages to the search index, off the send path (MariaDB's Mroonga):
        ``interval`` seconds after this process committed, else every INDEX_IDLE_ROUND."""
        with self.app.app_context():  # a round's connection comes from the app's engines
            engine = db.engine
            failing = False
            seen, last_round, pause = -1, 0.0, interval
            while True:
                gevent.sleep(pause)
                pause = interval
                if self.stats.batches == seen and monotonic() - last_round < INDEX_IDLE_ROUND:
                    continue  # nothing committed here since the last round
                seen, last_round = self.stats.batches, monotonic()
                try:
                    pause = index_pause(interval, self.services.search.index_pending(engine))
                    failing = False
                except Exception as exc:  # the database is down: next round (logged once)
                    code = getattr(getattr(exc, "orig", None), "args", (None,))[0]
                    if code in _LOCK_CONFLICTS:  # chosen as a deadlock's victim: next round
                        log.warning("event=search_index_retry error=%s", code)
                        seen = -1
                    elif not failing:
                        log.exception("event=search_index_failed")
                        failing = True

    def _clean_uploads(self, interval: float) -> None:
        """Delete unused and recalled files (every process may: the DELETEs decide who)."""
        while True:
            gevent.sleep(interval)
            try:
                self.services.uploads.cleanup()
            except Exception:  # the database or the bucket may be down: next round
                log.exception("event=upload_cleanup_failed")

    def live_on(self, life: Callable[[], None], end: Callable[[], None]) -> None:
        """Run the rest of a WebSocket's life in a greenlet of its own, in an app context;
        ``end`` (dropping the socket) runs afterwards whatever happened."""
        self.connections.spawn(self._live, life, end)

    def _live(self, life: Callable[[], None], end: Callable[[], None]) -> None:
        try:
            with self.app.app_context():
                life()
        except Exception:  # one connection's failure never reaches the others
            log.exception("event=ws_failed")
        finally:
            end()

    def full(self) -> bool:
        """This process holds as many WebSockets as it may (CHAT_WORKER_CONNECTIONS)."""
        return len(self.connections) >= self.app.config["CHAT_WORKER_CONNECTIONS"]

    def shutdown(self, timeout: float) -> None:
        """Graceful stop: refuse new sends, store what is queued, close sockets with 1001
        and wait (briefly) until each has sent its close frame."""
        self.draining = True
        stored = self.services.committer.drain(timeout)
        log.info("event=shutdown drained=%s connections=%s", stored, len(self.registry))
        self.registry.close_all()
        # A socket's end: its close frame flushed (at most 2 s), the peer's answer (1 s).
        self.connections.join(timeout=4)


def runtime() -> ChatRuntime:
    """The current app's runtime (for the views: pages, API, WebSocket, health)."""
    return current_app.extensions["chat"]


def services() -> Services:
    """The current app's services (for the views)."""
    return runtime().services
