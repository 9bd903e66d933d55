"""Reads of the same shape asked at the same moment by many greenlets, sent as one query.

A burst of connects (a reconnect storm, a deploy) asks for thousands of tokens in a few
seconds. Read one by one, each costs a pooled connection's checkout, a query, its result
sets' packets and a wake-up, in Python, on the worker's one core. Here the first askers
(up to ``parallel`` at once) read at once, as before; whoever asks while those reads are
in flight waits, and the next read takes every waiting key (up to ``batch``) in one
query. A lone ask is never delayed: it leads its own read.

Greenlets only (gunicorn's gevent worker, the development server): the waiting is
gevent's. Without a hub running (an in-process test) every ask finds a free lead and
reads at once.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from gevent.event import AsyncResult

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_LEAD = object()  # a waiting ask is told to lead the next read itself


class _Ask:
    __slots__ = ("key", "answer")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.answer = AsyncResult()


class Coalescer(Generic[K, V]):
    """``get(key)`` = ``read_many([key, ...])[key]``, concurrent keys read together."""

    def __init__(self, read_many: Callable[[Sequence[K]], dict[K, V]], missing: V,
                 batch: int = 64, parallel: int = 4) -> None:
        self._read_many = read_many
        self._missing = missing  # the answer for a key that ``read_many`` left out
        self._batch = batch
        self._parallel = parallel
        self._waiting: deque[_Ask] = deque()
        self._leading = 0

    def get(self, key: K) -> V:
        """The value of ``key``, read alone or with the keys asked while others read."""
        if self._leading < self._parallel:
            self._leading += 1
            return self._lead(key)
        ask = _Ask(key)
        self._waiting.append(ask)
        try:
            answer = ask.answer.get()
        except BaseException:  # killed or timed out while waiting
            if ask.answer.ready() and ask.answer.successful() and ask.answer.value is _LEAD:
                self._leading -= 1  # its turn to lead came, and it will not take it
                self._hand_off()
            elif ask in self._waiting:
                self._waiting.remove(ask)
            raise
        if answer is _LEAD:
            return self._lead(key)
        return answer

    def _lead(self, key: K) -> V:
        """Read ``key`` with the waiting ones (the caller counts as leading)."""
        asks = [self._waiting.popleft() for _ in range(min(len(self._waiting), self._batch - 1))]
        try:
            found = self._read_many(list(dict.fromkeys([key, *(ask.key for ask in asks)])))
        except Exception as exc:  # the read failed: for every key in it, as it would alone
            for ask in asks:
                ask.answer.set_exception(exc)
            raise
        except BaseException:  # this greenlet was stopped: the others still want an answer
            self._waiting.extendleft(reversed(asks))
            raise
        else:
            for ask in asks:
                ask.answer.set(found.get(ask.key, self._missing))
            return found.get(key, self._missing)
        finally:
            self._leading -= 1
            self._hand_off()

    def _hand_off(self) -> None:
        """Let waiting asks lead the next reads, as many as may run."""
        while self._waiting and self._leading < self._parallel:
            self._leading += 1
            self._waiting.popleft().answer.set(_LEAD)
