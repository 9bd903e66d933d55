"""Field rules (``chat.service.validation``), docs/protocol.md 5, table by table."""
from __future__ import annotations

from datetime import datetime

import pytest

from chat.errors import BadRequest
from chat.service import validation as v

MAX_ID = 2**53 - 1
LONE = "\ud800"  # a lone surrogate: not encodable as UTF-8


def refused(fn, *args, **kw) -> str:
    """The message of the 400 that ``fn`` raises."""
    with pytest.raises(BadRequest) as err:
        fn(*args, **kw)
    assert err.value.status == 400
    return err.value.message


@pytest.mark.parametrize("value", [1, 7, MAX_ID])
def test_entity_id_accepts(value):
    assert v.entity_id(value, "user_id") == value


@pytest.mark.parametrize("value", [0, -1, MAX_ID + 1, "7", 7.0, True, False, None, [1], {}],
                         ids=["zero", "negative", "too-big", "string", "float", "true", "false",
                              "none", "list", "dict"])
def test_entity_id_refuses(value):
    assert "user_id" in refused(v.entity_id, value, "user_id")


@pytest.mark.parametrize("value, expected", [(None, 5), (0, 0), (12, 12), (MAX_ID, MAX_ID)])
def test_cursor_accepts_zero_and_defaults(value, expected):
    assert v.cursor(value, "since_id", default=5) == expected


@pytest.mark.parametrize("value", [-1, MAX_ID + 1, "3", 3.0, True])
def test_cursor_refuses(value):
    assert "since_id" in refused(v.cursor, value, "since_id")


@pytest.mark.parametrize("value, ok", [(None, True), (1, True), (100, True), (0, False),
                                       (101, False), ("10", False), (True, False)])
def test_limit(value, ok):
    if ok:
        assert v.limit(value, 1, 100, 10) == (10 if value is None else value)
    else:
        assert "limit" in refused(v.limit, value, 1, 100, 10)


@pytest.mark.parametrize("value, expected", [(None, False), (True, True), (False, False)])
def test_flag_accepts(value, expected):
    assert v.flag(value, "group") is expected


@pytest.mark.parametrize("value", [1, 0, "true", "false"])
def test_flag_refuses(value):
    assert "group" in refused(v.flag, value, "group")


@pytest.mark.parametrize("value", ["x", " x ", "😀" * 10, "a" * 10, "<b>&</b>", "\u00a0x"])
def test_content_is_kept_exactly(value):
    assert v.content(value, 10) == value


@pytest.mark.parametrize("value, says", [
    ("", "empty"), (" \t\n\u3000", "white space"), ("a" * 11, "longer than 10"),
    ("😀" * 11, "longer than 10"), ("ok" + LONE, "not valid Unicode"), (None, "string"),
    (5, "string"), (["hi"], "string"),
], ids=["empty", "white-space", "too-long", "too-many-code-points", "lone-surrogate", "none",
        "number", "list"])
def test_content_refuses(value, says):
    assert says in refused(v.content, value, 10)


@pytest.mark.parametrize("value, ok", [
    (None, True), ("a", True), ("x" * 64, True), ("ü😀", True), ("", False), ("x" * 65, False),
    (7, False), ("a" + LONE, False),
], ids=["absent", "one", "sixty-four", "unicode", "empty", "sixty-five", "number", "surrogate"])
def test_client_id(value, ok):
    if ok:
        assert v.client_id(value) == value
        assert v.is_client_id(value) is (value is not None)
    else:
        assert "client_id" in refused(v.client_id, value)
        assert v.is_client_id(value) is False


@pytest.mark.parametrize("value, ok", [
    ("abc", True), ("A.b-c_9", True), ("x" * 32, True), ("ab", False), ("x" * 33, False),
    ("bad name", False), ("ünï", False), ("a/b", False), (None, False), (123, False),
])
def test_username(value, ok):
    if ok:
        assert v.username(value) == value
    else:
        refused(v.username, value)


@pytest.mark.parametrize("value, ok", [
    ("x" * 8, True), ("x" * 128, True), ("pässwörd", True), ("x" * 7, False),
    ("x" * 129, False), ("x" * 8 + LONE, False), (12345678, False),
])
def test_password(value, ok):
    if ok:
        assert v.password(value) == value
    else:
        refused(v.password, value)


@pytest.mark.parametrize("value, required, result", [
    ("Team", True, "Team"), (None, False, ""), ("", False, ""), ("x" * 64, True, "x" * 64),
    ("", True, None), ("   ", True, None), (None, True, None), ("x" * 65, True, None),
    ("a\x00b", True, None), ("a" + LONE, False, None), (3, False, None),
])
def test_text_field(value, required, result):
    if result is not None:
        assert v.text_field(value, "name", 64, required=required) == result
    else:
        assert "name" in refused(v.text_field, value, "name", 64, required=required)


@pytest.mark.parametrize("value, ok", [
    (None, True), ("", True), ("https://example.com/a.png", True), ("http://x.y/i", True),
    ("javascript:alert(1)", False), ("ftp://x.y/i", False), ("https://", False),
    ("https://x.y/a b", False), ("//x.y/i", False), ("https://x.y/" + "a" * 500, False),
])
def test_icon_url(value, ok):
    if ok:
        assert v.icon_url(value) == (value or "")
    else:
        refused(v.icon_url, value)


@pytest.mark.parametrize("value, expected", [
    ("2026-11-27 10:00:00", datetime(2026, 11, 27, 10, 0)),
    ("2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, 0)),
    ("2026-11-27T12:00:00+02:00", datetime(2026, 11, 27, 10, 0)),
    ("2026-11-27T10:00:00.123z", datetime(2026, 11, 27, 10, 0, 0, 123000)),
    (" 0050-01-01 00:00:00 ", datetime(50, 1, 1)),
])
def test_time_cursor_reads_both_forms_as_naive_utc(value, expected):
    assert v.time_cursor(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "", "2026-13-01 00:00:00", 1700000000, None,
                                   "0001-01-01T00:00:00+01:00", "9" * 41])
def test_time_cursor_refuses(value):
    refused(v.time_cursor, value)


@pytest.mark.parametrize("raw, expected", [
    (None, 20), ("", 20), ("1", 1), ("100", 100), ("007", 7),
])
def test_query_int_accepts(raw, expected):
    args = {} if raw is None else {"limit": raw}
    assert v.query_int(args, "limit", low=1, high=100, default=20) == expected


@pytest.mark.parametrize("raw", ["0", "101", "-1", "1.5", "ten", "１２", "9" * 21, " 5"])
def test_query_int_refuses(raw):
    assert "limit" in refused(v.query_int, {"limit": raw}, "limit", low=1, high=100, default=20)


def test_parse_json_reads_objects_and_refuses_what_is_not_json():
    assert v.parse_json('{"type": 1, "content": "hé"}') == {"type": 1, "content": "hé"}
    assert v.parse_json(b"[1, 2]") == [1, 2]
    for raw in ["{", "NaN", '{"a": Infinity}', "", "{'a': 1}", "[" * 100_000]:
        assert "not valid JSON" in refused(v.parse_json, raw)


def test_an_escaped_lone_surrogate_is_json_and_left_to_its_fields_check():
    frame = v.parse_json('{"type": 1, "content": "\\ud800", "client_id": "c1"}')
    assert frame["client_id"] == "c1"  # so the 400 can name the frame (ref)
    assert "Unicode" in refused(v.content, frame["content"], 5000)
