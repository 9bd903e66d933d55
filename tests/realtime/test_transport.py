"""The server side of one WebSocket (``chat.realtime.transport``) on a real TCP pair.

No server process: the test holds the client's end of a loopback connection and
speaks RFC 6455 to ``WebSocket`` byte for byte.
"""
from __future__ import annotations

import socket
import struct
import time

import gevent
import pytest

from chat.realtime.frames import ProtocolError
from chat.realtime.transport import WebSocket, upgrade_socket, valid_upgrade
from tests.wire import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RFC_ACCEPT, RFC_KEY,
                        Peer, tcp_pair)


@pytest.fixture
def pair():
    """(server WebSocket, client Peer) on a fresh loopback connection."""
    server, client = tcp_pair()
    ws, peer = WebSocket(server, max_message_size=1000), Peer(client)
    yield ws, peer
    ws.abort()
    peer.close()


def test_accept_answers_101_with_the_rfc_token_and_no_extension(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    head = peer.http_head()
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    assert b"Sec-WebSocket-Accept: " + RFC_ACCEPT in lines
    assert b"Upgrade: websocket" in lines and b"Connection: Upgrade" in lines
    # No permessage-deflate: 290 KiB of zlib state per connection otherwise.
    assert not any(line.lower().startswith(b"sec-websocket-extensions") for line in lines)
    assert ws.connected
    # Small frames written at once, not held by Nagle's algorithm.
    assert ws.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_messages_yields_text_as_str_and_binary_as_bytes_in_order(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    peer.send(OP_TEXT, "héllo 你好".encode())
    peer.send(OP_BINARY, b"\x00\xff")
    peer.send(0x1, b"frag", fin=False)
    peer.send(0x0, b"mented")
    peer.close()
    assert list(ws.messages()) == ["héllo 你好", b"\x00\xff", "fragmented"]
    assert not ws.connected  # the peer's EOF ended the loop


def test_a_ping_is_answered_with_a_pong_carrying_its_payload(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    peer.http_head()
    messages = ws.messages()
    peer.send(OP_PING, b"are you there")
    peer.send(OP_TEXT, b"after the ping")
    assert next(messages) == "after the ping"
    assert peer.frame() == (OP_PONG, b"are you there")


def test_a_pong_marks_the_connection_alive(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    ws.pong_received = False
    before = ws.last_received
    messages = ws.messages()
    peer.send(OP_PONG, b"")
    peer.send(OP_TEXT, b"x")
    assert next(messages) == "x"
    assert ws.pong_received
    assert ws.last_received >= before


def test_a_close_frame_is_answered_with_the_same_code_and_ends_the_loop(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    peer.http_head()
    peer.send(OP_TEXT, b"last words")
    peer.send(OP_CLOSE, struct.pack("!H", 4001) + b"bye")
    peer.send(OP_TEXT, b"never read")
    assert list(ws.messages()) == ["last words"]
    assert ws.close_code == 4001 and not ws.connected
    assert peer.frame() == (OP_CLOSE, struct.pack("!H", 4001))


def test_a_close_after_ours_gets_no_second_close_frame(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    peer.http_head()
    ws.send_all(ws.close_frame(1001, "going away"))
    assert ws.close_frame(1000) == b"" and ws.ping_frame() == b""
    assert peer.close_code() == (1001, "going away")
    peer.send(OP_CLOSE, struct.pack("!H", 1001))
    assert list(ws.messages()) == []
    peer.nothing()


def test_a_message_over_the_limit_raises_1009_from_its_header_alone(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    # Only the header of a 1 MB frame: the payload must not be waited for.
    peer.sock.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, 1_000_000) + b"mask")
    with gevent.Timeout(2), pytest.raises(ProtocolError) as err:
        list(ws.messages())
    assert err.value.code == 1009


def test_try_send_returns_a_partial_count_on_a_full_buffer_and_send_all_finishes():
    server, client = tcp_pair(server_sndbuf=4096, client_rcvbuf=4096)
    ws, peer = WebSocket(server, 1000), Peer(client)
    data = bytes(range(256)) * 4096  # 1 MiB, far more than both kernel buffers
    sent = ws.try_send(data)
    assert 0 < sent < len(data)
    for _ in range(100):  # the kernel may still move a little to the reader's side
        more = ws.try_send(data[sent:])
        if more == 0:
            break  # full: answered at once instead of waiting
        sent += more
    assert more == 0 and sent < len(data)
    reader = gevent.spawn(lambda: peer._take(len(data)))
    ws.send_all(data[sent:])
    assert reader.get(timeout=10) == data  # every byte, in order, exactly once
    ws.abort()
    peer.close()


def test_abort_drops_the_connection_for_both_sides(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    peer.http_head()
    ws.abort()
    assert not ws.connected
    assert peer.at_eof()
    with pytest.raises(OSError):
        ws.try_send(b"too late")
    assert list(ws.messages()) == []
    ws.abort()  # twice is harmless


def upgrade_environ(**overrides) -> dict:
    environ = {"REQUEST_METHOD": "GET", "HTTP_UPGRADE": "websocket",
               "HTTP_CONNECTION": "keep-alive, Upgrade", "HTTP_SEC_WEBSOCKET_VERSION": "13",
               "HTTP_SEC_WEBSOCKET_KEY": RFC_KEY}
    environ.update(overrides)
    return {k: v for k, v in environ.items() if v is not None}


@pytest.mark.parametrize("overrides, ok", [
    ({}, True),
    ({"HTTP_UPGRADE": "WebSocket", "HTTP_CONNECTION": "upgrade"}, True),
    ({"REQUEST_METHOD": "POST"}, False),
    ({"HTTP_UPGRADE": None}, False),
    ({"HTTP_UPGRADE": "h2c"}, False),
    ({"HTTP_CONNECTION": "keep-alive"}, False),
    ({"HTTP_SEC_WEBSOCKET_VERSION": "8"}, False),
    ({"HTTP_SEC_WEBSOCKET_VERSION": None}, False),
    ({"HTTP_SEC_WEBSOCKET_KEY": None}, False),
    ({"HTTP_SEC_WEBSOCKET_KEY": "not base64!"}, False),
    ({"HTTP_SEC_WEBSOCKET_KEY": "c2hvcnQ="}, False),  # decodes to 5 bytes, not 16
], ids=["valid", "case-insensitive", "post", "no-upgrade", "other-upgrade", "no-connection",
        "version-8", "no-version", "no-key", "key-not-base64", "key-too-short"])
def test_valid_upgrade(overrides, ok):
    assert valid_upgrade(upgrade_environ(**overrides)) is ok


def test_upgrade_socket_finds_the_socket_gunicorn_or_the_dev_server_left():
    marker = object()
    assert upgrade_socket({"gunicorn.socket": marker}) is marker
    assert upgrade_socket({"chat.socket": marker}) is marker
    assert upgrade_socket({}) is None


def test_accept_can_cap_the_kernels_send_buffer(pair):
    ws, peer = pair
    ws.accept(RFC_KEY, send_buffer=65536)
    size = ws.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    assert 65536 <= size <= 4 * 65536  # Linux reports twice what was asked


def test_after_our_close_linger_waits_for_the_peers_close_frame(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    peer.http_head()
    ws.send_all(ws.close_frame(1000, "bye"))
    peer.send(OP_TEXT, b"still talking")
    peer.send(OP_CLOSE, struct.pack("!H", 1000))
    started = time.monotonic()
    ws.linger(5)
    assert time.monotonic() - started < 1  # it ended with the peer's close frame
    assert peer.close_code() == (1000, "bye")


def test_linger_gives_a_silent_peer_only_its_timeout(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    ws.send_all(ws.close_frame(1000))
    started = time.monotonic()
    ws.linger(0.3)
    assert 0.25 < time.monotonic() - started < 2


def test_linger_is_nothing_before_our_close_or_after_the_peers(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    started = time.monotonic()
    ws.linger(5)  # we sent no close frame: nothing to wait for
    peer.send(OP_CLOSE, struct.pack("!H", 1000))
    assert list(ws.messages()) == []
    ws.linger(5)  # the peer closed first and was answered
    assert time.monotonic() - started < 1


def test_linger_drains_a_peer_that_broke_the_protocol(pair):
    ws, peer = pair
    ws.accept(RFC_KEY)
    peer.http_head()
    peer.send(OP_TEXT, b"x", masked=False)  # clients must mask: 1002
    with pytest.raises(ProtocolError) as err:
        list(ws.messages())
    assert err.value.code == 1002 and ws.broken
    ws.send_all(ws.close_frame(err.value.code, err.value.reason))
    peer.sock.sendall(b"\x00" * 5000)  # garbage the parser can no longer read
    peer.sock.shutdown(socket.SHUT_WR)
    started = time.monotonic()
    ws.linger(5)
    assert time.monotonic() - started < 1  # until the peer's end of the stream
    assert peer.close_code()[0] == 1002
