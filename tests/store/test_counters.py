"""Counters with expiry (``chat.store.counters``): the in-process twin and Redis behind one
interface, one test body for both."""
from __future__ import annotations

import time
import uuid

import pytest

from chat.store.counters import (CountersDown, MemoryCounters, RedisCounters, make_counters,
                                 stranger_key)
from tests.support import REDIS_URL, free_port


@pytest.fixture(params=["memory", "redis"])
def counters(request):
    """Each test runs on MemoryCounters and on RedisCounters (the shared Redis, own prefix)."""
    if request.param == "memory":
        return MemoryCounters()
    prefix = request.getfixturevalue("redis_prefix")
    return RedisCounters(REDIS_URL, f"{prefix}counters-{uuid.uuid4().hex[:6]}:")


def test_a_counter_starts_at_zero_and_counts_up(counters):
    assert counters.get("a") == 0
    assert [counters.incr("a", 60) for _ in range(3)] == [1, 2, 3]
    assert counters.get("a") == 3 and counters.get("b") == 0


def test_many_at_once_in_order(counters):
    assert counters.incr_many(["x", "y", "x", "z", "x"], 60) == [1, 1, 2, 1, 3]
    assert counters.get_many(["z", "nothing", "x"]) == [1, 0, 3]
    assert counters.get_many([]) == [] and counters.incr_many([], 60) == []


def test_undo_takes_back_increments(counters):
    counters.incr_many(["a", "a", "b"], 60)
    counters.decr_many(["a", "b"])
    assert counters.get_many(["a", "b"]) == [1, 0]
    counters.decr_many([])
    assert counters.get("a") == 1


def test_a_counter_expires_ttl_seconds_after_its_last_increment(counters):
    counters.incr("short", 1)
    counters.incr("pushed", 1)
    counters.incr("long", 60)
    time.sleep(0.6)
    counters.incr("pushed", 1)  # now lives until 1.6 s
    time.sleep(0.65)
    assert counters.get_many(["short", "pushed", "long"]) == [0, 2, 1]
    assert counters.incr("short", 60) == 1  # it starts again from nothing


def test_incr_existing_leaves_missing_counters_to_the_caller(counters):
    counters.incr("known", 60)
    assert counters.incr_existing_many(["known", "missing", "known"], 60) == [2, None, 3]
    assert counters.get("missing") == 0  # not created
    assert counters.incr_existing_many([], 60) == []


def test_seed_sets_a_missing_counter_or_adds_to_one_that_appeared(counters):
    counters.incr("raced", 60)  # another process created it since we found it missing
    counters.seed_many({"fresh": (4, 1), "raced": (9, 2)}, 60)
    assert counters.get_many(["fresh", "raced"]) == [4, 3]
    counters.seed_many({}, 60)
    counters.seed_many({"short": (5, 1)}, 1)
    time.sleep(1.2)
    assert counters.get("short") == 0  # seeded counters expire like the others


def test_status_says_what_backs_them(counters):
    assert counters.status() == ("off" if isinstance(counters, MemoryCounters) else "ok")


def test_redis_counters_share_their_prefix_and_only_it(redis_prefix):
    prefix = f"{redis_prefix}shared-{uuid.uuid4().hex[:6]}:"
    one, two = RedisCounters(REDIS_URL, prefix), RedisCounters(REDIS_URL, prefix)
    other = RedisCounters(REDIS_URL, prefix + "other:")
    one.incr("k", 60)
    assert two.incr("k", 60) == 2  # two processes, one count
    assert other.get("k") == 0


def test_redis_down_raises_counters_down_except_for_undo():
    dead = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", "dead:")
    for call in (lambda: dead.get("k"), lambda: dead.incr("k", 1),
                 lambda: dead.get_many(["k"]), lambda: dead.incr_many(["k"], 1),
                 lambda: dead.incr_existing_many(["k"], 1),
                 lambda: dead.seed_many({"k": (1, 1)}, 1)):
        with pytest.raises(CountersDown):
            call()
    dead.decr_many(["k"])  # best effort: a failed undo must not fail the send it undoes
    assert dead.status() == "down"


def test_stranger_key_is_directional():
    assert stranger_key(7, 9) == "stranger:7:9" != stranger_key(9, 7)


def test_make_counters_picks_redis_only_when_configured():
    assert isinstance(make_counters(None, "p:"), MemoryCounters)
    assert isinstance(make_counters("", "p:"), MemoryCounters)
    assert isinstance(make_counters(REDIS_URL, "p:"), RedisCounters)
