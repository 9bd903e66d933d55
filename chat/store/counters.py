"""Counters with expiry behind the limits: Redis INCR/EXPIRE, or an in-process twin.

They hold the stranger rule's per-pair counts (the seed's rule, compared as
integers: the seed compared strings, so "10" < "3") and the failed logins. The
rules themselves live in the service (``chat.service.committer``,
``chat.service.accounts``); this module only counts.
"""
from __future__ import annotations

import logging
from time import monotonic
from typing import Protocol, Sequence

log = logging.getLogger("chat.limits")


class CountersDown(Exception):
    """The counter store is unreachable; callers fall back to the database."""


class Counters(Protocol):
    """An integer counter store with expiry."""

    def get(self, key: str) -> int: ...
    def incr(self, key: str, ttl: int) -> int: ...
    def get_many(self, keys: Sequence[str]) -> list[int]: ...
    def incr_many(self, keys: Sequence[str], ttl: int) -> list[int]: ...
    def decr_many(self, keys: Sequence[str]) -> None: ...
    def status(self) -> str: ...


class MemoryCounters:
    """The in-process twin of ``RedisCounters`` (embedded defaults, one process)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[int, float]] = {}

    def _live(self, key: str) -> int:
        entry = self.values.get(key)
        if entry is None:
            return 0
        if entry[1] <= monotonic():
            del self.values[key]
            return 0
        return entry[0]

    def get(self, key: str) -> int:
        """The counter's value (0 when absent or expired)."""
        return self._live(key)

    def incr(self, key: str, ttl: int) -> int:
        """Add one and push the expiry ``ttl`` seconds ahead."""
        value = self._live(key) + 1
        self.values[key] = (value, monotonic() + ttl)
        if len(self.values) > 100_000:
            self._sweep()
        return value

    def get_many(self, keys: Sequence[str]) -> list[int]:
        """Several values at once."""
        return [self._live(k) for k in keys]

    def incr_many(self, keys: Sequence[str], ttl: int) -> list[int]:
        """Increment several counters, in order."""
        return [self.incr(k, ttl) for k in keys]

    def decr_many(self, keys: Sequence[str]) -> None:
        """Undo increments (a send that was refused or not stored)."""
        for key in keys:
            entry = self.values.get(key)
            if entry is not None:
                self.values[key] = (max(0, entry[0] - 1), entry[1])

    def _sweep(self) -> None:
        now = monotonic()
        for key in [k for k, (_, exp) in self.values.items() if exp <= now]:
            del self.values[key]

    def status(self) -> str:
        """Always available."""
        return "off"


class RedisCounters:
    """Counters in Redis, shared by every process; pipelined by the batch."""

    def __init__(self, url: str, prefix: str = "chat:") -> None:
        import redis

        self.redis_module = redis
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1,
                                           health_check_interval=0)

    def _call(self, fn):
        try:
            return fn()
        except self.redis_module.RedisError as exc:
            raise CountersDown(type(exc).__name__) from exc

    def get(self, key: str) -> int:
        """The counter's value (0 when absent)."""
        return self._call(lambda: int(self.client.get(self.prefix + key) or 0))

    def incr(self, key: str, ttl: int) -> int:
        """INCR then EXPIRE, in one round trip."""
        return self.incr_many([key], ttl)[0]

    def get_many(self, keys: Sequence[str]) -> list[int]:
        """MGET, as integers."""
        if not keys:
            return []
        values = self._call(lambda: self.client.mget([self.prefix + k for k in keys]))
        return [int(v or 0) for v in values]

    def incr_many(self, keys: Sequence[str], ttl: int) -> list[int]:
        """INCR and EXPIRE every key in one pipeline."""
        if not keys:
            return []

        def run():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.incr(self.prefix + key)
                pipe.expire(self.prefix + key, ttl)
            return pipe.execute()[0::2]
        return [int(v) for v in self._call(run)]

    def decr_many(self, keys: Sequence[str]) -> None:
        """Undo increments; best effort."""
        if not keys:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.decr(self.prefix + key)
            pipe.execute()
        except self.redis_module.RedisError:
            log.warning("event=counter_undo_failed keys=%s", len(keys))

    def status(self) -> str:
        """"ok" when Redis answers a PING."""
        try:
            self.client.ping()
            return "ok"
        except self.redis_module.RedisError:
            return "down"


def stranger_key(sender_id: int, recipient_id: int) -> str:
    """The counter of private messages from ``sender_id`` to ``recipient_id``."""
    return f"stranger:{sender_id}:{recipient_id}"


def make_counters(redis_url: str | None, prefix: str) -> Counters:
    """Redis when a URL is configured, else the in-process twin."""
    return RedisCounters(redis_url, prefix) if redis_url else MemoryCounters()
