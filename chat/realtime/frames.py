"""WebSocket framing (RFC 6455 section 5) for the server side, small and fast.

wsproto, which simple-websocket uses, is careful but costs about 30 µs per small
frame in pure Python and keeps several objects alive per socket. Client frames
are simple: always masked, never compressed here (we negotiate no extension).
``FrameParser`` reads them with one header check and one big-integer XOR per
frame, and keeps nothing but a buffer between frames. It enforces what RFC 6455
requires of a server and what Autobahn's cases check (``tests/test_autobahn.py``):
masking, reserved bits and opcodes, control frame rules, fragmentation order,
UTF-8 of text (failing fast, mid-message), close codes, and the size limit before
a payload is buffered.
"""
from __future__ import annotations

from typing import Any

import base64
import codecs
import hashlib
import struct

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009

# Close codes a peer may send: the defined ones that are not local-only, and the
# ranges for libraries (3000-3999) and applications (4000-4999).
_VALID_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                1013})
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ProtocolError(Exception):
    """The peer broke the protocol: close with ``code`` (1002, 1007 or 1009)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def accept_token(key: str) -> bytes:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest())


def build_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame: what a server sends."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def text_frame(payload: bytes) -> bytes:
    """A text frame carrying ``payload`` (UTF-8 JSON): the same bytes for every recipient."""
    return build_frame(OP_TEXT, payload)


def binary_frame(payload: bytes) -> bytes:
    """A binary frame (only the echo route sends them)."""
    return build_frame(OP_BINARY, payload)


def close_frame(code: int | None = None, reason: str = "") -> bytes:
    """A close frame; without a code its payload is empty."""
    if code is None:
        return build_frame(OP_CLOSE, b"")
    return build_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123])


def ping_frame(payload: bytes = b"") -> bytes:
    """A ping frame."""
    return build_frame(OP_PING, payload)


def pong_frame(payload: bytes) -> bytes:
    """The pong that answers a ping with ``payload``."""
    return build_frame(OP_PONG, payload)


def unmask(data: Any, mask: bytes) -> bytes:
    """XOR ``data`` with the repeating 4-byte ``mask`` (as one big integer: fast in C)."""
    size = len(data)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little")


class FrameParser:
    """Turns the bytes a client sends into events, one connection's worth of state.

    ``feed(data)`` returns a list of events: ``("text", str)``, ``("binary", bytes)``,
    ``("ping", bytes)``, ``("pong", bytes)`` and ``("close", code or None, reason)``,
    or raises ``ProtocolError``.
    """

    __slots__ = ("buffer", "limit", "opcode", "parts", "size", "decoder", "closed")

    def __init__(self, limit: int) -> None:
        self.buffer = bytearray()
        self.limit = limit
        self.opcode: int | None = None  # of the fragmented message in progress
        self.parts: list | None = None
        self.size = 0
        self.decoder = None
        self.closed = False

    def feed(self, data: bytes) -> list[tuple]:
        """Parse what arrived; keep any incomplete frame for next time."""
        if self.closed:
            return []
        buf = self.buffer
        if buf:
            buf += data
        else:
            buf = data
        events: list[tuple] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
                if length >> 63:
                    raise ProtocolError(PROTOCOL_ERROR, "payload length with the top bit set")
            self._check_header(b0, b1, length)
            start = pos + head + 4
            if end - start < length:
                break
            payload = unmask(buf[start:start + length], bytes(buf[pos + head:start]))
            pos = start + length
            self._frame(b0 & 0x80, b0 & 0x0F, payload, events)
            if self.closed:
                break
        if buf is self.buffer:
            if pos:
                del buf[:pos]  # keep the unfinished frame, drop what was parsed
        elif pos < end:
            self.buffer = bytearray(buf[pos:])
        return events

    def _check_header(self, b0: int, b1: int, length: int) -> None:
        """Everything that can be refused before the payload is read."""
        opcode = b0 & 0x0F
        if b0 & 0x70:
            raise ProtocolError(PROTOCOL_ERROR, "reserved bits set without an extension")
        if not b1 & 0x80:
            raise ProtocolError(PROTOCOL_ERROR, "client frames must be masked")
        if opcode >= 0x8:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolError(PROTOCOL_ERROR, f"reserved opcode {opcode}")
            if not b0 & 0x80 or length > 125:
                raise ProtocolError(PROTOCOL_ERROR, "control frames are short and unfragmented")
            return
        if opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
            raise ProtocolError(PROTOCOL_ERROR, f"reserved opcode {opcode}")
        if opcode == OP_CONTINUATION and self.opcode is None:
            raise ProtocolError(PROTOCOL_ERROR, "continuation frame without a message")
        if opcode != OP_CONTINUATION and self.opcode is not None:
            raise ProtocolError(PROTOCOL_ERROR, "new message inside a fragmented one")
        if self.size + length > self.limit:
            raise ProtocolError(MESSAGE_TOO_BIG, "message too big")

    def _frame(self, fin: int, opcode: int, payload: bytes, events: list) -> None:
        """One complete frame, checked and turned into events."""
        if opcode == OP_PING:
            events.append(("ping", payload))
        elif opcode == OP_PONG:
            events.append(("pong", payload))
        elif opcode == OP_CLOSE:
            events.append(self._close(payload))
            self.closed = True
        elif opcode != OP_CONTINUATION and fin:
            # The common case: a whole message in one frame.
            if opcode == OP_TEXT:
                try:
                    events.append(("text", payload.decode("utf-8")))
                except UnicodeDecodeError:
                    raise ProtocolError(INVALID_PAYLOAD, "text is not UTF-8") from None
            else:
                events.append(("binary", payload))
        else:
            if opcode != OP_CONTINUATION:
                self.opcode, self.parts, self.size = opcode, [], 0
                if opcode == OP_TEXT:
                    self.decoder = codecs.getincrementaldecoder("utf-8")()
            self.size += len(payload)
            try:
                if self.decoder is not None:
                    # Fail fast: invalid UTF-8 is refused in the fragment that holds it.
                    self.parts.append(self.decoder.decode(payload, final=bool(fin)))
                else:
                    self.parts.append(payload)
            except UnicodeDecodeError:
                raise ProtocolError(INVALID_PAYLOAD, "text is not UTF-8") from None
            if fin:
                kind = "text" if self.opcode == OP_TEXT else "binary"
                joined = "".join(self.parts) if kind == "text" else b"".join(self.parts)
                events.append((kind, joined))
                self.opcode, self.parts, self.size, self.decoder = None, None, 0, None

    @staticmethod
    def _close(payload: bytes) -> tuple:
        """A close frame's code and reason, checked."""
        if not payload:
            return ("close", None, "")
        if len(payload) == 1:
            raise ProtocolError(PROTOCOL_ERROR, "close frame with a 1-byte payload")
        code = int.from_bytes(payload[:2], "big")
        if code not in _VALID_CLOSE_CODES and not 3000 <= code <= 4999:
            raise ProtocolError(PROTOCOL_ERROR, f"invalid close code {code}")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_PAYLOAD, "close reason is not UTF-8") from None
        return ("close", code, reason)
