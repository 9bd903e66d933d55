"""Counters with expiry behind the limits: Redis INCR/EXPIRE, or an in-process twin.

They hold the stranger rule's per-pair counts (the seed's rule, compared as
integers: the seed compared strings, so "10" < "3") and the failed logins. The
rules themselves live in the service (``chat.service.committer``,
``chat.service.accounts``); this module only counts.
"""
from __future__ import annotations

import logging
from time import monotonic
from typing import Any, Protocol, Sequence

from .redis_client import Lua, make_client, redis_errors

log = logging.getLogger("chat.counters")


class CountersDown(Exception):
    """The counter store is unreachable; callers fall back to the database."""


class Counters(Protocol):
    """An integer counter store with expiry."""

    def get(self, key: str) -> int: ...
    def incr(self, key: str, ttl: int) -> int: ...
    def get_many(self, keys: Sequence[str]) -> list[int]: ...
    def incr_many(self, keys: Sequence[str], ttl: int) -> list[int]: ...
    def decr_many(self, keys: Sequence[str]) -> None: ...
    def incr_existing_many(self, keys: Sequence[str], ttl: int) -> list[int | None]: ...
    def seed_many(self, seeds: dict[str, tuple[int, int]], ttl: int) -> None: ...
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

    def incr_existing_many(self, keys: Sequence[str], ttl: int) -> list[int | None]:
        """Increment the counters that exist; ``None`` for one that does not."""
        out: list[int | None] = []
        for key in keys:
            entry = self.values.get(key)
            if entry is None or entry[1] <= monotonic():
                out.append(None)
            else:
                out.append(self.incr(key, ttl))
        return out

    def seed_many(self, seeds: dict[str, tuple[int, int]], ttl: int) -> None:
        """Set each missing counter to its first value, or add its increment if it exists."""
        for key, (value, increment) in seeds.items():
            entry = self.values.get(key)
            live = entry is not None and entry[1] > monotonic()
            self.values[key] = ((entry[0] + increment) if live else value, monotonic() + ttl)

    def _sweep(self) -> None:
        now = monotonic()
        for key in [k for k, (_, exp) in self.values.items() if exp <= now]:
            del self.values[key]

    def status(self) -> str:
        """Always available."""
        return "off"


_INCR_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local value = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return value
"""
_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisCounters:
    """Counters in Redis, shared by every process; pipelined by the batch."""

    def __init__(self, url: str, prefix: str = "chat:") -> None:
        import redis

        self.redis_module = redis
        self.errors = redis_errors()
        self.prefix = prefix
        self.client = make_client(url)
        # One key per script call, so each call stays on one shard of a cluster.
        self._incr_existing = Lua(self.client, _INCR_EXISTING)
        self._seed = Lua(self.client, _SEED)

    def _call(self, fn: Any):
        try:
            return fn()
        except self.errors as exc:
            raise CountersDown(type(exc).__name__) from exc

    def get(self, key: str) -> int:
        """The counter's value (0 when absent)."""
        return self._call(lambda: int(self.client.get(self.prefix + key) or 0))

    def incr(self, key: str, ttl: int) -> int:
        """INCR then EXPIRE, in one round trip."""
        return self.incr_many([key], ttl)[0]

    def get_many(self, keys: Sequence[str]) -> list[int]:
        """MGET, as integers (on a cluster one MGET per hash slot: the keys are pairs')."""
        if not keys:
            return []
        mget = getattr(self.client, "mget_nonatomic", self.client.mget)
        values = self._call(lambda: mget([self.prefix + k for k in keys]))
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
        except self.errors:
            log.warning("event=counter_undo_failed keys=%s", len(keys))

    def incr_existing_many(self, keys: Sequence[str], ttl: int) -> list[int | None]:
        """Increment the counters that exist, in one pipeline; ``None`` for a missing one.

        A missing counter is either new or lost (Redis restarted without persistence):
        the caller rebuilds it from what it knows (the stored messages).
        """
        if not keys:
            return []

        def run():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                self._incr_existing(keys=[self.prefix + key], args=[ttl], client=pipe)
            return pipe.execute()
        return [None if int(v) < 0 else int(v) for v in self._call(run)]

    def seed_many(self, seeds: dict[str, tuple[int, int]], ttl: int) -> None:
        """Set each missing counter to ``value``, or add ``increment`` if it appeared meanwhile."""
        if not seeds:
            return

        def run():
            pipe = self.client.pipeline(transaction=False)
            for key, (value, increment) in seeds.items():
                self._seed(keys=[self.prefix + key], args=[value, increment, ttl], client=pipe)
            return pipe.execute()
        self._call(run)

    def status(self) -> str:
        """"ok" when Redis answers a PING."""
        try:
            self.client.ping()
            return "ok"
        except self.errors:
            return "down"


def stranger_key(sender_id: int, recipient_id: int) -> str:
    """The counter of private messages from ``sender_id`` to ``recipient_id``."""
    return f"stranger:{sender_id}:{recipient_id}"


def make_counters(redis_url: str | None, prefix: str) -> Counters:
    """Redis when a URL is configured, else the in-process twin."""
    return RedisCounters(redis_url, prefix) if redis_url else MemoryCounters()
