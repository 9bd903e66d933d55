"""Reads of the same shape asked at the same moment by many greenlets, sent as one query.

A burst of connects (a reconnect storm, a deploy) asks for thousands of tokens in a few
seconds. Read one by one, each costs a pooled connection's checkout, a query, its result
sets' packets and a wake-up, in Python, on the worker's one core. Here the first askers
(up to ``parallel`` at once) read at once, as before; whoever asks while those reads are
in flight waits, and the next read takes every waiting key (up to ``batch``) in one
query. A lone ask is never delayed: it leads its own read.

Greenlets only (gunicorn's gevent worker, the development server, both monkey-patched):
the waiting is gevent's, and the counts are not guarded against real threads. Without a
hub running (an in-process test) every ask finds a free lead and reads at once, and a
read that never yields (SQLite's) never lets a batch form.

A batch is answered when its slowest read is: a user whose hello is slow (thousands of
conversations) delays the others in the batch, where it held one of the pool's
connections before.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from gevent import Timeout
from gevent.event import AsyncResult

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_LEAD = object()  # a waiting ask is told to lead the next read itself


class _Ask:
    __slots__ = ("key", "answer", "abandoned")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.answer = AsyncResult()
        self.abandoned = False  # its asker stopped waiting: nobody reads its answer


class Coalescer(Generic[K, V]):
    """``get(key)`` = ``read_many([key, ...])[key]``, concurrent keys read together.

    An ask waits at most ``patience`` seconds for a read that someone else leads, then
    raises ``too_long()`` (the pool's own timeout error, as a connection it waited for
    would have). Counts what it did (``reads``, ``keys``) for /metrics."""

    def __init__(self, read_many: Callable[[Sequence[K]], dict[K, V]], missing: V,
                 patience: float, too_long: Callable[[], BaseException],
                 batch: int = 64, parallel: int = 4) -> None:
        self._read_many = read_many
        self._missing = missing  # the answer for a key that ``read_many`` left out
        self._patience = patience
        self._too_long = too_long
        self._batch = batch
        self._parallel = parallel
        self._waiting: deque[_Ask] = deque()
        self._leading = 0
        self.reads = 0  # queries sent
        self.keys = 0  # keys they answered

    def get(self, key: K) -> V:
        """The value of ``key``, read alone or with the keys asked while others read."""
        if self._leading < self._parallel:
            self._leading += 1
            return self._lead(key)
        ask = _Ask(key)
        self._waiting.append(ask)
        try:
            answer = ask.answer.get(timeout=self._patience)
        except Timeout:
            self._abandon(ask)
            raise self._too_long() from None
        except BaseException:  # killed, or a timeout of the caller's own
            self._abandon(ask)
            raise
        if answer is _LEAD:
            return self._lead(key)
        return answer

    def _abandon(self, ask: _Ask) -> None:
        """Its asker is gone: a read that takes it later drops it, and a turn to lead
        that came to it is passed on."""
        ask.abandoned = True
        if ask.answer.ready() and ask.answer.successful() and ask.answer.value is _LEAD:
            self._leading -= 1
            self._hand_off()

    def _take(self, most: int) -> list[_Ask]:
        """Up to ``most`` waiting asks whose askers still wait, oldest first."""
        taken: list[_Ask] = []
        while self._waiting and len(taken) < most:
            ask = self._waiting.popleft()
            if not ask.abandoned:
                taken.append(ask)
        return taken

    def _lead(self, key: K) -> V:
        """Read ``key`` with the waiting ones (the caller counts as leading)."""
        asks = self._take(self._batch - 1)
        try:
            keys = list(dict.fromkeys([key, *(ask.key for ask in asks)]))
            self.reads += 1
            self.keys += len(keys)
            found = self._read_many(keys)
        except Exception as exc:  # the read failed: for every key in it, as it would alone
            for ask in asks:
                ask.answer.set_exception(exc)
            raise
        except BaseException:  # this greenlet was stopped: the others still want an answer
            self._waiting.extendleft(reversed([a for a in asks if not a.abandoned]))
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
        while self._leading < self._parallel:
            ask = next(iter(self._take(1)), None)
            if ask is None:
                return
            self._leading += 1
            ask.answer.set(_LEAD)
