"""The flood limit (``chat.service.limits``): frames per user in the last minute.

The limiter reads ``monotonic()``; the tests move that clock instead of waiting.
"""
from __future__ import annotations

import pytest

from chat.service import limits
from chat.service.limits import FloodLimiter


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(limits, "monotonic", clock)
    return clock


def test_the_allowance_is_per_user(clock):
    flood = FloodLimiter(per_minute=3)
    assert [flood.hit(1) for _ in range(4)] == [True, True, True, False]
    assert flood.hit(2)  # another user has an allowance of their own


def test_every_frame_over_the_limit_is_refused_and_not_counted(clock):
    flood = FloodLimiter(per_minute=2)
    flood.hit(1), flood.hit(1)
    for _ in range(50):
        assert not flood.hit(1)
    clock.now += 60
    assert flood.hit(1) and flood.hit(1) and not flood.hit(1)


def test_the_window_slides_second_by_second(clock):
    flood = FloodLimiter(per_minute=3)
    flood.hit(1)          # t=0
    clock.now += 30
    flood.hit(1)          # t=30
    flood.hit(1)          # t=30
    assert not flood.hit(1)
    clock.now += 29.5     # t=59.5: everything is still within the minute
    assert not flood.hit(1)
    clock.now += 1        # t=60.5: the frame of t=0 left the window, those of t=30 did not
    assert flood.hit(1)
    assert not flood.hit(1)


def test_a_user_quiet_for_a_minute_has_the_whole_allowance_again(clock):
    flood = FloodLimiter(per_minute=5)
    for _ in range(5):
        flood.hit(1)
    clock.now += 3600
    assert [flood.hit(1) for _ in range(6)] == [True] * 5 + [False]


def test_zero_turns_the_limit_off(clock):
    flood = FloodLimiter(per_minute=0)
    assert all(flood.hit(1) for _ in range(10_000))


def test_users_gone_quiet_are_forgotten(clock):
    flood = FloodLimiter(per_minute=5)
    for uid in range(100):
        flood.hit(uid)
    clock.now += 200
    flood.hit(1000)  # a newcomer after a quiet spell sweeps the idle users out
    assert set(flood.windows) == {1000}
