"""The sequencer (``chat.bus.sequencer``): committed batches reach this process's
connections in id order whoever committed them, a gap is read back from the committed
ids, and what is read back never goes out twice.

The committed ids here are a list the test writes (what the database would hold): the
algorithm is under test; ``tests/bus/test_dead_publisher.py`` runs it on MariaDB and
Redis, and ``tests/test_balancer.py`` through nginx with processes killed.
"""
from __future__ import annotations

import gevent

from chat.bus import Event
from chat.bus.sequencer import Sequencer


class Committed:
    """The ids the 'database' holds: id -> the event its read-back gives."""

    def __init__(self, last: int = 10) -> None:
        self.rows: dict[int, Event] = {}
        self.last = last
        self.reads: list[tuple[int, int]] = []
        self.down = False

    def commit(self, first: int, last: int) -> list[Event]:
        for n in range(first, last + 1):
            self.rows[n] = Event("user:1", b"db%d" % n)
        self.last = max(self.last, last)
        return [Event("user:1", b"%d" % n) for n in range(first, last + 1)]

    def last_id(self) -> int:
        if self.down:
            raise ConnectionError("the database is down")
        return self.last

    def events_between(self, low: int, high: int) -> list[Event]:
        if self.down:
            raise ConnectionError("the database is down")
        self.reads.append((low, high))
        return [self.rows[n] for n in range(low, high + 1) if n in self.rows]


class Here:
    """This process's connections and its own batches' acks, in the order they went out."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.catch_ups = 0

    def dispatch(self, events) -> None:
        self.out.extend(e.frame for e in events)

    def catch_up(self) -> None:
        self.catch_ups += 1

    def own(self, events: list[Event], name: str):
        def deliver(events_too: bool) -> None:
            self.out.append(b"ack " + name.encode())
            if events_too:
                self.dispatch(events)
        return deliver


def make(last: int = 10) -> tuple[Sequencer, Committed, Here]:
    db, here = Committed(last), Here()
    sequencer = Sequencer(here.dispatch, here.catch_up)
    sequencer.backfill = db
    sequencer.begin()
    sequencer.came_up()
    sequencer.stop()  # the tests call tick() themselves
    return sequencer, db, here


def remote(sequencer: Sequencer, events: list[Event], first: int, last: int,
           shards: int = 1) -> None:
    for event in events:
        sequencer.event(first, event)
    sequencer.notice(first, last, shards)


def test_our_batch_waits_for_the_earlier_batch_of_another_process():
    sequencer, db, here = make()
    theirs = db.commit(11, 12)
    ours = db.commit(13, 13)
    sequencer.own(13, 13, here.own(ours, "13"))
    assert here.out == []  # 11-12 are committed and not here yet
    remote(sequencer, theirs, 11, 12)
    assert here.out == [b"11", b"12", b"ack 13", b"13"]
    assert sequencer.position == 13 and db.reads == []


def test_batches_published_out_of_order_go_out_in_id_order():
    sequencer, db, here = make()
    first, second, third = db.commit(11, 11), db.commit(12, 14), db.commit(15, 15)
    remote(sequencer, third, 15, 15)
    remote(sequencer, second, 12, 14)
    assert here.out == []
    remote(sequencer, first, 11, 11)
    assert here.out == [b"11", b"12", b"13", b"14", b"15"]


def test_a_batch_whose_events_are_on_two_shards_waits_for_both_notices():
    sequencer, db, here = make()
    on_one, on_other = Event("user:1", b"11 user"), Event("group:2", b"11 group")
    sequencer.event(11, on_other)
    sequencer.notice(11, 11, shards=2)
    assert here.out == []  # the other shard's event may still be on its way
    sequencer.event(11, on_one)
    sequencer.notice(11, 11, shards=2)
    assert here.out == [b"11 group", b"11 user"]


def test_a_gap_that_stays_open_is_read_back_and_what_waited_goes_after_it():
    sequencer, db, here = make()
    sequencer.GAP_WAIT = 0.05
    db.commit(11, 12)  # its process died before its PUBLISH
    later = db.commit(13, 13)
    remote(sequencer, later, 13, 13)
    sequencer.tick()
    assert here.out == []  # not yet: it may only be late
    gevent.sleep(0.1)
    sequencer.tick()
    assert here.out == [b"db11", b"db12", b"13"] and db.reads == [(11, 12)]
    # The dead process's PUBLISH, had it come late after all, is not delivered again.
    remote(sequencer, [Event("user:1", b"11 late")], 11, 12)
    assert here.out == [b"db11", b"db12", b"13"]


def test_our_batch_inside_a_read_back_range_gets_its_acks_and_no_second_copy():
    sequencer, db, here = make()
    db.commit(11, 11)
    ours = db.commit(12, 12)
    # 12 is not known as ours (not expected, or expected longer ago than OWN_WAIT: its
    # publisher failed) and an idle check saw it committed twice: read back.
    sequencer.IDLE_CHECK = 0
    sequencer.tick()
    sequencer.tick()
    assert here.out == [b"db11", b"db12"]
    sequencer.own(12, 12, here.own(ours, "12"))
    assert here.out == [b"db11", b"db12", b"ack 12"]


def test_a_read_back_stops_before_our_batch_being_written_which_goes_with_its_own_frames():
    # The sending connection must get its ack, not its message: only our own frames know
    # which connection that was (the read-back's go to every connection).
    sequencer, db, here = make()
    sequencer.GAP_WAIT = 0
    db.commit(11, 11)  # another process's, its PUBLISH lost
    sequencer.expect(12, 12)
    ours = db.commit(12, 12)  # committed; our publisher has not handed it over yet
    remote(sequencer, db.commit(13, 13), 13, 13)
    sequencer.tick()
    assert here.out == [b"db11"] and db.reads == [(11, 11)] and sequencer.position == 11
    sequencer.own(12, 12, here.own(ours, "12"))
    assert here.out == [b"db11", b"ack 12", b"12", b"13"] and db.reads == [(11, 11)]


def test_a_read_back_that_ends_during_our_write_waits_for_its_ids_and_leaves_them_out():
    # On MySQL one query allocates, writes and commits our batch: its ids are known (and
    # expected) only after its COMMIT, which a read-back running meanwhile may already see.
    sequencer, db, here = make()
    sequencer.GAP_WAIT = 0
    db.commit(11, 11)  # another process's, its PUBLISH lost
    remote(sequencer, db.commit(13, 13), 13, 13)  # after ours: 11-12 look like a gap
    with sequencer.writing():
        ours = db.commit(12, 12)  # our query has committed; its answer is not read yet
        reader = gevent.spawn(sequencer.tick)
        gevent.sleep(0.01)
        assert db.reads == [(11, 12)]  # it read our 12 too: it must wait for our ids
        assert here.out == []
        sequencer.expect(12, 12)
    reader.join(timeout=5)
    assert here.out == [] and sequencer.position == 10  # nothing of 11-12 went out yet
    sequencer.own(12, 12, here.own(ours, "12"))
    sequencer.tick()
    assert here.out == [b"db11", b"ack 12", b"12", b"13"]
    assert db.reads == [(11, 12), (11, 11)]


def test_a_reconnect_during_our_write_leaves_its_ids_to_it_and_clients_need_no_sync():
    sequencer, db, here = make()
    sequencer.GAP_WAIT = 0
    db.commit(11, 11)  # another process's, its PUBLISH lost
    remote(sequencer, db.commit(14, 14), 14, 14)
    with sequencer.writing():
        ours = db.commit(12, 13)  # committed by our query; its answer is not read yet
        db.commit(15, 15)  # another process's
        ticker = gevent.spawn(sequencer.tick)  # reads 11-13 back, then waits for our ids
        gevent.sleep(0.01)
        sequencer.went_down()
        sequencer.begin()  # Redis is back meanwhile: its own read-back finds one running
        assert here.catch_ups == 0 and sequencer.position == 10  # no jump past our ids
        sequencer.expect(12, 13)
    ticker.join(timeout=5)
    sequencer.came_up()
    sequencer.own(12, 13, here.own(ours, "12"))
    sequencer.IDLE_CHECK = 0
    for _ in range(3):
        sequencer.tick()
    assert here.out == [b"db11", b"ack 12", b"12", b"13", b"14", b"db15"]
    assert here.catch_ups == 0


def test_with_redis_down_our_acks_do_not_wait_for_the_next_write():
    # The writer is serial: a write in flight began after the batch being handed over,
    # so its ids are past the read-back in front of that batch.
    sequencer, db, here = make()
    sequencer.went_down()
    db.commit(11, 11)  # another process's, its PUBLISH lost
    ours = db.commit(12, 12)
    sequencer.expect(12, 12)
    next_write = sequencer.writing()
    next_write.__enter__()  # the writer is on its next batch, slowly
    try:
        publisher = gevent.spawn(sequencer.own, 12, 12, here.own(ours, "12"))
        publisher.join(timeout=1)
        assert publisher.dead
        assert here.out == [b"db11", b"ack 12", b"12"]
    finally:
        next_write.__exit__(None, None, None)


def test_a_reconnect_reads_back_around_our_batch_being_written():
    sequencer, db, here = make()
    sequencer.went_down()
    db.commit(11, 11)  # another process's, while Redis was away
    sequencer.expect(12, 12)
    ours = db.commit(12, 12)
    db.commit(13, 13)  # another process's
    sequencer.begin()  # the listener is back
    assert here.out == [b"db11"] and here.catch_ups == 0 and sequencer.position == 11
    sequencer.own(12, 12, here.own(ours, "12"))
    sequencer.IDLE_CHECK = 0
    sequencer.tick()
    sequencer.tick()
    assert here.out == [b"db11", b"ack 12", b"12", b"db13"]


def test_a_read_back_goes_on_after_our_batch_once_it_is_handed_over():
    sequencer, db, here = make()
    sequencer.went_down()
    db.commit(11, 11)
    ours = db.commit(12, 12)
    db.commit(13, 14)
    sequencer.expect(12, 12)
    sequencer.own(12, 12, here.own(ours, "12"))  # Redis down: read back at once, around it
    assert here.out == [b"db11", b"ack 12", b"12"]
    sequencer.begin()
    assert here.out == [b"db11", b"ack 12", b"12", b"db13", b"db14"]
    assert db.reads == [(11, 11), (13, 14)] and here.catch_ups == 0


def test_our_batch_never_handed_over_is_read_back_after_a_while_or_at_once_if_forgotten():
    sequencer, db, here = make()
    sequencer.GAP_WAIT, sequencer.OWN_WAIT = 0, 0.05
    sequencer.expect(11, 11)
    db.commit(11, 11)  # ours, committed; its publisher failed without saying so
    remote(sequencer, db.commit(12, 12), 12, 12)
    sequencer.tick()
    assert here.out == []
    gevent.sleep(0.1)
    sequencer.tick()
    assert here.out == [b"db11", b"12"]
    sequencer.expect(13, 13)
    db.commit(13, 13)  # ours again; its publisher failed and said so
    sequencer.forget(13)
    remote(sequencer, db.commit(14, 14), 14, 14)
    sequencer.tick()
    assert here.out == [b"db11", b"12", b"db13", b"14"]


def test_while_redis_is_down_a_gap_before_our_batch_is_read_back_at_once():
    sequencer, db, here = make()
    sequencer.went_down()
    db.commit(11, 11)
    ours = db.commit(12, 12)
    sequencer.own(12, 12, here.own(ours, "12"))
    assert here.out == [b"db11", b"ack 12", b"12"]


def test_an_idle_process_reads_back_what_nobody_published_once_seen_twice():
    sequencer, db, here = make()
    sequencer.IDLE_CHECK = 0
    db.commit(11, 11)
    sequencer.tick()
    assert here.out == []  # seen once: its PUBLISH may be on its way
    sequencer.tick()
    assert here.out == [b"db11"]
    sequencer.tick()
    assert here.out == [b"db11"]  # and only once


def test_a_gap_the_database_cannot_fill_waits_and_is_filled_when_it_can():
    sequencer, db, here = make()
    sequencer.GAP_WAIT = 0
    db.commit(11, 11)
    remote(sequencer, db.commit(12, 12), 12, 12)
    db.down = True
    sequencer.tick()
    assert here.out == [] and sequencer.position == 10
    db.down = False
    sequencer.tick()
    assert here.out == [b"db11", b"12"]


def test_after_a_long_loss_of_redis_clients_sync_instead_of_a_huge_read_back():
    sequencer, db, here = make()
    db.last = 10 + sequencer.MAX_FILL + 1
    sequencer.begin()  # the listener is back
    assert here.catch_ups == 1 and db.reads == [] and sequencer.position == db.last
    ours = db.commit(db.last + 1, db.last + 1)
    sequencer.own(db.last, db.last, here.own(ours, "next"))
    assert here.out[-2:] == [b"ack next", ours[0].frame]


def test_before_the_first_connect_nothing_is_held_back():
    db, here = Committed(), Here()
    sequencer = Sequencer(here.dispatch, here.catch_up)
    sequencer.backfill = db
    ours = db.commit(11, 11)
    sequencer.own(11, 11, here.own(ours, "11"))
    sequencer.event(5, Event("user:1", b"old"))
    assert here.out == [b"ack 11", b"11", b"old"]


def test_a_resends_ack_waits_until_the_ids_before_it_are_here():
    sequencer, db, here = make()
    theirs = db.commit(11, 12)  # another process's batch, on its way
    sequencer.after(12, lambda: here.out.append(b"ack of a resend of 12"))
    sequencer.after(9, lambda: here.out.append(b"ack of a resend of 9"))
    assert here.out == [b"ack of a resend of 9"]
    remote(sequencer, theirs, 11, 12)
    assert here.out == [b"ack of a resend of 9", b"11", b"12", b"ack of a resend of 12"]
    assert sequencer.own_waiting() == 0


def test_a_reconnect_reads_back_what_was_missed_and_sends_nothing_twice():
    sequencer, db, here = make()
    sequencer.went_down()
    db.commit(11, 11)  # another process's, while Redis was away
    ours = db.commit(12, 12)  # ours: committed, its publisher not there yet
    sequencer.begin()  # the listener is back
    assert here.out == [b"db11", b"db12"] and sequencer.position == 12
    sequencer.own(12, 12, here.own(ours, "12"))
    assert here.out == [b"db11", b"db12", b"ack 12"]  # no second copy of 12, late


def test_with_the_database_down_at_connect_the_ticker_begins_once_it_is_back():
    db, here = Committed(), Here()
    sequencer = Sequencer(here.dispatch, here.catch_up)
    sequencer.backfill = db
    db.down = True
    sequencer.begin()
    sequencer.came_up()
    sequencer.stop()
    assert sequencer.position is None
    db.down = False
    sequencer.tick()
    # Ordered from here on; what went out unordered meanwhile is caught up by a sync.
    assert sequencer.position == 10 and here.catch_ups == 1
    sequencer.stop()


def test_too_many_batches_held_behind_a_hole_make_clients_sync():
    sequencer, db, here = make()
    sequencer.MAX_WAITING = 3
    for first in range(12, 17):  # batches with no event for us, behind a hole at 11
        sequencer.notice(first, first)
    assert here.catch_ups == 1 and sequencer.waiting == {} and sequencer.position >= 15
