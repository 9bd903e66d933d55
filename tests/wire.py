"""The client's end of a WebSocket, byte for byte, on a real socket pair in this process.

``tcp_pair`` makes a connected pair of gevent sockets on 127.0.0.1 (no
monkey-patching needed: gevent's own sockets wait on its hub). The server end
goes to ``chat.realtime.transport.WebSocket``; the test holds the other end as a
``Peer``, which writes masked client frames and reads the server's frames.
"""
from __future__ import annotations

import json
import os
import socket
import struct

import gevent
from gevent import socket as gsocket
from werkzeug.test import EnvironBuilder

from chat.realtime.connection import Connection, QueueBudget
from chat.realtime.frames import unmask
from chat.realtime.transport import WebSocket

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example key and its answer
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0,
                 masked: bool = True) -> bytes:
    """A frame as a browser sends it (masked)."""
    size = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    if size < 126:
        header = struct.pack("!BB", first, (0x80 if masked else 0) | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, size)
    else:
        header = struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, size)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + unmask(payload, mask)


def tcp_pair(server_sndbuf: int | None = None,
             client_rcvbuf: int | None = None) -> tuple[gsocket.socket, gsocket.socket]:
    """(server end, client end) of a loopback TCP connection; small buffers on request."""
    listener = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if client_rcvbuf:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, client_rcvbuf)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    if server_sndbuf:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, server_sndbuf)
    return server, client


class Peer:
    """The client end: sends masked frames, reads unmasked server frames."""

    def __init__(self, sock: gsocket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    # -- writing -------------------------------------------------------------

    def send(self, opcode: int, payload: bytes = b"", **kw) -> None:
        """Send one client frame."""
        self.sock.sendall(client_frame(opcode, payload, **kw))

    def send_json(self, frame) -> None:
        """Send a JSON text frame."""
        self.send(OP_TEXT, json.dumps(frame).encode())

    # -- reading -------------------------------------------------------------

    def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"the server closed the TCP connection ({bytes(self.buffer)!r})")
            self.buffer += data

    def _take(self, size: int) -> bytes:
        self._fill(size)
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def http_head(self, timeout: float = 5) -> bytes:
        """The HTTP response head (up to the blank line)."""
        with gevent.Timeout(timeout):
            while b"\r\n\r\n" not in self.buffer:
                self._fill(len(self.buffer) + 1)
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        return head

    def frame(self, timeout: float = 5) -> tuple[int, bytes]:
        """The next server frame as (opcode, payload); fails if the server masks it."""
        with gevent.Timeout(timeout, AssertionError(f"no frame within {timeout}s")):
            b0, b1 = self._take(2)
            assert not b1 & 0x80, "a server frame must not be masked"
            assert b0 & 0x80, "the server sends no fragments"
            size = b1 & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._take(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._take(8))[0]
            return b0 & 0x0F, self._take(size)

    def json(self, timeout: float = 5) -> dict:
        """The next frame, which must be a JSON text frame."""
        opcode, payload = self.frame(timeout)
        assert opcode == OP_TEXT, (opcode, payload)
        return json.loads(payload)

    def close_code(self, timeout: float = 5) -> tuple[int | None, str]:
        """Skip data frames until a close frame; its (code, reason)."""
        while True:
            opcode, payload = self.frame(timeout)
            if opcode == OP_CLOSE:
                if not payload:
                    return None, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def nothing(self, wait: float = 0.2) -> None:
        """Assert that no byte arrives within ``wait`` seconds."""
        if self.buffer:
            raise AssertionError(f"unexpected bytes {bytes(self.buffer)!r}")
        try:
            with gevent.Timeout(wait):
                data = self.sock.recv(65536)
        except gevent.Timeout:
            return
        raise AssertionError(f"unexpected bytes {data!r}")

    def at_eof(self, timeout: float = 5) -> bool:
        """Whether the server dropped the connection (reads whatever is still queued)."""
        try:
            with gevent.Timeout(timeout):
                while True:
                    data = self.sock.recv(65536)
                    if not data:
                        return True
                    self.buffer += data
        except gevent.Timeout:
            return False
        except OSError:
            return True

    def close(self) -> None:
        """Drop the client end."""
        self.sock.close()


class CountingWebSocket(WebSocket):
    """Our transport, counting the writes that carry frames (each a system call or more)."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.writes = 0

    def try_send(self, data: bytes) -> int:
        """Count, then the real non-blocking send."""
        self.writes += 1
        return super().try_send(data)

    def send_all(self, data: bytes) -> None:
        """Count, then the real waiting send."""
        self.writes += 1
        super().send_all(data)


def open_connection(user_id: int, auth_id: int | None = None, max_bytes: int = 1 << 20,
                    budget: QueueBudget | None = None, **buffers) -> tuple[Connection, Peer]:
    """A ``Connection`` on our transport over a real TCP pair, and its client end."""
    server, client = tcp_pair(**buffers)
    ws, peer = CountingWebSocket(server, 65536), Peer(client)
    ws.accept(RFC_KEY)
    peer.http_head()
    return Connection(user_id, auth_id, ws, max_bytes, budget), peer


class Upgrade:
    """One WebSocket request in flight: the WSGI call's greenlet and the client's end of the socket.

    The app is called as a WSGI server calls it, so the test sees what such a server
    would: a refusal's status and body, or, after an upgrade, no HTTP response at all.
    """

    def __init__(self, app, query: str = "", headers: dict | None = None,
                 with_socket: bool = True, path: str = "/ws") -> None:
        server, client = tcp_pair()
        self.server, self.peer = server, Peer(client)
        environ = EnvironBuilder(path=path, query_string=query, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": RFC_KEY, **(headers or {})}).get_environ()
        if with_socket:
            environ["chat.socket"] = server
        self.started: list[str] = []

        def start_response(status, response_headers, exc_info=None):
            self.started.append(status)
            return lambda data: None
        self.request = gevent.spawn(lambda: b"".join(app(environ, start_response)))

    def response(self, timeout: float = 10) -> tuple[int | None, bytes]:
        """(HTTP status or None when none was started, body) once the call returns."""
        body = self.request.get(timeout=timeout)
        return (int(self.started[0].split()[0]) if self.started else None), body

    def close(self) -> None:
        self.request.kill()
        self.server.close()
        self.peer.close()
