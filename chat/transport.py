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

import socket
import struct
from functools import wraps
from time import monotonic
from typing import Callable, Iterator

import simple_websocket
from flask import Response, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Pong,
                            Request, TextMessage)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013


def _frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final WebSocket frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def text_frame(payload: bytes) -> bytes:
    """The wire bytes of a text frame carrying ``payload`` (UTF-8 JSON)."""
    return _frame(0x1, payload)


def binary_frame(payload: bytes) -> bytes:
    """The wire bytes of a binary frame (only the echo route sends them)."""
    return _frame(0x2, payload)


class MessageTooBig(Exception):
    """The peer sent a message over the frame size limit."""


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
        super().__init__(environ, receive_bytes=receive_bytes,
                         max_message_size=max_message_size, thread_class=_NoThread)

    # -- handshake ---------------------------------------------------------

    def handshake(self) -> None:
        """Accept the upgrade with no extension (no permessage-deflate), written whole."""
        try:
            # Frames are small and written as they come: without TCP_NODELAY, Nagle's
            # algorithm holds each one until the previous is acknowledged (tens of ms).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not a TCP socket (a Unix socket behind a proxy)
        in_data = b"GET / HTTP/1.1\r\n"
        for key, value in self.environ.items():
            if key.startswith("HTTP_"):
                header = "-".join(p.capitalize() for p in key[5:].split("_"))
                in_data += f"{header}: {value}\r\n".encode("latin-1", "replace")
        self.ws.receive_data(in_data + b"\r\n")
        for event in self.ws.events():
            if isinstance(event, Request):
                self.sock.sendall(self.ws.send(AcceptConnection(subprotocol=None,
                                                                extensions=[])))
                self.connected = True

    # -- reading -----------------------------------------------------------

    def messages(self) -> Iterator[str | bytes]:
        """Yield each whole message the peer sends until the connection ends.

        Control frames are answered here; a message over ``max_message_size`` bytes
        raises ``MessageTooBig`` before it is buffered whole.
        """
        limit = self.max_message_size
        parts: list = []
        size = 0
        while self.connected:
            try:
                data = self.sock.recv(self.receive_bytes)
            except OSError:
                data = b""
            if not data:
                self.connected = False
                return
            self.last_received = monotonic()
            try:
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, (TextMessage, BytesMessage)):
                        chunk = event.data
                        size += len(chunk) if isinstance(chunk, (bytes, bytearray)) else (
                            len(chunk) if chunk.isascii() else len(chunk.encode("utf-8")))
                        if limit and size > limit:
                            raise MessageTooBig()
                        parts.append(chunk)
                        if event.message_finished:
                            message = parts[0] if len(parts) == 1 else (
                                "".join(parts) if isinstance(event, TextMessage)
                                else b"".join(parts))
                            parts, size = [], 0
                            yield bytes(message) if isinstance(message, bytearray) else message
                    elif isinstance(event, Ping):
                        self.write(self.ws.send(event.response()))
                    elif isinstance(event, Pong):
                        self.pong_received = True
                    elif isinstance(event, CloseConnection):
                        self.close_reason, self.close_message = event.code, event.reason
                        try:
                            self.write(self.ws.send(event.response()))
                        except LocalProtocolError:
                            pass
                        self.connected = False
                        return
            except (LocalProtocolError, RemoteProtocolError):
                self.connected = False
                return

    # -- writing -----------------------------------------------------------

    def _write_direct(self, data: bytes) -> None:
        """Used only until an owner takes over writing."""
        self.sock.sendall(data)

    def close_frame(self, code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
        """The close frame to send, or b"" when one was already sent."""
        try:
            return self.ws.send(CloseConnection(code, reason))
        except LocalProtocolError:
            return b""

    def ping_frame(self) -> bytes:
        """A ping frame; the peer's pong sets ``pong_received``."""
        try:
            return self.ws.send(Ping())
        except LocalProtocolError:
            return b""

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
                ws = ChatSocket(request.environ,
                                max_message_size=current_app.config["CHAT_MAX_FRAME_BYTES"])
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
