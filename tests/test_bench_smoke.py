"""Smoke test of the benchmark's own parts (bench/): frames, figures, a few seconds of load.

The benchmark itself is not part of the suite (``python -m bench``); this only
checks that its load generator speaks WebSocket correctly and counts right,
against the chat server of the suite and against the bare relay.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import orjson
import pytest

from bench import report
from bench.loadgen import Client, Stream, Traffic, percentiles
from bench.mixed import MixedTraffic, cycle_counts
from bench.procstat import CpuMeter
from bench.wsclient import (MASK_KEY, Loop, client_frame, mask, parse_server_frames,
                            text_frame)
from tests.support import ROOT, free_port


def _unmask_client_frame(frame: bytes) -> tuple[int, bytes]:
    b0, b1 = frame[0], frame[1]
    assert b1 & 0x80, "client frames are masked"
    n = b1 & 0x7F
    pos = 2
    if n == 126:
        n = int.from_bytes(frame[2:4], "big")
        pos = 4
    elif n == 127:
        n = int.from_bytes(frame[2:10], "big")
        pos = 10
    key = frame[pos:pos + 4]
    payload = frame[pos + 4:]
    assert len(payload) == n
    return b0, bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_client_frames_are_masked_and_sized(size):
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    b0, body = _unmask_client_frame(client_frame(0x1, payload))
    assert b0 == 0x81
    assert body == payload
    assert mask(mask(payload)) == payload
    assert MASK_KEY in client_frame(0x1, payload)


def test_server_frames_are_split_across_reads():
    def server_frame(payload: bytes) -> bytes:
        n = len(payload)
        head = bytes((0x81, n)) if n < 126 else bytes((0x81, 126)) + n.to_bytes(2, "big")
        return head + payload
    stream = server_frame(b"a" * 10) + server_frame(b"b" * 300) + server_frame(b"c")
    frames, rest = parse_server_frames(stream[:50])
    assert [p for _, p in frames] == [b"a" * 10] and rest == stream[12:50]
    frames, rest = parse_server_frames(rest + stream[50:])
    assert [p for _, p in frames] == [b"b" * 300, b"c"] and rest == b""


def test_percentiles_count_missing_deliveries_as_late():
    ms = [i * 1_000_000 for i in range(1, 101)]
    p = percentiles(list(ms))
    assert (p["p50"], p["p99"], p["max"]) == (50.0, 99.0, 100.0)
    p = percentiles(list(ms), missing=5)  # 5 of 105 never arrived: p99 is one of them
    assert p["p50"] == 53.0 and p["p99"] is None and p["max"] is None


def test_report_reads_pyspy_and_renders(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("run (gevent/hub.py:10);send (gevent/_socket3.py:5) 30\n"
                   "run (gevent/hub.py:10);handle (chat/ws.py:99);loads (x.py:1) 10\n")
    top = report.pyspy_top(str(raw))
    assert top["samples"] == 40
    assert top["self"][0] == {"name": "send (gevent/_socket3.py)", "self_pct": 75.0,
                              "total_pct": 75.0}
    results = {"mode": "quick", "machine": {"nproc": 2}, "config": {}, "scenarios": {
        "pairs": {"ours_1w": {"best": {"rate": 100, "msgs_per_s": 100.0, "p50": 1.0,
                                       "p90": 2.0, "p99": 3.0, "max": 4.0, "cpu": {}},
                              "lost": 0, "profile": {"rate": 100, "top": top}},
                  "relay": {"best": {"rate": 400, "msgs_per_s": 400.0}, "lost": 0}}}}
    md = report.markdown(results)
    assert "| 1. pairs, 1 worker | ratio to bare relay | 0.25 |" in md
    readme = tmp_path / "README.md"
    readme.write_text("intro\n")
    assert report.update_readme(readme, md)
    assert report.update_readme(readme, md)
    assert readme.read_text().count(report.START) == 1


def _run_pairs(port: int, mode: str, users: list, rate: float, seconds: float) -> dict:
    spec = {"mode": mode, "scenario": "pairs", "host": "127.0.0.1", "port": port,
            "p99_ms": 10_000}
    loop = Loop("127.0.0.1", port)
    traffic = Traffic(spec, loop, CpuMeter({}))
    clients = [Client(uid, token) for uid, token in users]
    a, b = clients
    traffic.streams.append(Stream(0, a, 1, b.uid, [b]))
    traffic.streams.append(Stream(1, b, 1, a.uid, [a]))
    conn = traffic.connect(clients, concurrency=10, timeout=20, settle=0.2)
    assert conn["connected"] == 2, conn
    step = traffic.run_step(rate, seconds, drain=5)
    for cl in clients:
        loop.close(cl.conn, abort=False)
    return step


def test_pairs_step_against_the_chat_server(server, api):
    alice, bob = api("bench"), api("bench")
    alice.follow_each_other(bob)
    step = _run_pairs(server.port, "chat", [(alice.user_id, alice.token),
                                            (bob.user_id, bob.token)], rate=40, seconds=2)
    assert step["sent"] == 80
    assert step["acked"] == 80 and step["unacked"] == 0
    assert step["undelivered"] == 0 and step["deliveries"] == 80
    assert step["dups"] == step["ooo"] == step["errors"] == step["unexpected"] == 0
    assert step["p50"] is not None and step["p99"] is not None
    # The same content is stored as sent: the benchmark's messages are real messages.
    page = alice.get(f"/api/messages/{bob.user_id}?limit=5").json()["messages"]
    assert len(page) == 5 and all(m["content"].count(":") >= 3 for m in page)


def test_mixed_cycle_holds_the_issue_s_mix():
    # 20 messages (20 % replies, 10 % mentions) and one edit, recall and reaction each.
    assert cycle_counts() == {"plain": 14, "reply": 4, "mention": 2, "edit": 1, "recall": 1,
                              "reaction": 1}


def test_mixed_steps_against_the_chat_server(server, api):
    alice, bob = api("bench"), api("bench")
    alice.follow_each_other(bob)
    r = alice.post("/api/groups", json={"name": "bench pair"})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    assert alice.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    spec = {"mode": "chat", "scenario": "mixed", "host": "127.0.0.1", "port": server.port,
            "p99_ms": 10_000}
    loop = Loop("127.0.0.1", server.port)
    traffic = MixedTraffic(spec, loop, CpuMeter({}))
    a, b = clients = [Client(alice.user_id, alice.token), Client(bob.user_id, bob.token)]
    traffic.add_pair(a, b, gid)
    assert traffic.connect(clients, concurrency=10, timeout=20, settle=0.2)["connected"] == 2
    # One cycle per lane first: its replies and changes may find no acked target yet.
    first = traffic.run_step(46, 1, drain=5)
    assert first["acked"] == 46 and first["clean"], first
    # Two whole cycles per lane, every target acked by now: the exact mix.
    step = traffic.run_step(46, 2, drain=5)
    for cl in clients:
        loop.close(cl.conn, abort=False)
    assert step["substituted"] == 0
    assert step["sent"] == step["acked"] == 92 and step["unacked"] == 0
    assert step["messages_acked"] == step["deliveries"] == 80
    assert step["changes_acked"] == step["update_deliveries"] == 12
    assert step["undelivered"] == step["updates_undelivered"] == 0
    assert step["dups"] == step["ooo"] == step["errors"] == step["unexpected"] == 0
    assert step["p99"] is not None and step["update_p99"] is not None and step["clean"]
    # The server stored what was sent: replies, edits, recalls, reactions, mentions.
    page = alice.get(f"/api/messages/{bob.user_id}?limit=100").json()["messages"]
    assert sum(1 for m in page if m["reply_to"]) >= 8
    assert sum(1 for m in page if m["recalled"]) >= 4
    assert sum(1 for m in page if m["edited_at"] and not m["recalled"]) >= 4
    assert sum(1 for m in page if m["reactions"]) >= 4
    group = alice.get(f"/api/groups/{gid}/messages?limit=100").json()["messages"]
    assert len(group) >= 8 and all(m["mentions"] in ([alice.user_id], [bob.user_id])
                                   for m in group)


def test_report_gives_mixed_as_a_ratio_to_plain_pairs():
    best = {"rate": 80, "msgs_per_s": 80.0, "p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0,
            "cpu": {}, "messages_acked": 560, "changes_acked": 80, "update_p50": 1.0,
            "update_p99": 2.0, "updates_undelivered": 0, "substituted": 0}
    results = {"mode": "quick", "machine": {"nproc": 2}, "config": {}, "scenarios": {
        "pairs": {"ours_1w": {"best": {"rate": 100, "msgs_per_s": 100.0}, "lost": 0}},
        "mixed": {"ours_1w": {"best": best, "lost": 0, "cycle": cycle_counts(),
                              "pairs_msgs_per_s": 100.0, "ratio_to_pairs": 0.8}}}}
    rows = {r["metric"]: r for r in report.summary(results)
            if r["scenario"].startswith("1. mixed")}
    assert rows["ratio to plain pairs, 1 worker (same run)"]["ours"] == 0.8
    assert rows["ratio to plain pairs, 1 worker (same run)"]["pass"] is True
    md = report.markdown(results)
    assert "| mixed | ours_1w | 80 items/s | 80 items/s |" in md
    results["scenarios"]["mixed"]["ours_1w"]["lost"] = 1  # a lost update fails the target
    assert not [r for r in report.summary(results) if r["pass"] is True
                and r["scenario"].startswith("1. mixed")]


def test_pairs_step_against_the_bare_relay():
    port = free_port()
    env = {**os.environ, "CHAT_BIND": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                             str(ROOT / "bench" / "relay_gunicorn.conf.py"),
                             "bench.relay_app:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert orjson.loads(r.read())["ok"]
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, "relay did not start"
                time.sleep(0.1)
        step = _run_pairs(port, "relay", [(101, ""), (102, "")], rate=100, seconds=1.5)
        assert step["sent"] == step["acked"] == step["deliveries"] == 150
        assert step["undelivered"] == step["dups"] == step["ooo"] == step["errors"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_text_frame_round_trips_json():
    frame = text_frame(orjson.dumps({"type": 1, "content": "héllo"}))
    _, body = _unmask_client_frame(frame)
    assert orjson.loads(body) == {"type": 1, "content": "héllo"}
