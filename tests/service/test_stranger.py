"""The seed's stranger rule (``chat.service.stranger``), as the committer applies it: three
private messages to someone who has not written back, then 429.

Counted in the in-process counters and in Redis alike; rebuilt from the stored
messages when Redis lost a counter; answered from them while Redis is down.
"""
from __future__ import annotations

import uuid

import pytest

from chat.store.counters import MemoryCounters, RedisCounters, stranger_key
from tests.inprocess import add_group, add_user, follow, follow_each_other, unfollow
from tests.service.harness import stored
from tests.support import REDIS_URL, free_port


@pytest.fixture(params=["memory", "redis"])
def counters(request):
    """The counters the rule counts in: this process's, then the shared Redis (own prefix)."""
    if request.param == "memory":
        return MemoryCounters()
    prefix = request.getfixturevalue("redis_prefix")
    return RedisCounters(REDIS_URL, f"{prefix}stranger-{uuid.uuid4().hex[:6]}:")


def forget(counters, key: str) -> None:
    """Lose a counter, as a Redis restarted without persistence does."""
    if isinstance(counters, MemoryCounters):
        counters.values.pop(key, None)
    else:
        counters.client.delete(counters.prefix + key)


def test_three_messages_to_a_stranger_then_429_until_they_reply(harness, counters):
    h = harness(counters=counters)
    alice, bob = add_user(), add_user()
    for n in range(3):
        assert h.submit(alice, to=bob, content=f"{n}").ack
    fourth = h.submit(alice, to=bob, content="3")
    assert (fourth.error.status, fourth.error.code) == (429, "stranger_limit")
    assert h.counters.get(stranger_key(alice, bob)) == 3  # the refused one is not counted
    assert h.submit(bob, to=alice, content="hi back").ack
    assert h.submit(alice, to=bob, content="at last").ack


def test_the_limit_holds_inside_one_batch(harness, counters):
    h = harness(counters=counters)
    alice, bob = add_user(), add_user()
    outcomes = [h.submit(alice, to=bob, content=f"{n}") for n in range(5)]
    assert [o.get()[1] is None for o in outcomes] == [True, True, True, False, False]
    assert len(stored(sender_id=alice)) == 3


def test_mutual_followers_notes_to_self_and_groups_are_never_counted(harness):
    h = harness()
    alice, bob, carol = add_user(), add_user(), add_user()
    follow_each_other(alice, bob)
    group = add_group(alice, carol)
    for n in range(5):
        assert h.submit(alice, to=bob, content=f"{n}").ack
        assert h.submit(alice, to=alice, content=f"{n}").ack
        assert h.submit(alice, group=group, content=f"{n}").ack
    assert h.counters.get(stranger_key(alice, bob)) == 0
    assert h.counters.get(stranger_key(alice, alice)) == 0


def test_following_one_way_is_still_a_stranger(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow(alice, bob)
    for n in range(3):
        assert h.submit(alice, to=bob, content=f"{n}").ack
    assert h.submit(alice, to=bob, content="3").error.code == "stranger_limit"


def test_a_reply_written_while_they_followed_each_other_still_counts(harness, counters):
    h = harness(counters=counters)
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    assert h.submit(bob, to=alice, content="written while mutual").ack  # not counted
    unfollow(bob, alice)
    for n in range(5):  # over the counter's limit, but the stored reply has the last word
        assert h.submit(alice, to=bob, content=f"{n}").ack
    assert h.counters.get(stranger_key(alice, bob)) == 5


def test_with_the_counters_down_the_stored_messages_answer_the_rule(harness):
    dead = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", "chat-test-dead:")
    h = harness(counters=dead)
    alice, bob = add_user(), add_user()
    outcomes = [h.submit(alice, to=bob, content=f"{n}") for n in range(4)]
    assert [o.get()[1] is None for o in outcomes] == [True, True, True, False]
    assert outcomes[3].error.code == "stranger_limit"
    assert h.submit(alice, to=bob, content="later").error.code == "stranger_limit"
    assert h.submit(bob, to=alice, content="reply").ack
    assert h.submit(alice, to=bob, content="now").ack


def test_a_counter_redis_lost_is_rebuilt_from_the_stored_messages(harness, counters):
    h = harness(counters=counters)
    alice, bob = add_user(), add_user()
    for n in range(3):
        assert h.submit(alice, to=bob, content=f"{n}").ack
    forget(counters, stranger_key(alice, bob))
    assert h.submit(alice, to=bob, content="after the restart").error.code == "stranger_limit"
    assert counters.get(stranger_key(alice, bob)) == 3
    assert len(stored(sender_id=alice)) == 3


def test_a_new_pair_starts_from_what_is_stored(harness, counters):
    h = harness(counters=counters)
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    for n in range(2):  # written while they followed each other: not counted
        assert h.submit(alice, to=bob, content=f"{n}").ack
    unfollow(bob, alice)
    assert counters.get(stranger_key(alice, bob)) == 0
    outcomes = [h.submit(alice, to=bob, content=f"more {n}") for n in range(2)]
    assert [o.get()[1] is None for o in outcomes] == [True, False]  # 2 stored + 1 = 3
    assert counters.get(stranger_key(alice, bob)) == 3
