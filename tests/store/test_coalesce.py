"""``chat.store.coalesce``: concurrent asks read together, each caller its own answer,
and no ask left waiting when a read fails or a caller is stopped (greenlets, no database:
the read is a function that records what it was asked and yields like a query)."""
from __future__ import annotations

import gevent
import pytest

from chat.store.coalesce import Coalescer


class Reads:
    """A read of many keys that takes a moment (a query in flight) and records each call."""

    def __init__(self, fail_when=None, pause: float = 0.01) -> None:
        self.calls: list[list[str]] = []
        self.fail_when = fail_when
        self.pause = pause

    def __call__(self, keys):
        self.calls.append(list(keys))
        gevent.sleep(self.pause)
        if self.fail_when and self.fail_when(keys):
            raise RuntimeError("database gone")
        return {key: f"value of {key}" for key in keys if not key.startswith("unknown")}


def test_a_lone_ask_reads_at_once_and_alone():
    reads = Reads()
    together = Coalescer(reads, missing=None)
    assert together.get("a") == "value of a"
    assert together.get("b") == "value of b"
    assert reads.calls == [["a"], ["b"]]


def test_a_burst_is_read_in_few_queries_and_each_asker_gets_its_own_answer():
    reads = Reads()
    together = Coalescer(reads, missing=None, batch=10, parallel=2)
    keys = [f"k{i}" for i in range(50)] + ["unknown-1", "k3"]  # a key twice, one unknown
    asks = [gevent.spawn(together.get, key) for key in keys]
    gevent.joinall(asks, timeout=10, raise_error=True)
    assert [g.value for g in asks] == [None if k.startswith("unknown") else f"value of {k}"
                                       for k in keys]
    assert {k for call in reads.calls for k in call} == set(keys)
    assert all(len(call) <= 10 and len(set(call)) == len(call) for call in reads.calls)
    assert len(reads.calls) <= 8  # 2 first reads of one key, then batches of up to 10


def test_a_failed_read_fails_its_askers_only_and_the_next_reads_go_on():
    reads = Reads(fail_when=lambda keys: "bad" in keys)
    together = Coalescer(reads, missing=None, batch=4, parallel=1)
    first = gevent.spawn(together.get, "first")  # leads; the next ones wait for it
    gevent.sleep(0)
    keys = ("x", "bad", "y", "z", "w")
    waiting = [gevent.spawn(together.get, key) for key in keys]
    gevent.joinall([first, *waiting], timeout=10)
    assert first.value == "value of first"
    # "x", "bad", "y" and "z" were read together and failed; "w" came in the next read
    assert reads.calls[1:] == [["x", "bad", "y", "z"], ["w"]]
    assert [type(g.exception) for g in waiting[:4]] == [RuntimeError] * 4
    assert waiting[-1].value == "value of w"
    assert together.get("after") == "value of after"


def test_a_waiter_stopped_while_waiting_or_leading_leaves_no_ask_stranded():
    reads = Reads(pause=0.05)
    together = Coalescer(reads, missing=None, batch=2, parallel=1)
    leader = gevent.spawn(together.get, "lead")
    gevent.sleep(0)
    doomed = gevent.spawn(together.get, "doomed")  # waits; will be told to lead next
    others = [gevent.spawn(together.get, f"o{i}") for i in range(5)]
    gevent.sleep(0)
    doomed.kill(block=True)  # stopped while waiting
    gevent.joinall([leader, *others], timeout=10)
    assert leader.value == "value of lead"
    assert [g.value for g in others] == [f"value of o{i}" for i in range(5)]
    # A leader stopped in the middle of its read hands its waiting asks back.
    slow = Coalescer(Reads(pause=0.2), missing=None, batch=3, parallel=1)
    stopped = gevent.spawn(slow.get, "stopped")
    gevent.sleep(0)
    after = [gevent.spawn(slow.get, f"a{i}") for i in range(4)]
    gevent.sleep(0.01)
    stopped.kill(block=True)
    gevent.joinall(after, timeout=10)
    assert [g.value for g in after] == [f"value of a{i}" for i in range(4)]


@pytest.mark.parametrize("parallel", [1, 3])
def test_never_more_reads_at_once_than_allowed(parallel):
    in_flight = peak = 0

    def read(keys):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        gevent.sleep(0.005)
        in_flight -= 1
        return {key: key for key in keys}

    together = Coalescer(read, missing=None, batch=5, parallel=parallel)
    asks = [gevent.spawn(together.get, i) for i in range(40)]
    gevent.joinall(asks, timeout=10, raise_error=True)
    assert [g.value for g in asks] == list(range(40))
    assert peak == parallel
