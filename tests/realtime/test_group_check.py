"""The second look at a first connection's groups (``chat.realtime.group_check``).

A real registry with real connections over loopback pairs; the groups are read by a
function the test gives (the database's side is ``Reading.groups_of``, tested with
the services), so that a test decides what the read finds and when it returns.
"""
from __future__ import annotations

import gevent

from chat.bus import Event
from chat.realtime.group_check import GroupCheck


def test_users_queued_together_are_read_in_one_round_and_corrected(registry, open_conn):
    reads = []

    def read(users):
        reads.append(list(users))
        return {1: [5], 2: [6, 7]}
    check = GroupCheck(registry, read, delay=0.01)
    _, alice = open_conn(1, groups=[5, 9])
    _, bob = open_conn(2, groups=[6])
    check.queue(1)
    check.queue(2)
    gevent.sleep(0.1)
    assert reads == [[1, 2]]
    assert registry.user_groups == {1: {5}, 2: {6, 7}} and check.corrected == 2
    assert bob.json()["kind"] == "catch_up"  # added to 7: told to sync
    alice.nothing()  # only removed from 9: nothing was missed


def test_a_removal_published_while_the_read_runs_is_not_undone(registry, open_conn):
    def slow_read(users):
        registry.dispatch(Event("user:1", member=(5, False)))  # committed after the read began
        gevent.sleep(0.01)
        return {1: [5]}
    check = GroupCheck(registry, slow_read, delay=0.01)
    open_conn(1, groups=[5])
    check.queue(1)
    gevent.sleep(0.1)
    assert registry.user_groups[1] == set() and registry.groups == {}


def test_a_failed_read_is_tried_again_and_the_check_goes_on(registry, open_conn):
    answers = [RuntimeError("database down"), {1: []}, {2: [6]}]
    reads = []

    def read(users):
        reads.append(list(users))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    check = GroupCheck(registry, read, delay=0.01)
    open_conn(1, groups=[5])
    check.queue(1)
    gevent.sleep(0.01)
    registry.dispatch(Event("user:1", member=(7, True)))  # noted by the kept watch
    gevent.sleep(0.1)
    assert reads == [[1], [1]]  # the second read: 2 x delay after the first failed
    assert registry.user_groups[1] == {7} and registry._watched == {}
    open_conn(2)
    check.queue(2)
    gevent.sleep(0.1)
    assert registry.user_groups[2] == {6}


def test_reads_that_keep_failing_leave_the_hello_groups(registry, open_conn, monkeypatch):
    monkeypatch.setattr("chat.realtime.group_check.RETRIES", 2)
    reads = []

    def read(users):
        reads.append(list(users))
        raise RuntimeError("database down")
    check = GroupCheck(registry, read, delay=0.005)
    open_conn(1, groups=[5])
    check.queue(1)
    gevent.sleep(0.3)
    assert reads == [[1], [1], [1]]  # the first and two more
    assert registry.user_groups[1] == {5} and registry._watched == {}
    assert check._failures == {}


def test_many_users_are_read_in_bounded_rounds(registry, open_conn, monkeypatch):
    monkeypatch.setattr("chat.realtime.group_check.CHECK_BATCH", 3)
    reads = []
    check = GroupCheck(registry, lambda users: reads.append(list(users)) or {}, delay=0.001)
    for uid in range(1, 8):
        open_conn(uid)  # (opening a socket lets the hub run: queue them after)
    for uid in range(1, 8):
        check.queue(uid)
    gevent.sleep(0.1)
    assert [len(r) for r in reads] == [3, 3, 1] and sorted(sum(reads, [])) == list(range(1, 8))


def test_a_user_queued_again_during_a_read_is_left_to_its_own_later_check(registry,
                                                                          open_conn):
    """A new first socket's hello may be newer than a read already running: that read
    must not undo it, even for a moment; the user's next check decides."""
    answers = [{1: [5]}, {1: []}]  # 5: stale (the user left it before the new hello)
    first, _ = open_conn(1, groups=[5])

    def read(users):
        if len(answers) == 2:  # the first socket closes, a new one opens: not in 5
            registry.remove(first)
            open_conn(1, groups=[])
            check.queue(1)
        return answers.pop(0)
    check = GroupCheck(registry, read, delay=0.01)
    check.queue(1)
    gevent.sleep(0.1)
    assert answers == [] and registry.user_groups[1] == set()
    assert registry.added.count("group:5") == 1  # the first hello's, never joined again
    assert registry._watched == {}


def test_a_new_socket_starts_its_watch_afresh(registry, open_conn):
    """What the watch of a socket since closed noted (a group an event touched) is older
    than the new socket's read: a removal lost between the new hello and its subscription
    must still be applied (else a removed member keeps getting the group's messages)."""
    reads = []
    check = GroupCheck(registry, lambda users: reads.append(list(users)) or {1: []},
                       delay=0.05)
    first, _ = open_conn(1, groups=[5])
    check.queue(1)
    registry.dispatch(Event("user:1", member=(5, True)))  # touches 5 (already a member)
    registry.remove(first)
    open_conn(1, groups=[5])  # its hello still had 5; the removal after it reached no one
    check.queue(1)
    gevent.sleep(0.2)
    assert reads == [[1]] and registry.user_groups[1] == set() and registry.groups == {}


def test_everyone_told_to_catch_up_is_checked_again(registry, open_conn):
    """The bus lost events (Redis down, then back): membership events were among them, so
    every connected user's groups are read again along with the catch_up."""
    reads = []
    check = GroupCheck(registry, lambda users: reads.append(sorted(users)) or {1: [], 2: [6]},
                       delay=0.01)
    registry.on_everyone_catches_up = check.queue_everyone
    _, alice = open_conn(1, groups=[5])
    _, bob = open_conn(2, groups=[6, 7])
    registry.catch_up()
    gevent.sleep(0.1)
    assert reads == [[1, 2]]
    assert registry.user_groups == {1: set(), 2: {6}}
    assert alice.json()["kind"] == bob.json()["kind"] == "catch_up"


def test_a_round_killed_half_way_leaves_no_watch_behind(registry, open_conn):
    def stuck(users):
        gevent.sleep(10)
        return {}
    check = GroupCheck(registry, stuck, delay=0.01)
    open_conn(1, groups=[5])
    check.queue(1)
    gevent.sleep(0.05)
    assert registry._watched == {1: set()}
    check._runner.kill()
    assert registry._watched == {} and registry.user_groups[1] == {5}
