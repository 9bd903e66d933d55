"""Many greenlets' small Redis writes, sent in pipelined batches.

Socket slots and presence both record every socket that opens and closes. One
round trip each would cost a reconnect storm of thousands of sockets thousands
of round trips (and connections); here one pipelined round trip carries
whatever queued up while the previous one was out.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult

log = logging.getLogger("chat.redis")

# Adds one command to the pipeline, given the batch's time (seconds since the epoch).
Command = Callable[[Any, float], None]


class BatchFailed(Exception):
    """Redis could not be reached for the batch that carried this command."""


class RedisBatcher:
    """Queues removals (``ZREM``, no answer wanted) and commands whose answer a greenlet
    waits for; one sender greenlet pipelines them, removals first in each batch (a
    reloaded tab's close goes before its new socket's open)."""

    def __init__(self, client: Any, errors: tuple[type[Exception], ...], event: str) -> None:
        self.client = client
        self.errors = errors
        self.event = event  # logged when Redis is unreachable
        self._asks: list[tuple[Command, AsyncResult]] = []
        self._removals: list[tuple[str, str]] = []
        self._sender: gevent.Greenlet | None = None

    def remove(self, key: str, member: str) -> None:
        """``ZREM key member`` in the next batch (best effort)."""
        self._removals.append((key, member))
        self._wake()

    def ask(self, command: Command) -> AsyncResult:
        """Run ``command`` in the next batch; its answer (or ``BatchFailed``) arrives in
        the result."""
        result = AsyncResult()
        self._asks.append((command, result))
        self._wake()
        return result

    def _wake(self) -> None:
        if self._sender is None:
            self._sender = gevent.spawn(self._send)

    def _send(self) -> None:
        """Send what queued up, batch after batch, until nothing is left."""
        try:
            while self._asks or self._removals:
                asks, self._asks = self._asks, []
                removals, self._removals = self._removals, []
                now = time.time()
                try:
                    pipe = self.client.pipeline(transaction=False)
                    for key, member in removals:
                        pipe.zrem(key, member)
                    for command, _ in asks:
                        command(pipe, now)
                    answers = pipe.execute()[len(removals):]
                except self.errors as exc:
                    log.warning("event=%s error=%s", self.event, type(exc).__name__)
                    for _, result in asks:
                        result.set_exception(BatchFailed(type(exc).__name__))
                    continue
                for (_, result), answer in zip(asks, answers):
                    result.set(answer)
        finally:
            self._sender = None
