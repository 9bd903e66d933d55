"""The transport under pressure: slow readers, big frames, back-pressure, pings.

simple-websocket 1.1.0 writes with ``socket.send`` and ignores partial writes
(miguelgrinberg/simple-websocket#45); under gevent that corrupts the stream as
soon as a reader falls behind. These tests make the kernel buffers small and the
reader slow, so partial writes happen for sure, and check every byte arrives.
"""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import websocket

from tests.conftest import mysql_env
from tests.support import Api, ServerProcess


@pytest.fixture(scope="module")
def fast_server(mysql_url, redis_prefix):
    """A server without the flood limit, for floods that are the point of the test."""
    # A queue bound above the test's 24 MB, so that the kernel buffers (a few MB) fill
    # up and the server's writes go out in pieces, while nothing is cut off.
    proc = ServerProcess(mysql_env(mysql_url, redis_prefix, CHAT_RATE_PER_MINUTE=0,
                                   CHAT_MAX_INFLIGHT=512,
                                   CHAT_SEND_QUEUE_BYTES=64 * 1024 * 1024)).start()
    yield proc
    proc.stop()


def slow_socket(server, user: Api) -> websocket.WebSocket:
    """A client whose receive buffer is tiny, so the server's writes go out in pieces."""
    return websocket.create_connection(
        server.ws_url, header=[f"Authorization: Bearer {user.token}"], timeout=60,
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))


def test_20000_messages_of_1kb_reach_a_slow_reader_whole(fast_server):
    alice, bob = Api.new_user(fast_server.base, "a"), Api.new_user(fast_server.base, "b")
    alice.follow_each_other(bob)
    total = 20000
    reader = slow_socket(fast_server, bob)
    assert json.loads(reader.recv())["kind"] == "hello"
    received: list[dict] = []
    failure: list[BaseException] = []

    def read_slowly():
        try:
            while len(received) < total:
                frame = json.loads(reader.recv())
                if frame["kind"] == "message":
                    received.append(frame)
                if len(received) % 50 == 0:
                    time.sleep(0.002)  # fall behind now and then
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)

    thread = threading.Thread(target=read_slowly)
    thread.start()
    sender = websocket.create_connection(fast_server.ws_url, timeout=60,
                                         header=[f"Authorization: Bearer {alice.token}"])
    sender.recv()
    # The sender runs up to 12 MB ahead of the reader: far more than the kernel buffers
    # hold, so the server's writes are partial all the time.
    window, sent, acked = 10000, 0, 0
    deadline = time.time() + 300
    while acked < total:
        assert not failure, f"the stream broke after {len(received)} messages: {failure}"
        assert time.time() < deadline, f"stuck after {len(received)} messages"
        while sent < total and sent - acked < 300 and sent - len(received) < window:
            body = f"{sent:06d}:" + "x" * 1017  # 1,024 characters
            sender.send(json.dumps({"type": 1, "recipient_id": bob.user_id, "content": body,
                                    "client_id": f"s{sent}"}))
            sent += 1
        if sent == acked:  # nothing in flight: wait for the reader to catch up
            time.sleep(0.01)
            continue
        frame = json.loads(sender.recv())
        if frame["kind"] == "presence":  # the reader is a friend who came online
            continue
        assert frame["kind"] == "ack", frame
        acked += 1
    thread.join(120)
    sender.close()
    assert not failure, failure
    assert len(received) == total
    assert [int(m["content"][:6]) for m in received] == list(range(total))
    assert all(len(m["content"]) == 1024 and m["content"].endswith("x" * 1017)
               for m in received)
    assert [m["id"] for m in received] == sorted(m["id"] for m in received)

    # A sync answer of more than a megabyte, read slowly, arrives whole.
    since = received[0]["id"] - 1
    reader.send(json.dumps({"type": 7, "since_id": since, "limit": 1000}))
    raw = reader.recv()
    assert len(raw.encode()) > 1_000_000
    sync = json.loads(raw)
    assert sync["kind"] == "sync" and len(sync["messages"]) == 1000 and sync["has_more"]
    assert [m["id"] for m in sync["messages"]] == [m["id"] for m in received[:1000]]
    reader.close()


@pytest.fixture(scope="module")
def small_queue_server(mysql_url, redis_prefix):
    """A server whose per-connection queue is 1 MiB, so that a stuck reader overflows it."""
    proc = ServerProcess(mysql_env(mysql_url, redis_prefix, CHAT_RATE_PER_MINUTE=0,
                                   CHAT_SEND_QUEUE_BYTES=1024 * 1024)).start()
    yield proc
    proc.stop()


def test_a_reader_that_never_reads_is_cut_off_without_slowing_others(small_queue_server):
    fast_server = small_queue_server
    alice, bob, carol = (Api.new_user(fast_server.base, s) for s in ("a", "b", "c"))
    alice.follow_each_other(bob)
    alice.follow_each_other(carol)
    stuck = slow_socket(fast_server, bob)  # bob never reads again
    stuck.recv()
    healthy = websocket.create_connection(fast_server.ws_url, timeout=30,
                                          header=[f"Authorization: Bearer {carol.token}"])
    healthy.recv()
    sender = websocket.create_connection(fast_server.ws_url, timeout=30,
                                         header=[f"Authorization: Bearer {alice.token}"])
    sender.recv()
    big = "y" * 4000
    for i in range(3000):  # ~12 MB for bob: more than his queue may hold
        sender.send(json.dumps({"type": 1, "recipient_id": bob.user_id, "content": big}))
        if i % 100 == 0:
            sender.send(json.dumps({"type": 1, "recipient_id": carol.user_id,
                                    "content": f"still here {i}"}))
    got = []
    while len(got) < 30:
        frame = json.loads(healthy.recv())
        if frame["kind"] == "message":
            got.append(frame["content"])
    assert got == [f"still here {i}" for i in range(0, 3000, 100)]
    # bob's connection was closed with 1013: drain what the kernel still holds.
    stuck.settimeout(30)
    close_code, drained, ended = None, 0, False
    try:
        while True:
            opcode, data = stuck.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                close_code = int.from_bytes(data[:2], "big") if data else None
                ended = True
                break
            drained += 1
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        ended = True  # the server dropped TCP after the close frame could not be written
    except websocket.WebSocketTimeoutException:
        pass
    assert ended, "the stuck reader was never cut off"
    assert drained < 3000 and close_code in (1013, None)
    for s in (stuck, healthy, sender):
        s.close()
    # bob recovers everything with sync after reconnecting.
    again = websocket.create_connection(fast_server.ws_url, timeout=30,
                                        header=[f"Authorization: Bearer {bob.token}"])
    again.recv()
    synced, since = [], 0
    while True:
        again.send(json.dumps({"type": 7, "since_id": since, "limit": 1000}))
        page = json.loads(again.recv())
        synced += [m["id"] for m in page["messages"] if m["recipient_id"] == bob.user_id]
        if not page["has_more"]:
            break
        since = page["messages"][-1]["id"]
    assert len(synced) == len(set(synced)) == 3000
    again.close()


def test_server_answers_pings_and_idle_connections_are_pinged(mysql_url, redis_prefix):
    proc = ServerProcess(mysql_env(mysql_url, redis_prefix, CHAT_PING_INTERVAL=1)).start()
    try:
        user = Api.new_user(proc.base)
        ws = websocket.create_connection(proc.ws_url, timeout=10,
                                         header=[f"Authorization: Bearer {user.token}"])
        ws.recv()
        ws.ping(b"abc")
        opcode, data = ws.recv_data(control_frame=True)
        assert (opcode, data) == (websocket.ABNF.OPCODE_PONG, b"abc")
        # Stay idle: the server pings us (websocket-client answers automatically).
        opcode, _ = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PING
        ws.close()
        # A peer that never answers pings is dropped.
        dead = socket.create_connection(("127.0.0.1", proc.port))
        dead.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {user.token}\r\n\r\n")
                     .encode())
        dead.settimeout(15)
        data = b""
        deadline = time.time() + 15
        while time.time() < deadline:
            chunk = dead.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 101")
        assert time.time() < deadline, "the silent peer was never dropped"
        dead.close()
    finally:
        proc.stop()
