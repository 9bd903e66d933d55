"""The flood limit: frames and state-changing calls per user in the last minute.

With Redis the limit holds across every process (``SharedFloodLimiter``): a
process leases a few frames per user at a time, every user's lease of one
event-loop turn in one round trip (a round trip per frame would cost more than
the frame itself). Without Redis, or while it is down, each process counts alone
(``FloodLimiter``).
"""
from __future__ import annotations

import logging
from time import monotonic

import gevent
from gevent.event import AsyncResult

from ..store.flood import FloodStoreDown, RedisFloodStore

log = logging.getLogger("chat.flood")


class FloodLimiter:
    """Frames per user in the last minute, in this process, counted per second.

    Sixty one-second buckets per active user: exact to the second, so a user who
    was quiet for a minute has the whole allowance again.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        # user -> [newest second seen, frames in the last 60 seconds, 60 buckets]
        self.windows: dict[int, list] = {}
        self._last_sweep = monotonic()

    def hit(self, user_id: int) -> bool:
        """Count one frame; False when the user is over the limit."""
        if self.per_minute <= 0:
            return True
        second = int(monotonic())
        entry = self.windows.get(user_id)
        if entry is None:
            entry = self.windows[user_id] = [second, 0, [0] * 60]
            if second - self._last_sweep > 120:
                self._sweep(second)
        newest, buckets = entry[0], entry[2]
        if second != newest:
            if second - newest >= 60:
                buckets[:] = [0] * 60
                entry[1] = 0
            else:
                for s in range(newest + 1, second + 1):  # the seconds that left the window
                    entry[1] -= buckets[s % 60]
                    buckets[s % 60] = 0
            entry[0] = second
        if entry[1] >= self.per_minute:
            return False
        buckets[second % 60] += 1
        entry[1] += 1
        return True

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for uid in [u for u, e in self.windows.items() if now - e[0] >= 60]:
            del self.windows[uid]


class SharedFloodLimiter:
    """Frames per user in the last minute across every process, leased from Redis.

    A frame spends a token of its user's lease when one is left (no I/O); else it
    waits for the next batch, which asks Redis for the frames waiting plus twice
    what the user spent from the last lease, or as many as wait (up to
    ``max_lease``), and gives back what an expired lease left unspent. A lease
    lives ``LEASE_SECONDS``: long enough that a user sending a frame a second
    asks Redis about once per lease, not per frame; short enough that a token is
    spent close to when it was counted (the sliding minute stays near exact). While Redis is down (and
    ``RETRY_AFTER`` seconds after it failed) this process's own limiter answers;
    it counts every granted frame too, so it knows the recent past when needed.
    """

    MAX_LEASE = 1024  # only for large allowances: a lease is at most a twentieth of one
    LEASE_SECONDS = 5.0
    WAIT = 1.0  # seconds a frame waits for Redis before this process decides alone
    RETRY_AFTER = 5.0
    SWEEP_EVERY = 5.0

    def __init__(self, store: RedisFloodStore, per_minute: int,
                 local: FloodLimiter | None = None) -> None:
        self.store = store
        self.per_minute = per_minute
        self.local = local or FloodLimiter(per_minute)
        # user -> [tokens left, valid until (monotonic), Redis second, tokens spent]
        self.leases: dict[int, list] = {}
        self.waiting: dict[int, list[AsyncResult]] = {}
        self.down_until = 0.0
        self._sender: gevent.Greenlet | None = None
        self._last_sweep = monotonic()
        # Never lease more than a small share of the allowance: with many processes a
        # user's unspent leases elsewhere must not starve the process they use now.
        self.max_lease = max(0, min(self.MAX_LEASE, per_minute // 20))

    def hit(self, user_id: int) -> bool:
        """Count one frame; False when the user is over the limit (across processes)."""
        if self.per_minute <= 0:
            return True
        now = monotonic()
        if now < self.down_until:
            return self.local.hit(user_id)
        lease = self.leases.get(user_id)
        if lease is not None and lease[0] > 0 and now < lease[1]:
            lease[0] -= 1
            lease[3] += 1
            self.local.hit(user_id)
            return True
        result = AsyncResult()
        self.waiting.setdefault(user_id, []).append(result)
        if self._sender is None:
            self._sender = gevent.spawn(self._send)
        try:
            allowed = result.get(timeout=self.WAIT)
        except gevent.Timeout:
            allowed = None
        if allowed is None:  # Redis did not answer: this process decides alone
            return self.local.hit(user_id)
        if allowed:
            self.local.hit(user_id)
        return allowed

    def _send(self) -> None:
        """Ask Redis for what queued up, batch after batch, until nothing waits."""
        try:
            while self.waiting:
                waiting, self.waiting = self.waiting, {}
                self._ask(waiting)
        finally:
            self._sender = None

    def _ask(self, waiting: dict[int, list[AsyncResult]]) -> None:
        now = monotonic()
        asks = []
        for user_id, results in waiting.items():
            lease = self.leases.pop(user_id, None)
            back_second = back = spent = 0
            if lease is not None:
                back_second, back, spent = lease[2], lease[0], lease[3]
            # Twice what the user spent from the last lease (or waits for now): a
            # steady sender's leases double up to max_lease.
            ahead = min(max(2 * spent, len(results)), self.max_lease)
            asks.append((user_id, len(results) + ahead, self.per_minute, back_second, back))
        sweep = self._expired(now) if now - self._last_sweep > self.SWEEP_EVERY else []
        try:
            answers = self.store.take(asks + sweep)
        except FloodStoreDown as exc:
            log.warning("event=flood_store_unreachable error=%s", exc)
            self.down_until = monotonic() + self.RETRY_AFTER
            for results in waiting.values():
                for result in results:
                    result.set(None)
            return
        valid_until = monotonic() + self.LEASE_SECONDS
        for (user_id, results), (granted, second) in zip(waiting.items(), answers):
            served = min(granted, len(results))
            for n, result in enumerate(results):
                result.set(n < served)
            self.leases[user_id] = [granted - served, valid_until, second, served]

    def _expired(self, now: float) -> list[tuple[int, int, int, int, int]]:
        """Give back what leases of users gone quiet left unspent, and forget them."""
        self._last_sweep = now
        out = []
        for user_id in [u for u, lease in self.leases.items() if lease[1] < now]:
            left, _, second, _ = self.leases.pop(user_id)
            if left:
                out.append((user_id, 0, self.per_minute, second, left))
        return out


def make_flood(redis_url: str | None, prefix: str,
               per_minute: int) -> FloodLimiter | SharedFloodLimiter:
    """Shared across processes when Redis is configured, else this process alone."""
    if redis_url and per_minute > 0:
        return SharedFloodLimiter(RedisFloodStore(redis_url, prefix), per_minute)
    return FloodLimiter(per_minute)
