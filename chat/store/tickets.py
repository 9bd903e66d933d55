"""Short-lived single-use secrets (WebSocket tickets): Redis, or this process's memory."""
from __future__ import annotations

from time import monotonic
from typing import Protocol

from .redis_client import make_client


class Tickets(Protocol):
    """Put a value under a key for a few seconds; take it back once."""

    def put(self, key: str, value: str, ttl: int) -> None: ...
    def take(self, key: str) -> str | None: ...


class RedisTickets:
    """Tickets in Redis (SET EX, then GETDEL): any process can redeem one, only once."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix + "ticket:"
        self.client = make_client(url)

    def put(self, key: str, value: str, ttl: int) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        self.client.set(self.prefix + key, value, ex=ttl)

    def take(self, key: str) -> str | None:
        """The value, removed in the same step (a second take gets None)."""
        value = self.client.getdel(self.prefix + key)
        return value.decode() if value is not None else None


class MemoryTickets:
    """The in-process twin (one process: the embedded default)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, float]] = {}

    def put(self, key: str, value: str, ttl: int) -> None:
        """Store ``value`` for ``ttl`` seconds (and forget expired ones)."""
        now = monotonic()
        if len(self.values) > 10_000:
            self.values = {k: v for k, v in self.values.items() if v[1] > now}
        self.values[key] = (value, now + ttl)

    def take(self, key: str) -> str | None:
        """The value, removed; None when absent or expired."""
        entry = self.values.pop(key, None)
        if entry is None or entry[1] <= monotonic():
            return None
        return entry[0]


def make_tickets(redis_url: str | None, prefix: str) -> Tickets:
    """Redis when a URL is configured, else this process's memory."""
    return RedisTickets(redis_url, prefix) if redis_url else MemoryTickets()
