"""The flood limit across processes (``chat.store.flood`` + ``SharedFloodLimiter``):
leases from real Redis, one round trip per batch, this process alone while Redis is down."""
from __future__ import annotations

import uuid

import gevent

from chat.service.limits import SharedFloodLimiter, make_flood, FloodLimiter
from chat.store.flood import FloodStoreDown, RedisFloodStore
from tests.support import REDIS_URL, free_port


def store(prefix: str) -> RedisFloodStore:
    return RedisFloodStore(REDIS_URL, prefix)


class Counting(RedisFloodStore):
    """The real store, counting its round trips (the point of batching)."""

    trips = 0

    def take(self, asks):
        self.trips += 1
        return super().take(asks)


def test_the_store_grants_up_to_the_limit_over_the_minute_and_takes_returns(redis_prefix):
    s = store(f"{redis_prefix}flood-{uuid.uuid4().hex[:6]}:")
    [(granted, second)] = s.take([(7, 4, 10, 0, 0)])
    assert granted == 4 and s.take([]) == []
    answers = s.take([(7, 10, 10, 0, 0), (8, 3, 10, 0, 0)])
    assert [granted for granted, _ in answers] == [6, 3]  # the rest of 7's; 8's own
    # Everything is spent: nothing more, until 5 unspent frames are given back.
    assert s.take([(7, 1, 10, 0, 0)])[0][0] == 0
    assert s.take([(7, 9, 10, second, 5)])[0][0] == 5


def test_two_processes_share_one_allowance(redis_prefix):
    prefix = f"{redis_prefix}flood-{uuid.uuid4().hex[:6]}:"
    one, two = (SharedFloodLimiter(store(prefix), per_minute=40) for _ in range(2))
    answers = [limiter.hit(5) for _ in range(30) for limiter in (one, two)]
    assert answers.count(True) == 40  # not 40 per process
    assert answers[-1] is False
    assert one.hit(6) and two.hit(6)  # another user has an allowance of their own


def test_many_frames_in_one_turn_cost_one_round_trip(redis_prefix):
    counting = Counting(REDIS_URL, f"{redis_prefix}flood-{uuid.uuid4().hex[:6]}:")
    flood = SharedFloodLimiter(counting, per_minute=1000)
    frames = [gevent.spawn(flood.hit, user) for user in range(50) for _ in range(3)]
    gevent.joinall(frames)
    assert all(f.value for f in frames)
    assert counting.trips == 1
    # The user's next frames are spent from the lease the batch brought back: no trip.
    assert flood.hit(0) and counting.trips == 1


def test_unspent_leases_go_back_so_another_process_can_use_them(redis_prefix):
    prefix = f"{redis_prefix}flood-{uuid.uuid4().hex[:6]}:"
    one, two = (SharedFloodLimiter(store(prefix), per_minute=100) for _ in range(2))
    for _ in range(3):  # one spends a few, and leases more than it spends
        gevent.joinall([gevent.spawn(one.hit, 9) for _ in range(5)])
    assert one.leases[9][0] > 0
    one.leases[9][1] = 0  # the lease's second is over
    assert one.hit(9)  # the next ask gives the rest back
    left = [two.hit(9) for _ in range(200)].count(True)
    assert left == 100 - 16 - one.leases[9][0]  # 16 spent by one, the rest of its new lease


def test_with_redis_down_each_process_counts_alone_and_comes_back(redis_prefix):
    dead = SharedFloodLimiter(RedisFloodStore(f"redis://127.0.0.1:{free_port()}/0", "dead:"),
                              per_minute=3)
    assert [dead.hit(1) for _ in range(4)] == [True, True, True, False]
    try:
        RedisFloodStore(f"redis://127.0.0.1:{free_port()}/0", "dead:").take([(1, 1, 3, 0, 0)])
    except FloodStoreDown:
        pass
    else:
        raise AssertionError("a dead Redis must say so")


def test_the_local_count_knows_the_recent_past_when_redis_goes(redis_prefix):
    """Frames granted by Redis count locally too: an outage does not reset the minute."""
    flood = SharedFloodLimiter(store(f"{redis_prefix}flood-{uuid.uuid4().hex[:6]}:"),
                               per_minute=5)
    assert all(flood.hit(3) for _ in range(5))
    flood.down_until = float("inf")  # as if the last ask had failed
    assert not flood.hit(3)


def test_without_redis_or_without_a_limit_the_process_counts_alone():
    assert isinstance(make_flood(None, "x:", 10), FloodLimiter)
    assert isinstance(make_flood(REDIS_URL, "x:", 0), FloodLimiter)
    assert isinstance(make_flood(REDIS_URL, "x:", 10), SharedFloodLimiter)


def test_a_steady_sender_spends_growing_leases_not_a_trip_per_frame(redis_prefix):
    counting = Counting(REDIS_URL, f"{redis_prefix}flood-{uuid.uuid4().hex[:6]}:")
    flood = SharedFloodLimiter(counting, per_minute=600)  # leases of up to 30
    assert all(flood.hit(4) for _ in range(100))
    assert counting.trips <= 8  # leases of 1, 2, 6, 14, 30, 30, 30: not 100 trips
