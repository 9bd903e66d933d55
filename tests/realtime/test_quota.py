"""Sockets per user (``chat.realtime.quota``): the cap across processes, and in this
process alone while Redis is down. The newest socket is the one refused."""
from __future__ import annotations

import uuid

import gevent
import pytest

from chat.realtime.quota import SocketQuota
from chat.store.slots import LocalSlots, RedisSlots
from tests.support import REDIS_URL, free_port


def test_one_process_caps_a_user_and_a_closed_socket_frees_its_slot():
    quota = SocketQuota(LocalSlots(), cap=2)
    assert [quota.claim(1, f"c{n}") for n in range(3)] == [True, True, False]
    assert quota.claim(2, "someone-else")
    quota.release(1, "c0")
    assert quota.claim(1, "c3")


def test_a_cap_of_zero_is_no_cap():
    quota = SocketQuota(LocalSlots(), cap=0)
    assert all(quota.claim(1, f"c{n}") for n in range(100))


def test_the_cap_holds_across_processes(redis_prefix):
    prefix = f"{redis_prefix}quota-{uuid.uuid4().hex[:6]}:"
    one, two = (SocketQuota(RedisSlots(REDIS_URL, prefix, stale_after=60), cap=3)
                for _ in range(2))
    assert one.claim(7, "a") and one.claim(7, "b") and two.claim(7, "c")
    assert not two.claim(7, "d") and not one.claim(7, "e")
    one.release(7, "a")
    gevent.sleep(0.05)  # the release goes to Redis in the background
    assert two.claim(7, "d")


def test_with_redis_down_each_process_still_caps_its_own_sockets():
    quota = SocketQuota(RedisSlots(f"redis://127.0.0.1:{free_port()}/0", "dead:", 60), cap=2)
    assert quota.claim(1, "a") and quota.claim(1, "b")
    assert not quota.claim(1, "c")
    quota.release(1, "a")
    assert quota.claim(1, "c")


@pytest.mark.parametrize("cap", [0, 2])
def test_refresh_is_harmless(cap):
    quota = SocketQuota(LocalSlots(), cap=cap)
    quota.claim(1, "a")
    quota.refresh([(1, "a")])
    assert quota.claim(1, "b")
