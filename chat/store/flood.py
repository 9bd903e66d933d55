"""The flood limit's shared count: per-user one-second buckets in Redis, taken in batches.

A process does not ask Redis once per frame: it asks for a *lease* of several
frames for a user (``take``), spends it locally for up to a second and gives back
what it did not spend with its next batch. Every lease of a whole batch of users
goes out in one pipelined round trip.
"""
from __future__ import annotations

import logging
from typing import Sequence

from .redis_client import Lua, make_client, redis_errors

log = logging.getLogger("chat.flood")

# KEYS[1]: the user's hash of buckets (second -> frames granted in it).
# ARGV: want, limit, second to give back to, frames to give back.
# Seconds come from Redis's own clock (TIME), so processes on machines whose clocks
# disagree still share one window. Returns {granted, second}.
_TAKE = """
local now = tonumber(redis.call('TIME')[1])
local want = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local back = tonumber(ARGV[4])
if back > 0 then
  local held = tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or '0')
  if held > 0 then redis.call('HSET', KEYS[1], ARGV[3], math.max(0, held - back)) end
end
local flat = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #flat, 2 do
  if tonumber(flat[i]) <= now - 60 then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    total = total + tonumber(flat[i + 1])
  end
end
local grant = math.min(want, limit - total)
if grant <= 0 then return {0, now} end
redis.call('HINCRBY', KEYS[1], now, grant)
redis.call('EXPIRE', KEYS[1], 61)
return {grant, now}
"""


class FloodStoreDown(Exception):
    """Redis is unreachable: the caller counts in this process alone."""


class RedisFloodStore:
    """Frames granted per user in the last minute, shared by every process."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.redis_module = redis
        self.errors = redis_errors()
        self.prefix = prefix
        self.client = make_client(url, max_connections=4, timeout=1.0)
        self._take = Lua(self.client, _TAKE)

    def key(self, user_id: int) -> str:
        """The user's bucket hash (braces: a Redis Cluster hash tag, one user on one shard)."""
        return f"{self.prefix}flood:{{u{user_id}}}"

    def take(self, asks: Sequence[tuple[int, int, int, int, int]]) -> list[tuple[int, int]]:
        """Lease frames for many users in one round trip.

        Each ask is ``(user_id, want, limit, give_back_second, give_back_count)``;
        each answer ``(granted, redis_second)``.
        """
        if not asks:
            return []
        try:
            pipe = self.client.pipeline(transaction=False)
            for user_id, want, limit, back_second, back in asks:
                self._take(keys=[self.key(user_id)], args=[want, limit, back_second, back],
                           client=pipe)
            answers = pipe.execute()
        except self.errors as exc:
            raise FloodStoreDown(type(exc).__name__) from exc
        return [(int(granted), int(second)) for granted, second in answers]
