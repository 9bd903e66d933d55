"""Operating the server: /healthz, /metrics, and logs that carry ids and codes, never secrets."""
from __future__ import annotations

import re

import pytest
import requests

from tests.conftest import mysql_env
from tests.support import WS, Api, ServerProcess


@pytest.fixture(scope="module")
def chatty_server(mysql_url, redis_prefix):
    """A server that logs at INFO, so that every event line can be inspected."""
    proc = ServerProcess(mysql_env(mysql_url, redis_prefix, CHAT_LOG_LEVEL="INFO")).start()
    yield proc
    proc.stop()


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_healthz_reports_the_parts(server):
    r = requests.get(server.base + "/healthz")
    assert r.status_code == 200
    assert r.json()["db"] == "ok" and r.json()["redis"] == "ok"


def test_metrics_count_connections_messages_fanout_latency_and_errors(chatty_server):
    base = chatty_server.base
    alice, bob = Api.new_user(base, "a"), Api.new_user(base, "b")
    alice.follow_each_other(bob)
    before = requests.get(base + "/metrics")
    assert before.status_code == 200 and before.headers["Content-Type"].startswith("text/plain")
    a, b = WS(chatty_server.ws_url, alice.token), WS(chatty_server.ws_url, bob.token)
    for i in range(3):
        a.request({"type": 1, "recipient_id": bob.user_id, "content": f"m{i}"}, "ack")
    a.request({"type": 99}, "error")
    text = requests.get(base + "/metrics").text
    assert metric(text, "chat_connections") >= 2
    assert metric(text, "chat_messages_in_total") - metric(before.text,
                                                           "chat_messages_in_total") == 3
    assert metric(text, "chat_frames_out_total") >= metric(before.text,
                                                           "chat_frames_out_total") + 3
    assert metric(text, 'chat_send_seconds_bucket{le="+Inf"}') >= 3
    assert metric(text, 'chat_errors_total{code="bad_request"}') >= 1
    assert "# TYPE chat_send_seconds histogram" in text
    a.close(), b.close()


def test_logs_have_ids_and_codes_but_no_content_or_secrets(chatty_server):
    base = chatty_server.base
    alice, bob = Api.new_user(base, "a"), Api.new_user(base, "b")
    alice.follow_each_other(bob)
    secret_text = "my very private words 4471"
    a = WS(chatty_server.ws_url, alice.token)
    a.request({"type": 1, "recipient_id": bob.user_id, "content": secret_text}, "ack")
    a.request({"type": 1, "recipient_id": 987654321, "content": secret_text}, "error")
    a.close()
    requests.post(base + "/api/tokens", json={"username": alice.username,
                                              "password": "wrong-" + secret_text})
    log = chatty_server.log_path.read_text(errors="replace")
    assert f"user_id={alice.user_id}" in log and "event=ws_open" in log
    assert secret_text not in log
    assert alice.token not in log and bob.token not in log
