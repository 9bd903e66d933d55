"""chat/background.py: CPU work runs in pool threads that give way to the event loop."""
from __future__ import annotations

import os
import threading

from chat.background import NICENESS, BackgroundPool


def where_and_how_nice() -> tuple[int, int]:
    """The running thread's kernel id and its niceness."""
    tid = threading.get_native_id()
    return tid, os.getpriority(os.PRIO_PROCESS, tid)


def test_work_runs_in_another_thread_at_the_lowest_priority_and_answers():
    pool = BackgroundPool(2)
    here_tid, here_nice = where_and_how_nice()
    tid, nice = pool.apply(where_and_how_nice)
    assert tid != here_tid
    assert nice == NICENESS
    # The caller's own thread (the event loop's) keeps its priority.
    assert where_and_how_nice() == (here_tid, here_nice)
    assert pool.apply(sum, ([1, 2, 3],)) == 6


def test_an_error_in_the_work_reaches_the_caller():
    pool = BackgroundPool(1)
    try:
        pool.apply(int, ("not a number",))
    except ValueError as exc:
        assert "not a number" in str(exc)
    else:
        raise AssertionError("the error was lost")
