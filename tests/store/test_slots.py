"""Live sockets per user across processes (``chat.store.slots``): this process alone, or
Redis sorted sets shared by every process, behind one interface."""
from __future__ import annotations

import time
import uuid

import gevent
import pytest

from chat.store.slots import LocalSlots, RedisSlots, SlotsDown, make_slots
from tests.support import REDIS_URL, free_port


@pytest.fixture(params=["local", "redis"])
def slots(request):
    if request.param == "local":
        return LocalSlots()
    prefix = request.getfixturevalue("redis_prefix")
    return RedisSlots(REDIS_URL, f"{prefix}slots-{uuid.uuid4().hex[:6]}:", stale_after=60)


def test_claims_stop_at_the_cap_and_releases_free_a_slot(slots):
    assert [slots.claim(1, f"c{n}", 2) for n in range(3)] == [True, True, False]
    assert slots.claim(2, "other-user", 2)  # the cap is per user
    slots.release(1, "c0")
    slots.release(1, "never-claimed")  # harmless
    gevent.sleep(0.05)  # Redis's release goes out in the background
    assert slots.claim(1, "c3", 2) and not slots.claim(1, "c4", 2)


def test_a_slot_released_just_before_a_claim_is_free_for_it(redis_prefix):
    slots = RedisSlots(REDIS_URL, f"{redis_prefix}slots-{uuid.uuid4().hex[:6]}:", stale_after=60)
    assert slots.claim(1, "old-tab", 1)
    slots.release(1, "old-tab")
    assert slots.claim(1, "reloaded-tab", 1)


def test_every_process_counts_against_the_same_cap(redis_prefix):
    prefix = f"{redis_prefix}slots-{uuid.uuid4().hex[:6]}:"
    one, two = (RedisSlots(REDIS_URL, prefix, stale_after=60) for _ in range(2))
    assert one.claim(7, "a", 2) and two.claim(7, "b", 2)
    assert not one.claim(7, "c", 2) and not two.claim(7, "d", 2)
    two.release(7, "b")
    assert one.claim(7, "c", 2)


def test_the_slots_of_a_process_that_died_fall_out_unless_refreshed(redis_prefix):
    prefix = f"{redis_prefix}slots-{uuid.uuid4().hex[:6]}:"
    alive, dead = (RedisSlots(REDIS_URL, prefix, stale_after=1) for _ in range(2))
    assert alive.claim(7, "kept", 2) and dead.claim(7, "lost", 2)
    time.sleep(0.6)
    alive.refresh([(7, "kept")])  # the living process vouches for its socket
    time.sleep(0.6)
    assert alive.claim(7, "new", 2)  # "lost" went stale, "kept" did not
    assert not alive.claim(7, "one-too-many", 2)


def test_with_redis_down_a_claim_says_so():
    dead = RedisSlots(f"redis://127.0.0.1:{free_port()}/0", "dead:", stale_after=60)
    with pytest.raises(SlotsDown):
        dead.claim(1, "c", 2)
    dead.release(1, "c")  # best effort: no error
    dead.refresh([(1, "c")])


def test_make_slots_picks_redis_only_when_configured():
    assert isinstance(make_slots(None, "p:", 60), LocalSlots)
    assert isinstance(make_slots(REDIS_URL, "p:", 60), RedisSlots)
