"""Who holds how many live sockets, across every process: Redis sorted sets, or in-process.

Each user has a set of connection ids scored by when their process last vouched
for them. A process claims a slot when a socket opens (refused past the cap,
atomically), releases it when the socket closes, and refreshes its sockets'
scores now and then; slots of a process that died without releasing them fall
out once their score is older than ``stale_after``.
"""
from __future__ import annotations

import logging
import time
from typing import Iterable, Protocol

import gevent

from .redis_batch import BatchFailed, RedisBatcher
from .redis_client import Lua, make_client, redis_errors

log = logging.getLogger("chat.slots")

CLAIM_TIMEOUT = 3.0  # seconds a socket waits to hear whether it may open

_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class SlotsDown(Exception):
    """The shared slot store is unreachable: callers count this process alone."""


class Slots(Protocol):
    """Live sockets per user, shared by every process."""

    def claim(self, user_id: int, conn_id: str, cap: int) -> bool: ...
    def release(self, user_id: int, conn_id: str) -> None: ...
    def refresh(self, held: Iterable[tuple[int, str]]) -> None: ...


class RedisSlots:
    """Slots in Redis: one sorted set per user (one key per call: cluster-safe).

    Claims and releases of every socket of the process go to Redis in batches
    (``RedisBatcher``): a reconnect storm of thousands of sockets costs a few round
    trips, not thousands of connections.
    """

    def __init__(self, url: str, prefix: str, stale_after: float) -> None:
        import redis

        self.redis_module = redis
        self.errors = redis_errors()
        self.prefix = prefix
        self.stale_after = stale_after
        self.client = make_client(url, max_connections=4)
        self._claim = Lua(self.client, _CLAIM)
        self._batches = RedisBatcher(self.client, self.errors, "slots_unreachable")

    def _key(self, user_id: int) -> str:
        # The braces are a Redis Cluster hash tag: every key of one user on one shard.
        return f"{self.prefix}sockets:{{{user_id}}}"

    def claim(self, user_id: int, conn_id: str, cap: int) -> bool:
        """Take a slot for ``conn_id`` unless the user holds ``cap`` live ones already."""
        key, ttl = self._key(user_id), int(self.stale_after * 2)

        def command(pipe, now: float) -> None:
            self._claim(keys=[key], args=[now, now - self.stale_after, cap, conn_id, ttl],
                        client=pipe)
        try:
            return bool(self._batches.ask(command).get(timeout=CLAIM_TIMEOUT))
        except gevent.Timeout:
            raise SlotsDown("no answer from Redis in time") from None
        except BatchFailed as exc:
            raise SlotsDown(str(exc)) from None

    def release(self, user_id: int, conn_id: str) -> None:
        """Give a slot back (best effort: a lost release goes stale by itself)."""
        self._batches.remove(self._key(user_id), conn_id)

    def refresh(self, held: Iterable[tuple[int, str]]) -> None:
        """Vouch again for this process's sockets, in one pipeline."""
        now = time.time()
        try:
            pipe = self.client.pipeline(transaction=False)
            for user_id, conn_id in held:
                pipe.zadd(self._key(user_id), {conn_id: now}, xx=True)
                pipe.expire(self._key(user_id), int(self.stale_after * 2))
            pipe.execute()
        except self.errors:
            log.warning("event=slot_refresh_failed")


class LocalSlots:
    """One process: the slots are this process's own sockets."""

    def __init__(self) -> None:
        self.held: dict[int, set[str]] = {}

    def claim(self, user_id: int, conn_id: str, cap: int) -> bool:
        """Take a slot unless the user holds ``cap`` already."""
        mine = self.held.setdefault(user_id, set())
        if len(mine) >= cap:
            return False
        mine.add(conn_id)
        return True

    def release(self, user_id: int, conn_id: str) -> None:
        """Give a slot back."""
        mine = self.held.get(user_id)
        if mine is not None:
            mine.discard(conn_id)
            if not mine:
                del self.held[user_id]

    def refresh(self, held: Iterable[tuple[int, str]]) -> None:
        """Nothing goes stale in one process."""


def make_slots(redis_url: str | None, prefix: str, stale_after: float) -> Slots:
    """Redis when a URL is configured, else this process alone."""
    return RedisSlots(redis_url, prefix, stale_after) if redis_url else LocalSlots()
