"""Who is online, across every process: Redis sorted sets with expiry, or in-process.

Each user has a set of live connection ids scored by when their process last
vouched for them (as ``chat.store.slots``), and an "announced online" flag. The
flag makes the transitions happen once across processes: the first socket
anywhere sets it (announce online), and the grace check after the last one
closed clears it only if no socket came back (announce offline). Slots of a
process that died go stale after ``stale_after`` seconds and the flag expires, so
a killed process never leaves a user online for good.
"""
from __future__ import annotations

import logging
import time
from typing import Iterable, Protocol, Sequence

import gevent

from .redis_batch import BatchFailed, RedisBatcher
from .redis_client import Lua, make_client, redis_errors

log = logging.getLogger("chat.presence")

_OPEN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local fresh = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4])
if not fresh then redis.call('EXPIRE', KEYS[2], ARGV[4]) return 0 end
return 1
"""
_GONE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) > 0 then return 0 end
return redis.call('DEL', KEYS[2])
"""


class PresenceStore(Protocol):
    """Live connections per user, shared by every process."""

    def opened(self, user_id: int, conn_id: str) -> bool: ...
    def closed(self, user_id: int, conn_id: str) -> None: ...
    def gone(self, user_ids: Sequence[int]) -> set[int]: ...
    def online(self, user_ids: Sequence[int]) -> set[int]: ...
    def refresh(self, held: Iterable[tuple[int, str]]) -> None: ...


class RedisPresence:
    """Presence in Redis (the keys of one user share a cluster hash tag).

    Opens and closes of every socket of the process go out in batches
    (``RedisBatcher``, as the socket slots' do): a reconnect storm of thousands of
    sockets costs a few pipelined round trips, not one each.
    """

    def __init__(self, url: str, prefix: str, stale_after: float) -> None:
        import redis

        self.redis_module = redis
        self.errors = redis_errors()
        self.prefix = prefix
        self.stale_after = stale_after
        self.client = make_client(url, max_connections=4)
        self._open = Lua(self.client, _OPEN)
        self._gone = Lua(self.client, _GONE)
        self._batches = RedisBatcher(self.client, self.errors, "presence_unreachable")

    def _keys(self, user_id: int) -> list[str]:
        return [f"{self.prefix}presence:{{{user_id}}}", f"{self.prefix}presence:{{{user_id}}}:on"]

    def opened(self, user_id: int, conn_id: str) -> bool:
        """Record a live socket; True when the user was not announced online yet."""
        keys, ttl = self._keys(user_id), int(self.stale_after * 2)

        def command(pipe, now: float) -> None:
            self._open(keys=keys, args=[now, now - self.stale_after, conn_id, ttl], client=pipe)
        try:
            return bool(self._batches.ask(command).get(timeout=5))
        except (gevent.Timeout, BatchFailed):
            return False

    def closed(self, user_id: int, conn_id: str) -> None:
        """Forget a socket (best effort: a lost one goes stale by itself)."""
        self._batches.remove(self._keys(user_id)[0], conn_id)

    def gone(self, user_ids: Sequence[int]) -> set[int]:
        """Those of ``user_ids`` (each once) with no live socket left that were announced
        online, in the batches of the opens and closes."""
        answers = []
        for user_id in user_ids:
            def command(pipe, now: float, keys=self._keys(user_id)) -> None:
                self._gone(keys=keys, args=[now - self.stale_after], client=pipe)
            answers.append((user_id, self._batches.ask(command)))
        gone = set()
        for user_id, answer in answers:
            try:
                if answer.get(timeout=5):
                    gone.add(user_id)
            except (gevent.Timeout, BatchFailed):
                pass  # Redis away: the flag expires by itself, without an announcement
        return gone

    def online(self, user_ids: Sequence[int]) -> set[int]:
        """Those of ``user_ids`` with a live socket anywhere."""
        if not user_ids:
            return set()
        fresh = time.time() - self.stale_after
        try:
            pipe = self.client.pipeline(transaction=False)
            for uid in user_ids:
                pipe.zcount(self._keys(uid)[0], fresh, "+inf")
            counts = pipe.execute()
        except self.errors as exc:
            log.warning("event=presence_unreachable error=%s", type(exc).__name__)
            return set()
        return {uid for uid, n in zip(user_ids, counts) if n}

    def refresh(self, held: Iterable[tuple[int, str]]) -> None:
        """Vouch again for this process's sockets (and keep their flags), in one pipeline."""
        now = time.time()
        ttl = int(self.stale_after * 2)
        try:
            pipe = self.client.pipeline(transaction=False)
            for user_id, conn_id in held:
                key, flag = self._keys(user_id)
                pipe.zadd(key, {conn_id: now}, xx=True)
                pipe.expire(key, ttl)
                pipe.expire(flag, ttl)
            pipe.execute()
        except self.errors:
            log.warning("event=presence_refresh_failed")


class LocalPresence:
    """One process: presence is this process's own sockets."""

    def __init__(self) -> None:
        self.held: dict[int, set[str]] = {}
        self.announced: set[int] = set()

    def opened(self, user_id: int, conn_id: str) -> bool:
        """Record a live socket; True when the user was not announced online yet."""
        self.held.setdefault(user_id, set()).add(conn_id)
        if user_id in self.announced:
            return False
        self.announced.add(user_id)
        return True

    def closed(self, user_id: int, conn_id: str) -> None:
        """Forget a socket."""
        mine = self.held.get(user_id)
        if mine is not None:
            mine.discard(conn_id)
            if not mine:
                del self.held[user_id]

    def gone(self, user_ids: Sequence[int]) -> set[int]:
        """Those of ``user_ids`` (each once) with no live socket left that were announced
        online."""
        gone = {uid for uid in user_ids if uid not in self.held and uid in self.announced}
        self.announced -= gone
        return gone

    def online(self, user_ids: Sequence[int]) -> set[int]:
        """Those of ``user_ids`` with a live socket here."""
        return {uid for uid in user_ids if uid in self.held}

    def refresh(self, held: Iterable[tuple[int, str]]) -> None:
        """Nothing goes stale in one process."""


def make_presence(redis_url: str | None, prefix: str, stale_after: float) -> PresenceStore:
    """Redis when a URL is configured, else this process alone."""
    return RedisPresence(redis_url, prefix, stale_after) if redis_url else LocalPresence()
