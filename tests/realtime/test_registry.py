"""The registry (``chat.realtime.registry``): who gets which frame, and upkeep of them all.

Every connection here is a real ``Connection`` on our transport over a loopback
TCP pair; the test reads what each client would read.
"""
from __future__ import annotations

import json

from chat.bus import Event
from chat.realtime.frames import text_frame
from chat.realtime.registry import Registry
from tests.wire import OP_PING, open_connection


def payload(n: int) -> bytes:
    return json.dumps({"kind": "message", "n": n}).encode()


# -- fan-out ------------------------------------------------------------------------


def test_a_user_event_reaches_every_connection_of_that_user_only(registry, open_conn):
    _, tab1 = open_conn(1)
    _, tab2 = open_conn(1)
    _, other = open_conn(2)
    registry.dispatch(Event("user:1", payload(1)))
    assert tab1.json() == {"kind": "message", "n": 1}
    assert tab2.json() == {"kind": "message", "n": 1}
    other.nothing()
    assert registry.frames_out == 2


def test_exclude_conn_skips_the_sending_connection_only(registry, open_conn):
    sending, sender_peer = open_conn(1)
    _, other_tab = open_conn(1)
    registry.dispatch(Event("user:1", payload(1), exclude_conn=sending.id))
    assert other_tab.json()["n"] == 1
    sender_peer.nothing()


def test_an_event_for_a_user_with_no_connection_here_is_dropped(registry, open_conn):
    _, peer = open_conn(1)
    registry.dispatch(Event("user:99", payload(1)))
    registry.dispatch(Event("group:99", payload(2)))
    peer.nothing()
    assert registry.frames_out == 0


def test_group_events_reach_the_members_here_and_exclude_user_skips_one(registry, open_conn):
    _, alice = open_conn(1, groups=[5])
    _, alice_tab = open_conn(1)  # her second tab: routed by user, not by the groups it named
    _, bob = open_conn(2, groups=[5, 6])
    registry.dispatch(Event("group:5", payload(1)))
    assert alice.json()["n"] == 1 and alice_tab.json()["n"] == 1 and bob.json()["n"] == 1
    registry.dispatch(Event("group:6", payload(2)))
    assert bob.json()["n"] == 2
    alice.nothing()
    registry.dispatch(Event("group:5", payload(3), exclude_user=1))  # typing: not to oneself
    assert bob.json()["n"] == 3
    alice.nothing()
    alice_tab.nothing()


def test_set_membership_routes_a_group_from_then_on(registry, open_conn):
    _, alice = open_conn(1, groups=[5])
    _, bob = open_conn(2, groups=[5])
    registry.set_membership(1, 6, True)
    registry.dispatch(Event("group:6", payload(1)))
    assert alice.json()["n"] == 1
    registry.set_membership(1, 5, False)
    registry.dispatch(Event("group:5", payload(2)))
    assert bob.json()["n"] == 2
    alice.nothing()
    assert registry.added[-1] == "group:6" and registry.removed == []  # bob still needs 5


def test_a_membership_event_on_the_user_channel_changes_routing(registry, open_conn):
    _, alice = open_conn(1)
    registry.dispatch(Event("user:1", member=(7, True)))
    registry.dispatch(Event("group:7", payload(1)))
    assert alice.json()["n"] == 1
    registry.dispatch(Event("user:1", payload(2), member=(7, False)))
    assert alice.json()["n"] == 2  # the event's own frame still arrives
    registry.dispatch(Event("group:7", payload(3)))
    alice.nothing()


def test_membership_of_a_user_not_connected_here_changes_nothing(registry, open_conn):
    registry.set_membership(42, 7, True)
    assert registry.channels() == [] and registry.added == []


# -- the channels the bus must listen to ----------------------------------------------


def test_channels_come_with_the_first_connection_and_go_with_the_last(registry, open_conn):
    first, _ = open_conn(1, groups=[5, 6])
    assert registry.added == ["user:1", "group:5", "group:6"]
    second, _ = open_conn(1, groups=[5, 6])
    _, _ = open_conn(2, groups=[6])
    assert registry.added == ["user:1", "group:5", "group:6", "user:2"]
    assert sorted(registry.channels()) == ["group:5", "group:6", "user:1", "user:2"]
    registry.remove(first)
    assert registry.removed == []
    registry.remove(second)
    assert registry.removed == ["user:1", "group:5"]  # group 6 still has user 2
    registry.remove(second)  # twice is harmless
    assert registry.removed == ["user:1", "group:5"]
    assert sorted(registry.channels()) == ["group:6", "user:2"]


def test_count_and_len(registry, open_conn):
    first, _ = open_conn(1)
    open_conn(1)
    open_conn(2)
    assert len(registry) == 3 and len(registry.connections()) == 3
    assert registry.count(1) == 2
    assert registry.count(1, exclude_conn=first.id) == 1
    assert registry.count(3) == 0


# -- delivery batches ------------------------------------------------------------------


def test_a_batch_holds_its_frames_and_writes_each_connection_once(registry, open_conn):
    alice, alice_peer = open_conn(1)
    bob, bob_peer = open_conn(2)
    with registry.batch() as batch:
        for n in range(5):
            registry.dispatch(Event("user:1", payload(n)), batch)
            registry.dispatch(Event("user:2", payload(n)), batch)
        alice_peer.nothing(0.05)
        bob_peer.nothing(0.05)
    assert [alice_peer.json()["n"] for _ in range(5)] == list(range(5))
    assert [bob_peer.json()["n"] for _ in range(5)] == list(range(5))
    assert alice.transport.writes == 1 and bob.transport.writes == 1


def test_while_a_batch_is_open_other_traffic_goes_out_at_once(registry, open_conn):
    alice, alice_peer = open_conn(1)
    bob, bob_peer = open_conn(2)
    with registry.batch() as batch:
        registry.dispatch(Event("user:1", payload(1)), batch)
        bob.enqueue(bob.transport.ping_frame())  # the pinger, mid-batch
        assert bob_peer.frame() == (OP_PING, b"")
        registry.dispatch(Event("user:2", payload(2)))  # no batch: not held
        assert bob_peer.json()["n"] == 2
        alice_peer.nothing(0.05)
    assert alice_peer.json()["n"] == 1


# -- closing ---------------------------------------------------------------------------


def test_close_auth_closes_only_the_sockets_of_those_credentials(registry, open_conn):
    _, revoked = open_conn(1, auth_id=10)
    _, other_token = open_conn(1, auth_id=11)
    _, no_token = open_conn(2)
    registry.close_auth({10})
    assert revoked.close_code() == (1008, "logged out")
    other_token.nothing()
    no_token.nothing()


def test_a_close_auth_event_closes_that_credentials_sockets(registry, open_conn):
    _, revoked = open_conn(1, auth_id=10)
    _, kept = open_conn(1, auth_id=11)
    registry.dispatch(Event("user:1", close_auth=10))
    assert revoked.close_code() == (1008, "logged out")
    kept.nothing()


def test_close_all_sends_going_away_to_everyone(registry, open_conn):
    peers = [open_conn(uid)[1] for uid in (1, 1, 2)]
    registry.close_all()
    assert [p.close_code() for p in peers] == [(1001, "server restarting")] * 3


def test_past_the_process_budget_the_biggest_queues_are_closed_first():
    registry = Registry(queue_budget_bytes=200_000)
    opened = [open_connection(uid, budget=registry.budget, server_sndbuf=4096,
                              client_rcvbuf=4096) for uid in (1, 2, 3)]
    try:
        for conn, _ in opened:
            registry.add(conn, [])
        (big, big_peer), (mid, mid_peer), (small, small_peer) = opened
        pad = b" " * 8000
        for n in range(30):
            if n < 4:
                small.enqueue(text_frame(b'{"n":%d}' % n + pad))
            if n < 8:
                mid.enqueue(text_frame(b'{"n":%d}' % n + pad))
            big.enqueue(text_frame(b'{"n":%d}' % n + pad))
        assert big.closing and not mid.closing and not small.closing  # furthest behind first
        assert registry.budget.total <= 200_000
        assert big_peer.close_code() == (1013, "server busy: reconnect and sync")
        assert [small_peer.json()["n"] for _ in range(4)] == [0, 1, 2, 3]
    finally:
        for conn, peer in opened:
            conn.discard()
            peer.close()


def test_catch_up_tells_every_connection_to_sync(registry, open_conn):
    peers = [open_conn(uid)[1] for uid in (1, 1, 2)]
    registry.catch_up()
    for peer in peers:
        frame = peer.json()
        assert (frame["kind"], frame["code"]) == ("catch_up", 200) and "sync" in frame["content"]


def test_catch_up_of_one_user_reaches_only_that_users_connections(registry, open_conn):
    _, tab1 = open_conn(1)
    _, tab2 = open_conn(1)
    _, other = open_conn(2)
    registry.catch_up(1)
    assert tab1.json()["kind"] == tab2.json()["kind"] == "catch_up"
    other.nothing()


# -- correcting the groups a first connection brought (``GroupCheck``) -----------------


def test_correct_groups_routes_by_the_groups_read_later(registry, open_conn):
    _, alice = open_conn(1, groups=[5, 6])  # read before: removed from 6, added to 7 since
    registry.watch(1)
    assert registry.correct_groups(1, [5, 7]) == ({7}, {6})
    assert registry.added[-1] == "group:7" and registry.removed == ["group:6"]
    registry.dispatch(Event("group:6", payload(1)))
    registry.dispatch(Event("group:7", payload(2)))
    assert alice.json()["n"] == 2
    alice.nothing()


def test_an_event_seen_during_the_check_wins_over_the_read(registry, open_conn):
    """The read may have begun before a change its event announces: the event is newer."""
    _, alice = open_conn(1, groups=[5])
    registry.watch(1)
    registry.dispatch(Event("user:1", member=(5, False)))  # while the read was running
    registry.dispatch(Event("user:1", member=(8, True)))
    assert registry.correct_groups(1, [5]) == (set(), set())
    assert registry.user_groups[1] == {8}
    registry.correct_groups(1, [5])  # no longer watched: the read is all there is
    assert registry.user_groups[1] == {5}


def test_correcting_a_user_who_left_changes_nothing(registry, open_conn):
    conn, _ = open_conn(1, groups=[5])
    registry.watch(1)
    registry.remove(conn)
    assert registry.correct_groups(1, [5, 6]) == (set(), set())
    assert registry.channels() == [] and "group:6" not in registry.added
