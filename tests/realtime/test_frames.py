"""The frame parser on its own: byte by byte, fragments, limits, and what it refuses."""
from __future__ import annotations

import struct

import pytest

from chat.realtime.frames import FrameParser, ProtocolError, close_frame, text_frame
from tests.wire import client_frame


def test_whole_messages_and_control_frames():
    parser = FrameParser(1000)
    data = (client_frame(0x1, "héllo 你好".encode()) + client_frame(0x9, b"p")
            + client_frame(0x2, b"\x00\x01") + client_frame(0xA, b""))
    assert parser.feed(data) == [("text", "héllo 你好"), ("ping", b"p"),
                                 ("binary", b"\x00\x01"), ("pong", b"")]


def test_byte_by_byte_with_a_utf8_character_split_across_fragments():
    text = "😀" * 300
    raw = text.encode()
    data = (client_frame(0x1, raw[:5], fin=False) + client_frame(0x9, b"mid")
            + client_frame(0x0, raw[5:700], fin=False) + client_frame(0x0, raw[700:]))
    parser = FrameParser(10_000)
    events = []
    for i in range(len(data)):
        events += parser.feed(data[i:i + 1])
    assert events == [("ping", b"mid"), ("text", text)]


def test_a_message_over_the_limit_is_refused_from_its_header():
    parser = FrameParser(100)
    header_only = client_frame(0x1, b"x" * 200)[:8]
    with pytest.raises(ProtocolError) as err:
        parser.feed(header_only)
    assert err.value.code == 1009
    parser = FrameParser(100)
    parser.feed(client_frame(0x1, b"x" * 60, fin=False))
    with pytest.raises(ProtocolError) as err:
        parser.feed(client_frame(0x0, b"x" * 60))
    assert err.value.code == 1009


@pytest.mark.parametrize("data, code", [
    (client_frame(0x1, b"x", masked=False), 1002),
    (client_frame(0x1, b"x", rsv=0x40), 1002),
    (client_frame(0x3, b"x"), 1002),
    (client_frame(0xB, b""), 1002),
    (client_frame(0x0, b"x"), 1002),
    (client_frame(0x9, b"x", fin=False), 1002),
    (client_frame(0x9, b"x" * 126), 1002),
    (client_frame(0x1, b"a", fin=False) + client_frame(0x1, b"b"), 1002),
    (client_frame(0x1, b"\xff\xfe"), 1007),
    (client_frame(0x1, b"\xed\xa0\x80"), 1007),  # an encoded surrogate
    (client_frame(0x1, b"ok", fin=False) + client_frame(0x0, b"\xc3", fin=True), 1007),
    (client_frame(0x8, b"\x03"), 1002),
    (client_frame(0x8, struct.pack("!H", 1005)), 1002),
    (client_frame(0x8, struct.pack("!H", 999)), 1002),
    (client_frame(0x8, struct.pack("!H", 2000)), 1002),
    (client_frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),
], ids=["unmasked", "reserved-bit", "reserved-data-opcode", "reserved-control-opcode",
        "stray-continuation", "fragmented-ping", "long-ping", "text-inside-text", "bad-utf8",
        "encoded-surrogate", "truncated-utf8-at-end", "one-byte-close", "close-1005",
        "close-999", "close-2000", "close-reason-not-utf8"])
def test_protocol_violations_name_their_close_code(data, code):
    with pytest.raises(ProtocolError) as err:
        FrameParser(1000).feed(data)
    assert err.value.code == code


def test_invalid_utf8_fails_fast_in_the_fragment_that_holds_it():
    parser = FrameParser(10_000)
    parser.feed(client_frame(0x1, b"fine", fin=False))
    with pytest.raises(ProtocolError):
        parser.feed(client_frame(0x0, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
                                 fin=False))


def test_close_frames_and_nothing_after_them():
    parser = FrameParser(100)
    events = parser.feed(client_frame(0x8, struct.pack("!H", 4001) + "bye 再见".encode())
                         + client_frame(0x1, b"ignored"))
    assert events == [("close", 4001, "bye 再见")]
    assert parser.feed(client_frame(0x1, b"later")) == []
    assert FrameParser(100).feed(client_frame(0x8, b"")) == [("close", None, "")]


def test_server_frames():
    assert text_frame(b"hi") == b"\x81\x02hi"
    assert text_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert text_frame(b"x" * 70000)[:2] == b"\x81\x7f"
    assert close_frame(1009, "too big") == b"\x88\x09\x03\xf1too big"
    assert close_frame(1000) == b"\x88\x02\x03\xe8"
    assert close_frame(None) == b"\x88\x00"
