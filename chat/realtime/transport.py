"""Our WebSocket transport: the server side of one connection, on a gevent socket.

flask-sock hands its routes a ``simple_websocket.Server``. We keep flask-sock
for the routes (``chat.realtime.route``) and use this class instead, because
simple-websocket 1.1.0 (the newest release) has three habits a chat server
cannot live with:

* it writes with ``socket.send`` and ignores a partial write
  (miguelgrinberg/simple-websocket#45): under gevent a big frame, or many small
  ones to a reader that falls behind, leave the stream corrupt for good. Here
  every byte goes out through ``try_send`` (one non-blocking send, the rest
  left queued) or ``send_all``, from one writer per connection
  (``chat.realtime.registry.Connection``);
* it accepts permessage-deflate whenever a client offers it (browsers always
  do), about 290 KiB of zlib state per used connection; we never negotiate it;
* it runs a reader thread per socket and parses with wsproto (about 30 µs and
  several objects per small frame). Here the handler's own greenlet reads, with
  ``chat.realtime.frames.FrameParser`` (about 7 µs per frame), so an idle
  connection costs one greenlet and a few hundred bytes of state.

Server frames are never masked or compressed, so a frame's wire bytes are the
same for every recipient: ``frames.text_frame`` builds them once per message.
"""
from __future__ import annotations

import base64
import binascii
import socket
import ssl
from time import monotonic
from typing import Callable, Iterator

import gevent

from .frames import FrameParser, ProtocolError, accept_token, close_frame, ping_frame, pong_frame

__all__ = ["WebSocket", "ProtocolError", "CLOSE_NORMAL", "CLOSE_GOING_AWAY", "CLOSE_POLICY",
           "CLOSE_TRY_AGAIN", "take_over", "upgrade_socket"]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013

# Where the WSGI server leaves the client's socket: gunicorn's workers put it in the
# environ; our development server (``chat.devserver``) does the same under its own key.
_SOCKET_KEYS = ("gunicorn.socket", "chat.socket")


def upgrade_socket(environ: dict) -> socket.socket | None:
    """The client's socket, when the server hands it to the application."""
    for key in _SOCKET_KEYS:
        sock = environ.get(key)
        if sock is not None:
            return sock
    return None


def take_over(sock: socket.socket) -> socket.socket | None:
    """The same TCP connection on a socket object of our own, the server's one detached;
    ``None`` for a TLS socket (gunicorn serving TLS itself), whose state cannot move.

    The WSGI server's handler can then end as any request does: its greenlet's stack,
    the environ, the parsed request and the Flask request context go with it (about
    half of an idle connection's memory), while the connection lives on in a greenlet
    of its own. The server's later ``close()`` of its detached object closes nothing.
    """
    if isinstance(sock, ssl.SSLSocket):
        return None
    timeout = sock.gettimeout()
    # The same class: gevent's cooperative socket (a plain one would block the process).
    own = type(sock)(sock.family, sock.type, sock.proto, fileno=sock.detach())
    own.settimeout(timeout)
    return own


def valid_upgrade(environ: dict) -> bool:
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
        return len(base64.b64decode(environ.get("HTTP_SEC_WEBSOCKET_KEY", ""),
                                    validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


class WebSocket:
    """One server-side WebSocket: read by the handler's greenlet, written by one writer.

    ``write`` is set by the owner (``Connection``): the control frames this class
    must answer while reading (pongs, the close reply) go through it, so they never
    interleave with the owner's frames.
    """

    __slots__ = ("sock", "parser", "receive_bytes", "connected", "last_received",
                 "pong_received", "close_sent", "close_code", "broken", "write")

    def __init__(self, sock: socket.socket, max_message_size: int,
                 receive_bytes: int = 16384) -> None:
        self.sock = sock
        self.parser = FrameParser(max_message_size)
        self.receive_bytes = receive_bytes
        self.connected = False
        self.last_received = monotonic()
        self.pong_received = True
        self.close_sent = False
        self.close_code: int | None = None  # the peer's close code, once it sent one
        self.broken = False  # the peer broke the protocol: its bytes can no longer be parsed
        self.write: Callable[[bytes], None] = self.send_all

    # -- handshake ---------------------------------------------------------

    def accept(self, key: str, send_buffer: int = 0) -> None:
        """Answer the upgrade (no extension, so no permessage-deflate), written whole.

        ``send_buffer`` caps the kernel's send buffer for this socket (0: the kernel's
        autotuning, which lets each socket a client does not read hold up to 4 MiB).
        """
        try:
            # Frames are small and written as they come: without TCP_NODELAY, Nagle's
            # algorithm holds each one until the previous is acknowledged (tens of ms).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not a TCP socket (a Unix socket behind a proxy)
        if send_buffer > 0:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
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
            try:
                events = parser.feed(data)
            except ProtocolError:
                self.broken = True
                raise
            for event in events:
                kind = event[0]
                if kind == "text" or kind == "binary":
                    yield event[1]
                elif kind == "ping":
                    self.write(pong_frame(event[1]))
                elif kind == "pong":
                    self.pong_received = True
                else:  # close: answer it (unless we closed first) and stop
                    self.close_code = event[1]
                    self.write(self.close_frame(event[1]))
                    self.connected = False
                    return

    # -- writing -----------------------------------------------------------

    def try_send(self, data: bytes) -> int:
        """Write what the socket takes now, without waiting; returns how many bytes.

        ``timeout=0.0`` is gevent's: a full socket buffer answers at once instead of
        parking this greenlet. A peer that is gone raises ``OSError``.
        """
        try:
            return self.sock.send(data, timeout=0.0)
        except (BlockingIOError, InterruptedError):
            return 0

    def send_all(self, data: bytes) -> None:
        """Write everything, waiting (cooperatively) for the peer to read."""
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

    def linger(self, timeout: float, limit: int = 1 << 20) -> None:
        """After our close frame, let the peer finish: read (and drop) what it still sends
        until its close frame, its end of the stream, ``timeout`` or ``limit`` bytes.

        Dropping the TCP connection at once would reset it under a peer still writing
        (the rest of an oversized frame, or its own close frame), and the peer would see
        a broken pipe instead of our close code.
        """
        if not self.close_sent or self.close_code is not None:
            return
        received = 0
        with gevent.Timeout(timeout, False):
            while received < limit:
                try:
                    data = self.sock.recv(self.receive_bytes)
                except OSError:
                    return
                if not data:
                    return
                received += len(data)
                if self.broken:
                    continue
                try:
                    if any(event[0] == "close" for event in self.parser.feed(data)):
                        return
                except ProtocolError:
                    self.broken = True

    def abort(self) -> None:
        """Drop the TCP connection at once (the reader's recv ends with an error)."""
        self.connected = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
