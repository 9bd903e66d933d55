"""One socket's outbound side (``chat.realtime.connection``): a bounded queue, one writer,
delivery batches, the process's queue budget, closing and pinging.

Each ``Connection`` is on our transport over a loopback TCP pair; the test reads
what the client would read. Small kernel buffers make the socket fill up for sure.
"""
from __future__ import annotations

import json

import gevent
import pytest

from chat.realtime.connection import DeliveryBatch, QueueBudget
from chat.realtime.frames import text_frame
from tests.wire import OP_PING, OP_TEXT, open_connection

SMALL = {"server_sndbuf": 4096, "client_rcvbuf": 4096}


def frame(n: int, padding: int = 0) -> bytes:
    return text_frame(json.dumps({"n": n}).encode() + b" " * padding)


@pytest.fixture
def open_conn():
    """Open connections; (Connection, Peer); all dropped after the test."""
    opened = []

    def _open(user_id: int = 1, **kw):
        opened.append(open_connection(user_id, **kw))
        return opened[-1]
    yield _open
    for conn, peer in opened:
        conn.discard()
        peer.close()


def test_a_slow_reader_gets_every_frame_whole_and_in_order(open_conn):
    conn, peer = open_conn(**SMALL)
    for n in range(300):  # about 1 MB
        conn.enqueue(frame(n, 3000))
    assert conn.writer is not None  # the kernel took part: the rest waits for the reader
    assert [peer.json()["n"] for _ in range(300)] == list(range(300))
    gevent.sleep(0.01)
    assert conn.queued_bytes == 0 and conn.writer is None


def test_one_frame_larger_than_the_bound_still_goes_through_an_empty_queue(open_conn):
    conn, peer = open_conn(max_bytes=1000)
    conn.send_payload(json.dumps({"big": "x" * 5000}).encode())
    assert peer.json() == {"big": "x" * 5000}
    assert not conn.closing


def test_a_backlog_over_the_bound_closes_with_1013_after_the_frames_in_flight(open_conn):
    conn, peer = open_conn(max_bytes=256 * 1024, **SMALL)
    for n in range(10):
        conn.enqueue(frame(n, 8000))
    gevent.sleep(0.01)  # the writer takes these ten and waits for the reader
    sent = 10
    while not conn.closing:
        conn.enqueue(frame(sent, 8000))
        sent += 1
    conn.enqueue(frame(999))  # a closing connection takes nothing more
    assert [peer.json()["n"] for _ in range(10)] == list(range(10))
    assert peer.close_code() == (1013, "too slow: reconnect and sync")


def test_a_burst_over_the_bound_closes_with_a_readable_1013(open_conn):
    # A frame the socket took in part must be finished before the close frame, or the
    # client reads the close frame as that frame's payload and never sees the 1013.
    conn, peer = open_conn(max_bytes=256 * 1024, **SMALL)
    sent = 0
    while not conn.closing:  # one burst, in one turn of the hub (e.g. a bus backlog)
        conn.enqueue(frame(sent, 30000))
        sent += 1
    received = []
    while True:
        opcode, body = peer.frame()
        if opcode != OP_TEXT:
            break
        received.append(json.loads(body)["n"])  # whole frames only
    assert received == list(range(len(received))) and received
    assert int.from_bytes(body[:2], "big") == 1013


def test_a_closed_connection_is_dropped_after_its_close_frame(open_conn):
    conn, peer = open_conn()
    conn.enqueue(frame(1))
    conn.close(1000, "bye")
    conn.close(1000, "twice")  # one close frame only
    assert peer.json() == {"n": 1}
    assert peer.close_code() == (1000, "bye")
    assert peer.at_eof(timeout=3)


def test_a_batch_holds_only_the_frames_given_to_it(open_conn):
    held, held_peer = open_conn()
    other, other_peer = open_conn(2)
    batch = DeliveryBatch()
    held.enqueue(frame(1), batch)
    held.enqueue(frame(2), batch)
    other.enqueue(other.transport.ping_frame())  # the pinger, mid-batch: out at once
    assert other_peer.frame() == (OP_PING, b"")
    held_peer.nothing(0.05)
    batch.flush()
    assert [held_peer.json()["n"] for _ in range(2)] == [1, 2]
    assert held.transport.writes == 1  # both in one write


def test_the_budget_counts_every_queued_byte_of_the_process(open_conn):
    shed = []
    budget = QueueBudget(200_000, lambda: shed.append(budget.total))
    one, one_peer = open_conn(budget=budget, **SMALL)
    two, two_peer = open_conn(2, budget=budget, **SMALL)
    for n in range(8):
        one.enqueue(frame(n, 8000))
        two.enqueue(frame(n, 8000))
    assert budget.total == one.queued_bytes + two.queued_bytes > 0
    assert shed == []  # under the limit
    for n in range(8, 30):
        one.enqueue(frame(n, 8000))
    assert shed and shed[0] > 200_000  # past it: the process sheds
    for _ in range(8):
        two_peer.json()
    for _ in range(30):
        one_peer.json()
    gevent.sleep(0.05)
    assert budget.total == 0


def test_wait_until_read_blocks_while_the_client_does_not_read(open_conn):
    conn, peer = open_conn(**SMALL)
    for n in range(40):
        conn.enqueue(frame(n, 8000))
    waiter = gevent.spawn(conn.wait_until_read, 50_000)
    gevent.sleep(0.1)
    assert not waiter.dead  # more than 50 kB still queued for a client that does not read
    for _ in range(40):
        peer.json()
    waiter.join(timeout=3)
    assert waiter.dead and conn.queued_bytes <= 50_000


def test_discard_drops_the_socket_and_the_queue(open_conn):
    budget = QueueBudget(0)
    conn, peer = open_conn(budget=budget, **SMALL)
    for n in range(20):
        conn.enqueue(frame(n, 8000))
    conn.discard()
    assert peer.at_eof()
    gevent.sleep(0.05)
    assert conn.queued_bytes == 0 and budget.total == 0
    conn.enqueue(frame(99))  # nothing more is taken


def test_an_idle_connection_is_pinged_and_dropped_when_the_ping_goes_unanswered(open_conn):
    conn, peer = open_conn()
    now = conn.transport.last_received
    conn.ping(now + 1, interval=25)  # not idle yet
    peer.nothing(0.05)
    conn.ping(now + 30, interval=25)
    assert peer.frame() == (OP_PING, b"")
    conn.ping(now + 60, interval=25)  # no pong came back
    assert peer.at_eof()


def test_an_answered_ping_keeps_the_connection(open_conn):
    conn, peer = open_conn()
    now = conn.transport.last_received
    conn.ping(now + 30, interval=25)
    assert peer.frame() == (OP_PING, b"")
    conn.transport.pong_received = True  # what the reader does when the pong arrives
    conn.ping(now + 60, interval=25)
    assert peer.frame() == (OP_PING, b"")
