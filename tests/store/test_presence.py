"""Who is online across processes (``chat.store.presence``): this process alone, or Redis
sorted sets with expiry, behind one interface."""
from __future__ import annotations

import time
import uuid

import gevent
import pytest

from chat.store.presence import LocalPresence, RedisPresence, make_presence
from tests.support import REDIS_URL, free_port


@pytest.fixture(params=["local", "redis"])
def presence(request):
    if request.param == "local":
        return LocalPresence()
    prefix = request.getfixturevalue("redis_prefix")
    return RedisPresence(REDIS_URL, f"{prefix}presence-{uuid.uuid4().hex[:6]}:", stale_after=60)


def test_first_socket_announces_and_the_last_one_gone_announces_once(presence):
    assert presence.opened(1, "a") is True
    assert presence.opened(1, "b") is False  # already online
    assert presence.online([1, 2]) == {1}
    presence.closed(1, "a")
    gevent.sleep(0.05)  # Redis's closes go out in the background
    assert presence.gone([1]) == set()  # "b" still open
    presence.closed(1, "b")
    gevent.sleep(0.05)
    assert presence.online([1]) == set()
    assert presence.gone([1, 2]) == {1} and presence.gone([1]) == set()  # once
    assert presence.opened(1, "c") is True  # online again


def test_a_reload_within_the_grace_is_not_a_departure(presence):
    presence.opened(3, "old")
    presence.closed(3, "old")
    gevent.sleep(0.05)
    presence.opened(3, "new")  # before the grace check runs
    assert presence.gone([3]) == set()
    assert presence.online([3]) == {3}


def test_the_sockets_of_a_process_that_died_go_stale(redis_prefix):
    prefix = f"{redis_prefix}presence-{uuid.uuid4().hex[:6]}:"
    alive, dead = (RedisPresence(REDIS_URL, prefix, stale_after=1) for _ in range(2))
    assert dead.opened(7, "lost")
    alive.opened(8, "kept")
    time.sleep(0.6)
    alive.refresh([(8, "kept")])
    time.sleep(0.6)
    assert alive.online([7, 8]) == {8}
    assert alive.gone([7, 8]) == {7}  # the dead process's user can be announced offline


def test_with_redis_down_presence_is_quiet():
    dead = RedisPresence(f"redis://127.0.0.1:{free_port()}/0", "dead:", stale_after=60)
    assert dead.opened(1, "c") is False and dead.online([1]) == set() and dead.gone([1]) == set()
    dead.closed(1, "c")
    gevent.sleep(0.05)
    dead.refresh([(1, "c")])


def test_many_users_gone_at_once_are_checked_together(presence):
    for uid in range(100, 400):
        presence.opened(uid, f"s{uid}")
    presence.opened(400, "kept")
    for uid in range(100, 400):
        presence.closed(uid, f"s{uid}")
    gevent.sleep(0.1)
    assert presence.gone(list(range(100, 401))) == set(range(100, 400))


def test_make_presence_picks_redis_only_when_configured():
    assert isinstance(make_presence(None, "p:", 60), LocalPresence)
    assert isinstance(make_presence(REDIS_URL, "p:", 60), RedisPresence)
