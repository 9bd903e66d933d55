"""CPU-heavy work (password hashes, pictures) in threads that give way to the event loop.

The work itself is C code that releases the GIL, so a thread takes it off the loop;
but on a worker that shares one core with its threads, the kernel would still split
that core evenly between the loop and a busy thread, and every socket of the process
would wait its turn (measured: pairs traffic p99 went from 80 ms to 1.8 s with 20
clients uploading photos). A thread of this pool lowers its own scheduling priority
(nice 19, per thread on Linux) the first time it runs, so the loop gets the core when
it needs it and the background work takes what is left.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable, TypeVar

from gevent.threadpool import ThreadPool

T = TypeVar("T")
NICENESS = 19
_local = threading.local()


def _give_way() -> None:
    """Lower the calling thread's priority, once per thread (best effort)."""
    if getattr(_local, "lowered", False):
        return
    _local.lowered = True
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


def _run(fn: Callable[..., T], args: tuple) -> T:
    _give_way()
    return fn(*args)


class BackgroundPool:
    """A bounded pool of low-priority threads; ``apply`` waits cooperatively (gevent)."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPool(max(1, threads))

    def apply(self, fn: Callable[..., T], args: tuple[Any, ...] = ()) -> T:
        """Run ``fn(*args)`` in a pool thread; the calling greenlet waits for the result."""
        return self.pool.apply(_run, (fn, args))

    def kill(self) -> None:
        """Stop the threads (tests that make a pool per case)."""
        self.pool.kill()
