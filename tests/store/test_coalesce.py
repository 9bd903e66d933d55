"""``chat.store.coalesce``: concurrent asks read together, each caller its own answer,
and no ask left waiting when a read fails or a caller is stopped (greenlets, no database:
the read is a function that records what it was asked and yields like a query)."""
from __future__ import annotations

import gevent
import pytest

from chat.store.coalesce import Coalescer


class Late(Exception):
    """What an ask that waited past its patience raises (the pool's timeout in the app)."""


def coalescer(read, **kw) -> Coalescer:
    return Coalescer(read, missing=None, patience=kw.pop("patience", 10), too_long=Late, **kw)


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
    together = coalescer(reads)
    assert together.get("a") == "value of a"
    assert together.get("b") == "value of b"
    assert reads.calls == [["a"], ["b"]]
    assert (together.reads, together.keys) == (2, 2)


def test_a_burst_is_read_in_few_queries_and_each_asker_gets_its_own_answer():
    reads = Reads()
    together = coalescer(reads, batch=10, parallel=2)
    keys = [f"k{i}" for i in range(50)] + ["unknown-1", "k3"]  # a key twice, one unknown
    asks = [gevent.spawn(together.get, key) for key in keys]
    gevent.joinall(asks, timeout=10, raise_error=True)
    assert [g.value for g in asks] == [None if k.startswith("unknown") else f"value of {k}"
                                       for k in keys]
    assert {k for call in reads.calls for k in call} == set(keys)
    assert all(len(call) <= 10 and len(set(call)) == len(call) for call in reads.calls)
    assert len(reads.calls) <= 8  # 2 first reads of one key, then batches of up to 10
    assert (together.reads, together.keys) == (len(reads.calls), sum(map(len, reads.calls)))


def test_a_failed_read_fails_its_askers_only_and_the_next_reads_go_on():
    reads = Reads(fail_when=lambda keys: "bad" in keys)
    together = coalescer(reads, batch=4, parallel=1)
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
    together = coalescer(reads, batch=2, parallel=1)
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
    slow = coalescer(Reads(pause=0.2), batch=3, parallel=1)
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

    together = coalescer(read, batch=5, parallel=parallel)
    asks = [gevent.spawn(together.get, i) for i in range(40)]
    gevent.joinall(asks, timeout=10, raise_error=True)
    assert [g.value for g in asks] == list(range(40))
    assert peak == parallel


def _reading_a_and_b(together: Coalescer):
    """Asks "a" and "b" wait while "first" is read alone; then "a" leads a read of both
    (the coalescer's one lead turn) and is still in it. Returns their greenlets."""
    first = gevent.spawn(together.get, "first")
    gevent.sleep(0)
    a, b = gevent.spawn(together.get, "a"), gevent.spawn(together.get, "b")
    gevent.sleep(0)
    first.join()
    gevent.sleep(0.01)
    return a, b


def test_asks_abandoned_inside_a_read_that_is_then_stopped_hold_no_turn_for_ever():
    """The red team's case: a leader takes two asks, both askers go away, then the leader
    is stopped mid-read. Their asks must not come back to lead (nobody would), and a new
    ask is answered."""
    together = coalescer(Reads(pause=0.05), batch=3, parallel=1)
    a, b = _reading_a_and_b(together)
    b.kill(block=True)
    a.kill(block=True)
    late = gevent.spawn(together.get, "late")
    late.join(timeout=2)
    assert late.value == "value of late"


def test_a_stopped_leader_hands_its_taken_asks_back():
    together = coalescer(Reads(pause=0.2), batch=4, parallel=1)
    a, b = _reading_a_and_b(together)
    a.kill(block=True)  # stopped mid-read; b's ask goes back and b leads its own read
    b.join(timeout=2)
    assert b.value == "value of b"


def test_an_ask_told_to_lead_after_its_asker_left_passes_the_turn_on():
    waiting = {}

    def read(keys):
        gevent.sleep(0.05)
        if keys == ["first"]:  # "gone" is stopped as the read ends: it is told to lead
            waiting["gone"].kill(block=False)  # after this, before it runs again
        return {key: f"value of {key}" for key in keys}

    together = coalescer(read, batch=1, parallel=1)
    first = gevent.spawn(together.get, "first")
    gevent.sleep(0)
    waiting["gone"] = gevent.spawn(together.get, "gone")
    after = gevent.spawn(together.get, "after")
    gevent.sleep(0)
    first.join()
    after.join(timeout=2)
    assert after.value == "value of after"


def test_an_ask_waits_no_longer_than_its_patience():
    together = coalescer(Reads(pause=1.0), parallel=1, patience=0.1)
    first = gevent.spawn(together.get, "slow")
    gevent.sleep(0)
    with pytest.raises(Late):
        together.get("impatient")
    assert first.get(timeout=5) == "value of slow"
    assert together.get("next") == "value of next"
