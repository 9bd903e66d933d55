"""A lean WebSocket client engine for the load generator: one epoll loop, raw sockets.

Why not a WebSocket library: at 30,000+ messages a second one Python core has
about 10 microseconds per message for sending a frame, reading the ack and
reading the delivered copy. A library's per-frame object layers cost more than
that. Here every connection is a non-blocking socket in one ``epoll``; client
frames are built (and masked, RFC 6455 section 5.3) with a few C-level
operations, and server frames are cut out of the receive buffer in a tight loop.

The engine knows nothing of the chat protocol: each connection has a handler
with ``on_open(conn, now)``, ``on_text(conn, payload, now)`` and
``on_close(conn, reason)``; times are ``time.monotonic_ns()`` (one clock for every
process on the machine).
"""
from __future__ import annotations

import base64
import errno
import os
import select
import socket
import struct
import zlib
from time import monotonic_ns, time_ns

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP
_READ_EVENTS = EPOLLIN | EPOLLERR | EPOLLHUP

# Connection states.
NEW, CONNECTING, HANDSHAKE, OPEN, CLOSED = range(5)

# One masking key for the process: RFC 6455 asks for an unpredictable key per
# frame to protect caching proxies; there is no proxy between the load generator
# and the server, and the server's unmasking work is the same for any key.
MASK_KEY = os.urandom(4)
_mask_ints: dict[int, int] = {}
_LINGER_RST = struct.pack("ii", 1, 0)
# Linux (x86-64 and arm64): the kernel stamps each received segment; recvmsg hands the
# stamp of the newest segment read as a struct timespec (CLOCK_REALTIME).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("qq")


def mask(data: bytes, key: bytes = MASK_KEY) -> bytes:
    """XOR ``data`` with the repeated 4-byte key (as one big-integer operation)."""
    n = len(data)
    if key is MASK_KEY:
        k = _mask_ints.get(n)
        if k is None:
            k = int.from_bytes((key * ((n >> 2) + 1))[:n], "little")
            if n < 8192:
                _mask_ints[n] = k
    else:
        k = int.from_bytes((key * ((n >> 2) + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ k).to_bytes(n, "little")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    return head + MASK_KEY + mask(payload)


def text_frame(payload: bytes) -> bytes:
    """A masked text frame carrying ``payload`` (UTF-8)."""
    return client_frame(0x1, payload)


def parse_server_frames(data: bytes):
    """Split unmasked frames out of ``data``: ([(b0, payload), ...], bytes left over)."""
    frames = []
    n = len(data)
    pos = 0
    while n - pos >= 2:
        b0 = data[pos]
        ln = data[pos + 1] & 0x7F
        h = 2
        if ln == 126:
            if n - pos < 4:
                break
            ln = (data[pos + 2] << 8) | data[pos + 3]
            h = 4
        elif ln == 127:
            if n - pos < 10:
                break
            ln = int.from_bytes(data[pos + 2:pos + 10], "big")
            h = 10
        end = pos + h + ln
        if end > n:
            break
        frames.append((b0, data[pos + h:end]))
        pos = end
    return frames, data[pos:]


def handshake_request(host: str, port: int, path: str, deflate: bool) -> bytes:
    """The HTTP upgrade request; ``deflate`` offers permessage-deflate as browsers do."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             "User-Agent: chat-bench/1"]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Conn:
    """One client WebSocket. ``cl`` is free for the scenario's per-client state."""

    __slots__ = ("idx", "path", "deflate", "handler", "sock", "fd", "state", "inbuf",
                 "out", "pending", "inflater", "frag", "t_start", "t_open", "t_ready",
                 "close_code", "error", "cl", "status")

    def __init__(self, idx: int, path: str, handler, deflate: bool = False, cl=None) -> None:
        self.idx = idx
        self.path = path
        self.deflate = deflate
        self.handler = handler
        self.sock: socket.socket | None = None
        self.fd = -1
        self.state = NEW
        self.inbuf = b""
        self.out = bytearray()
        self.pending: list[bytes] = []
        self.inflater = None
        self.frag: list[bytes] | None = None
        self.t_start = 0
        self.t_open = 0
        self.t_ready = 0
        self.close_code: int | None = None
        self.error: str | None = None
        self.cl = cl
        self.status = ""


class Loop:
    """The event loop: connects, handshakes, reads frames, writes queued frames."""

    def __init__(self, host: str, port: int, kernel_stamps: bool = True) -> None:
        self.host = host
        self.port = port
        self.ep = select.epoll()
        self.fds: dict[int, Conn] = {}
        self.dirty: list[Conn] = []
        self.frames_in = 0
        self.frames_out = 0
        self.bytes_in = 0
        self.opening = 0  # connections between connect() and the 101
        # One receive buffer for every socket (the loop is single-threaded and copies out
        # what it read): sock.recv(256 KiB) would allocate, and the allocator mmap and
        # munmap, 256 KiB on every call.
        self.rbuf = bytearray(262144)
        self.rview = memoryview(self.rbuf)
        # Receipt times come from the kernel's receive stamps, not from the moment this
        # one thread got round to a socket: with 1,000 recipients of one message, the
        # last socket read would otherwise look up to tens of milliseconds late.
        self.kernel_stamps = kernel_stamps
        self.stamped = 0

    # -- opening and closing ---------------------------------------------------

    def open(self, conn: Conn) -> None:
        """Start a non-blocking connect; the handler hears ``on_open`` after the 101."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.kernel_stamps:
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                self.kernel_stamps = False
        conn.sock = s
        conn.fd = s.fileno()
        conn.state = CONNECTING
        conn.inbuf = b""
        conn.out = bytearray()
        conn.pending = []
        conn.inflater = None
        conn.frag = None
        conn.close_code = None
        conn.error = None
        conn.status = ""
        conn.t_start = monotonic_ns()
        self.opening += 1
        err = s.connect_ex((self.host, self.port))
        self.fds[conn.fd] = conn
        if err not in (0, errno.EINPROGRESS):
            self._lost(conn, f"connect: {errno.errorcode.get(err, err)}")
            return
        self.ep.register(conn.fd, EPOLLOUT | EPOLLIN)

    def close(self, conn: Conn, abort: bool = True, code: int = 1000) -> None:
        """Close: abort=True resets the TCP connection at once (a dropped client)."""
        if conn.state == CLOSED:
            return
        s = conn.sock
        if not abort and conn.state == OPEN:
            try:
                s.send(client_frame(0x8, struct.pack("!H", code)))
            except OSError:
                pass
        else:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            except OSError:
                pass
        self._forget(conn)
        conn.error = conn.error or "closed by client"

    def _forget(self, conn: Conn) -> None:
        if conn.state in (CONNECTING, HANDSHAKE):
            self.opening -= 1
        conn.state = CLOSED
        self.fds.pop(conn.fd, None)
        try:
            self.ep.unregister(conn.fd)
        except (OSError, ValueError):
            pass
        try:
            conn.sock.close()
        except OSError:
            pass

    def _lost(self, conn: Conn, reason: str | None) -> None:
        if conn.state == CLOSED:
            return
        conn.error = reason or "closed by server"
        self._forget(conn)
        conn.handler.on_close(conn, conn.error)

    # -- writing ---------------------------------------------------------------

    def queue(self, conn: Conn, frame: bytes) -> None:
        """Queue a frame; ``flush`` writes every connection's queue in one send each."""
        if not conn.pending:
            self.dirty.append(conn)
        conn.pending.append(frame)
        self.frames_out += 1

    def send_now(self, conn: Conn, frame: bytes) -> None:
        """Queue and write at once."""
        self.queue(conn, frame)
        self.flush()

    def flush(self) -> None:
        """Write what was queued since the last flush."""
        dirty = self.dirty
        if not dirty:
            return
        self.dirty = []
        for conn in dirty:
            pending = conn.pending
            if not pending:
                continue
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            if conn.state != OPEN:
                continue
            if conn.out:
                conn.out += data
                continue
            try:
                sent = conn.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._lost(conn, f"send: {exc}")
                continue
            if sent < len(data):
                conn.out += data[sent:]
                self.ep.modify(conn.fd, EPOLLIN | EPOLLOUT)

    def _writable(self, conn: Conn) -> None:
        if conn.state == CONNECTING:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._lost(conn, f"connect: {errno.errorcode.get(err, err)}")
                return
            conn.state = HANDSHAKE
            try:
                conn.sock.send(handshake_request(self.host, self.port, conn.path,
                                                 conn.deflate))
            except OSError as exc:
                self._lost(conn, f"handshake send: {exc}")
                return
            self.ep.modify(conn.fd, EPOLLIN)
            return
        out = conn.out
        if out:
            try:
                sent = conn.sock.send(out)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lost(conn, f"send: {exc}")
                return
            del out[:sent]
        if not out:
            self.ep.modify(conn.fd, EPOLLIN)

    # -- reading ---------------------------------------------------------------

    def poll(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for events and handle them; returns how many."""
        try:
            events = self.ep.poll(timeout, 4096)
        except InterruptedError:
            return 0
        fds = self.fds
        rview = self.rview
        stamps = self.kernel_stamps
        if stamps:
            offset = time_ns() - monotonic_ns()  # CLOCK_REALTIME - CLOCK_MONOTONIC
        sol = socket.SOL_SOCKET
        for fd, ev in events:
            conn = fds.get(fd)
            if conn is None:
                continue
            if ev & EPOLLOUT:
                self._writable(conn)
                if conn.state == CLOSED:
                    continue
            if ev & _READ_EVENTS:
                now = 0
                try:
                    if stamps:
                        n, anc, _, _ = conn.sock.recvmsg_into((rview,), 64)
                        for level, kind, value in anc:
                            if level == sol and kind == SO_TIMESTAMPNS:
                                sec, nsec = _TIMESPEC.unpack_from(value)
                                now = sec * 1_000_000_000 + nsec - offset
                    else:
                        n = conn.sock.recv_into(rview)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._lost(conn, f"recv: {exc}")
                    continue
                if not n:
                    if conn.state == CONNECTING:
                        continue
                    self._lost(conn, None)
                    continue
                data = rview[:n].tobytes()
                self.bytes_in += n
                if conn.state == OPEN:
                    if now:
                        self.stamped += 1
                    else:
                        now = monotonic_ns()
                    self._frames(conn, data, now)
                elif conn.state == HANDSHAKE:
                    self._handshake_data(conn, data)
        if self.dirty:
            self.flush()
        return len(events)

    def _handshake_data(self, conn: Conn, data: bytes) -> None:
        data = conn.inbuf + data
        end = data.find(b"\r\n\r\n")
        if end < 0:
            conn.inbuf = data
            return
        head = data[:end].decode("latin-1")
        rest = data[end + 4:]
        conn.inbuf = b""
        status_line, _, headers = head.partition("\r\n")
        parts = status_line.split(" ", 2)
        conn.status = parts[1] if len(parts) > 1 else "?"
        if conn.status != "101":
            self._lost(conn, f"http {conn.status}")
            return
        for line in headers.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions" and \
                    "permessage-deflate" in value:
                conn.inflater = zlib.decompressobj(-15)
        conn.state = OPEN
        self.opening -= 1
        conn.t_open = monotonic_ns()
        conn.handler.on_open(conn, conn.t_open)
        if rest and conn.state == OPEN:
            self._frames(conn, rest)

    def _frames(self, conn: Conn, data: bytes, now: int = 0) -> None:
        if conn.inbuf:
            data = conn.inbuf + data
        frames, rest = parse_server_frames(data)
        now = now or monotonic_ns()
        on_text = conn.handler.on_text
        count = 0
        for b0, payload in frames:
            op = b0 & 0x0F
            if op == 1 or op == 2 or op == 0:
                if not b0 & 0x80:  # a fragment: keep until the final one
                    if conn.frag is None:
                        conn.frag = []
                    conn.frag.append(payload)
                    continue
                if conn.frag is not None:
                    conn.frag.append(payload)
                    payload = b"".join(conn.frag)
                    conn.frag = None
                if b0 & 0x40 and conn.inflater is not None:
                    payload = conn.inflater.decompress(payload + b"\x00\x00\xff\xff")
                count += 1
                on_text(conn, payload, now)
                if conn.state != OPEN:
                    return
            elif op == 9:
                self.queue(conn, client_frame(0xA, payload))
            elif op == 8:
                conn.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 \
                    else 1005
                try:
                    conn.sock.send(client_frame(0x8, payload[:2]))
                except OSError:
                    pass
                self._lost(conn, f"close {conn.close_code}")
                return
        self.frames_in += count
        conn.inbuf = rest
