"""Our WebSocket transport: simple-websocket's server, hardened and made lean.

simple-websocket 1.1.0 (the newest release) has three habits a chat server cannot
live with, and this module fixes each at its root:

* it writes with ``socket.send`` and ignores a partial write
  (miguelgrinberg/simple-websocket#45): under gevent a big frame, or many small
  ones to a reader that falls behind, leave the socket half-written and the
  stream corrupt for good. Every byte here goes out through ``sendall``, from
  one writer per connection (see ``registry.Connection``);
* it accepts permessage-deflate whenever a client offers it (browsers always
  do), about 290 KiB of zlib state per used connection; we never negotiate it;
* it runs a reader thread per socket beside the handler. Here the handler's own
  greenlet reads, so an idle connection costs one greenlet.

Server frames are never masked or compressed, so a frame's wire bytes are the
same for every recipient: ``text_frame`` builds them once per message and the
fan-out hands the same ``bytes`` object to every connection.
"""
from __future__ import annotations

import base64
import binascii
import socket
from functools import wraps
from time import monotonic
from typing import Callable, Iterator

import simple_websocket
from flask import Response, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from .errors import BadRequest
from .frames import (FrameParser, ProtocolError, accept_token, binary_frame, close_frame,
                     ping_frame, pong_frame, text_frame)

__all__ = ["ChatSock", "ChatSocket", "ProtocolError", "binary_frame", "text_frame"]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013


def _valid_upgrade(environ: dict, key: str) -> bool:
    """A version 13 WebSocket upgrade request with a well-formed key (RFC 6455 4.2.1)."""
    if environ.get("REQUEST_METHOD") != "GET":
        return False
    if "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
        return False
    if "upgrade" not in environ.get("HTTP_CONNECTION", "").lower():
        return False
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


class _NoEvent:
    """Stands in for the threading.Event simple-websocket makes for its reader thread."""

    def set(self) -> None:
        """Nobody waits on it."""

    def clear(self) -> None:
        """Nobody waits on it."""


class _NoThread:
    """Stands in for the reader thread simple-websocket would start: we read in the handler."""

    name = "chat-ws"

    def __init__(self, target=None):
        self.target = target

    def start(self) -> None:
        """Nothing to start."""


class ChatSocket(simple_websocket.Server):
    """A server-side WebSocket read by the handler's greenlet and written by one writer.

    ``write`` is set by the owner (``registry.Connection.enqueue``): everything this
    class must send (pongs, close replies) goes through it, so frames never interleave.
    """

    def __init__(self, environ, max_message_size: int, receive_bytes: int = 16384):
        self.write: Callable[[bytes], None] = self._write_direct
        self.last_received = monotonic()
        self.pong_received = True
        self.close_sent = False
        self.parser = FrameParser(max_message_size)
        super().__init__(environ, receive_bytes=receive_bytes,
                         max_message_size=max_message_size, thread_class=_NoThread,
                         event_class=_NoEvent)

    # -- handshake ---------------------------------------------------------

    def handshake(self) -> None:
        """Accept the upgrade with no extension (no permessage-deflate), written whole."""
        try:
            # Frames are small and written as they come: without TCP_NODELAY, Nagle's
            # algorithm holds each one until the previous is acknowledged (tens of ms).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not a TCP socket (a Unix socket behind a proxy)
        environ = self.environ
        key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
        if not _valid_upgrade(environ, key):
            return  # not connected: the route answers 400
        self.ws = None  # simple-websocket's wsproto object: our FrameParser reads instead
        self.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                          + accept_token(key) + b"\r\n\r\n")
        self.connected = True

    # -- reading -----------------------------------------------------------

    def messages(self) -> Iterator[str | bytes]:
        """Yield each whole message the peer sends until the connection ends.

        Control frames are answered here. A broken frame, or a message over the size
        limit (checked before its payload is buffered), raises ``ProtocolError``
        with the close code to send (1002, 1007 or 1009).
        """
        parser = self.parser
        while self.connected:
            try:
                data = self.sock.recv(self.receive_bytes)
            except OSError:
                data = b""
            if not data:
                self.connected = False
                return
            self.last_received = monotonic()
            for event in parser.feed(data):
                kind = event[0]
                if kind == "text" or kind == "binary":
                    yield event[1]
                elif kind == "ping":
                    self.write(pong_frame(event[1]))
                elif kind == "pong":
                    self.pong_received = True
                else:  # close: answer it (unless we closed first) and stop
                    self.close_reason, self.close_message = event[1], event[2]
                    self.write(self.close_frame(event[1]))
                    self.connected = False
                    return

    # -- writing -----------------------------------------------------------

    def _write_direct(self, data: bytes) -> None:
        """Used only until an owner takes over writing."""
        self.sock.sendall(data)

    def close_frame(self, code: int | None = CLOSE_NORMAL, reason: str = "") -> bytes:
        """The close frame to send, or b"" when one was already sent."""
        if self.close_sent:
            return b""
        self.close_sent = True
        return close_frame(code, reason)

    def ping_frame(self) -> bytes:
        """A ping frame; the peer's pong sets ``pong_received``."""
        return b"" if self.close_sent else ping_frame()

    def abort(self) -> None:
        """Drop the TCP connection at once (the reader's recv ends with an error)."""
        self.connected = False
        try:
            self.sock.shutdown(2)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def end_http(self) -> None:
        """Keep gevent's WSGI server from reading this connection as HTTP again.

        pywsgi treats the upgraded request like any keep-alive one: once the handler
        returns it reads the next request line from its own buffered reader, so bytes
        the peer sent after its close frame were parsed, and run by the app, as a new
        HTTP request. Its loop stops at a closed reader, so close it.
        """
        stream = self.environ.get("wsgi.input")  # pywsgi's reader itself, on an upgrade
        stream = getattr(stream, "rfile", stream)  # or wrapped in its ``Input``
        try:
            stream.close()
        except (AttributeError, OSError):
            pass

    def close(self, reason=None, message=None) -> None:
        """Called by flask-sock after the handler: the owner has already closed us."""
        self.connected = False


class ChatSock(Sock):
    """flask-sock, serving its routes with ``ChatSocket`` instead of simple-websocket's Server."""

    def route(self, path, bp=None, **kwargs):
        """Like ``Sock.route``; the handler receives the environ-bound ``ChatSocket``."""
        def decorator(handler):
            @wraps(handler)
            def websocket_route(*args, **kw):
                try:
                    ws = ChatSocket(request.environ,
                                    max_message_size=current_app.config["CHAT_MAX_FRAME_BYTES"])
                except simple_websocket.ConnectionError:
                    raise BadRequest("not a WebSocket upgrade request") from None
                try:
                    handler(ws, *args, **kw)
                except ConnectionClosed:
                    pass
                finally:
                    ws.abort()
                    if ws.mode == "gevent":
                        ws.end_http()
                mode = ws.mode

                class WebSocketResponse(Response):
                    def __call__(self, *a, **k):
                        if mode == "gunicorn":
                            raise StopIteration()  # gunicorn: nothing more to write
                        if mode == "werkzeug":
                            return super().__call__(*a, **k)
                        return []

                return WebSocketResponse()

            kwargs["websocket"] = True
            if bp is not None:
                bp.route(path, **kwargs)(websocket_route)
            else:
                self.app.route(path, **kwargs)(websocket_route)
        return decorator
