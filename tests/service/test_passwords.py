"""Password hashing off the event loop (``chat.service.passwords``)."""
from __future__ import annotations

import gevent
import pytest

from chat.service.passwords import PasswordHasher


@pytest.fixture(scope="module")
def hasher():
    h = PasswordHasher(1)
    yield h
    h.pool.kill()


def test_a_hash_checks_against_its_password_only(hasher):
    stored = hasher.hash("correct-horse-battery")
    assert "correct-horse-battery" not in stored
    assert hasher.check(stored, "correct-horse-battery")
    assert not hasher.check(stored, "correct-horse-batterY")
    assert hasher.hash("correct-horse-battery") != stored  # salted


def test_no_such_user_still_costs_a_check_and_fails(hasher):
    assert not hasher.check(None, "not-a-real-password-0x")


def test_hashing_leaves_the_event_loop_free(hasher):
    ticks = []

    def tick():
        while True:
            ticks.append(1)
            gevent.sleep(0.005)
    ticker = gevent.spawn(tick)
    try:
        gevent.sleep(0)
        before = len(ticks)
        hasher.hash("correct-horse-battery")  # about 0.1 s of scrypt, in a thread
        assert len(ticks) - before >= 5  # other greenlets ran all the while
    finally:
        ticker.kill()
