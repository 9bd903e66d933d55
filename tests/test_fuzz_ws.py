"""Hypothesis fuzzes the WebSocket frames: over the frame schema, arbitrary JSON and bytes.

Whatever arrives, the server answers with documented frames only (never a 500),
keeps the connection open, and stores a message only when it acks one.
"""
from __future__ import annotations

import itertools
import json

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import mysql_env
from tests.support import WS, Api, ServerProcess

KINDS = {"hello", "pong", "ack", "message", "unread", "history", "read", "typing", "sync",
         "notice", "error"}
ERROR_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found",
               429: ("stranger_limit", "rate_limited"), 503: "server_busy"}

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                      st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=40))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
ids = st.one_of(st.integers(min_value=-3, max_value=50), st.just(2**53), st.just(2**53 - 1),
                st.booleans(), st.floats(allow_nan=False), st.text(max_size=5), st.none())
frame_fields = {
    "recipient_id": ids, "group": st.one_of(st.booleans(), json_leaf),
    "content": st.one_of(st.text(min_size=0, max_size=60), json_leaf,
                         st.just("2020-01-01 00:00:00"), st.just(" \n ")),
    "client_id": st.one_of(st.text(max_size=70), json_leaf), "before_id": ids,
    "since_id": ids, "last_read_id": ids, "limit": ids,
}
schema_frames = st.fixed_dictionaries(
    {"type": st.one_of(st.integers(min_value=-1, max_value=9), json_leaf)},
    optional=frame_fields)
MARKERS = itertools.count()
frames = st.one_of(
    schema_frames.map(json.dumps),
    json_value.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.sampled_from(['{"type": 1, "recipient_id": NaN, "content": "x"}', '{"a": 1e999}',
                     '{"type": 1, "content": "\\udc00", "recipient_id": 1}',
                     "[" * 2000 + "]" * 2000, '{"type": 7, "since_id": ' + "9" * 400 + "}"]))


@pytest.fixture(scope="module")
def fuzz_env(mysql_url, redis_prefix):
    proc = ServerProcess(mysql_env(mysql_url, redis_prefix, CHAT_RATE_PER_MINUTE=0)).start()
    me = Api.new_user(proc.base, "fuzzer")
    ws = WS(proc.ws_url, me.token)
    engine = sqlalchemy.create_engine(mysql_url)
    yield proc, me, ws, engine
    ws.close()
    engine.dispose()
    proc.stop()


def stored_messages(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT COUNT(*) FROM messages").scalar()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frame=frames)
def test_any_frame_gets_documented_answers_and_changes_nothing_it_refuses(fuzz_env, frame):
    proc, me, ws, engine = fuzz_env
    before = stored_messages(engine)
    ws.send(frame)
    # A note to self behind it: its ack comes after every answer to the fuzzed frame,
    # because a connection's sends are stored and answered in order.
    marker = f"marker-{next(MARKERS)}"
    ws.send({"type": 1, "recipient_id": me.user_id, "content": "marker", "client_id": marker})
    answers = []
    while True:
        reply = ws.recv(timeout=15)
        if reply.get("kind") == "ack" and reply.get("client_id") == marker:
            break
        answers.append(reply)
    acked = set()
    for reply in answers:
        assert reply.get("kind") in KINDS, reply
        assert isinstance(reply.get("code"), int) and reply["code"] != 500, reply
        if reply["kind"] == "error":
            expected = ERROR_CODES.get(reply["code"])
            assert expected and reply["error"] in (
                expected if isinstance(expected, tuple) else (expected,)), reply
        if reply["kind"] == "ack":
            acked.add(reply["id"])
    # Only acked messages were stored (plus the marker); anything refused changed nothing.
    added = stored_messages(engine) - before - 1
    assert added <= len(acked)
    if not acked:
        assert added == 0
    assert ws.request({"type": 0}, "pong")  # still open
