"""The test-only echo route (``chat.realtime.echo``) on our exact WebSocket stack: what
the Autobahn conformance cases talk to, checked here without a server process."""
from __future__ import annotations

import struct

import pytest

from tests.inprocess import make_app, running
from tests.wire import OP_BINARY, OP_CLOSE, OP_TEXT, Upgrade


@pytest.fixture(scope="module")
def echo_app(sqlite_module_url):
    with running(make_app(sqlite_module_url, CHAT_ECHO_ROUTE=True,
                          CHAT_MAX_FRAME_BYTES=1000)) as app:
        yield app


@pytest.fixture
def echo(echo_app):
    u = Upgrade(echo_app, path="/_echo")
    assert u.peer.http_head().startswith(b"HTTP/1.1 101 ")
    yield u
    u.close()


def test_each_message_comes_back_as_it_came(echo):
    echo.peer.send(OP_TEXT, "héllo 你好".encode())
    echo.peer.send(OP_BINARY, b"\x00\xff")
    echo.peer.send(OP_TEXT, b"frag", fin=False)
    echo.peer.send(0x0, b"mented")
    assert echo.peer.frame() == (OP_TEXT, "héllo 你好".encode())
    assert echo.peer.frame() == (OP_BINARY, b"\x00\xff")
    assert echo.peer.frame() == (OP_TEXT, b"fragmented")
    echo.peer.send(OP_CLOSE, struct.pack("!H", 1000))
    assert echo.peer.frame() == (OP_CLOSE, struct.pack("!H", 1000))
    assert echo.response() == (None, b"")


def test_a_message_over_the_limit_closes_with_1009(echo):
    echo.peer.send(OP_TEXT, b"x" * 2000)
    assert echo.peer.close_code() == (1009, "message too big")


def test_the_route_exists_only_when_asked_for(module_app):
    client = module_app.test_client()
    assert client.get("/_echo").status_code == 404
