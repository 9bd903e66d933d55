"""nginx in front of three processes, with the repository's own deploy/nginx.conf.

No sticky sessions: users' sockets and HTTP calls land on any process; messages,
updates and notices cross; one process stopped with SIGTERM mid-traffic closes its
sockets with 1001, its clients reconnect through nginx and ``sync``, and every
client ends holding every acked message of its conversations, once, in order. The
same run again with SIGKILL: no close frame, no goodbye, the same outcome.
"""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
import websocket

from bench.nginx import CONF, NGINX, Nginx
from tests.conftest import mysql_env
from tests.support import WS, Api, ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_quotes_deploy_nginx_conf_exactly():
    """The documented configuration is the tested one."""
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"```nginx\n(.*?)```", readme, re.S) == [CONF.read_text()]


@pytest.fixture(scope="module")
def cluster(mysql_url, redis_prefix):
    """Three processes sharing MariaDB and Redis, nginx in front."""
    if not os.path.exists(NGINX):
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required under CI (.ci/run installs it)")
        pytest.skip("nginx is not installed")
    env = mysql_env(mysql_url, redis_prefix, CHAT_RATE_PER_MINUTE=100000,
                    CHAT_TRUSTED_PROXIES=1)
    procs = [ServerProcess(env) for _ in range(3)]
    starting = [threading.Thread(target=p.start) for p in procs]  # in parallel: CI time
    [t.start() for t in starting]
    [t.join() for t in starting]
    for p in procs:
        assert p.proc is not None and p.proc.poll() is None, p.log()
    nginx = Nginx([p.port for p in procs])
    yield nginx, procs
    nginx.stop()
    for p in procs:
        p.stop()


def connections(proc: ServerProcess) -> int:
    """Live sockets of one process, from its /metrics (loopback may read it)."""
    text = requests.get(proc.base + "/metrics", timeout=5).text
    return int(float(re.search(r"^chat_connections (\S+)$", text, re.M).group(1)))


def placed(procs: list[ServerProcess], open_socket) -> tuple[WS, int]:
    """Open a socket through nginx and tell which process took it."""
    before = [connections(p) for p in procs]
    ws = open_socket()
    after = [connections(p) for p in procs]
    [index] = [i for i, (a, b) in enumerate(zip(before, after)) if b == a + 1]
    return ws, index


class Closed(Exception):
    """The server closed the socket (``code``: the close frame's status)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


def next_frame(ws: WS, timeout: float = 20) -> dict:
    """The next JSON frame; ``Closed`` with the close code when the server closes."""
    if ws.buffer:
        return ws.buffer.pop(0)
    ws.sock.settimeout(timeout)
    while True:
        try:
            opcode, data = ws.sock.recv_data(control_frame=True)
        except websocket.WebSocketConnectionClosedException:
            raise Closed(None) from None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise Closed(int.from_bytes(data[:2], "big") if len(data) >= 2 else None)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return json.loads(data)


def test_nginx_spreads_users_and_everything_crosses(cluster):
    nginx, procs = cluster
    assert requests.get(nginx.base + "/metrics", timeout=5).status_code == 404
    owner, member = Api.new_user(nginx.base, "own"), Api.new_user(nginx.base, "mem")
    owner.follow_each_other(member)
    o, o_at = placed(procs, lambda: WS(nginx.ws_url, owner.token))
    m, m_at = placed(procs, lambda: WS(nginx.ws_url, member.token))
    assert o_at != m_at  # no stickiness: the second user went elsewhere
    time.sleep(0.3)  # subscriptions settle
    # A notice made by an HTTP call (landing on whichever process) reaches the member.
    gid = owner.post("/api/groups", json={"name": "balanced"}).json()["id"]
    owner.put(f"/api/groups/{gid}/members/{member.user_id}")
    assert m.expect("notice")["notice"] == "group_added"
    time.sleep(0.3)
    pm = o.request({"type": 1, "recipient_id": member.user_id, "content": "hi"}, "ack")
    assert m.expect("message")["id"] == pm["id"]
    gm = o.request({"type": 4, "recipient_id": gid, "content": "draft"}, "ack")
    assert m.expect("message")["id"] == gm["id"]
    o.request({"type": 8, "message_id": gm["id"], "content": "final"}, "ack")
    assert m.expect("update", update="edit")["content"] == "final"
    for ws in (o, m):
        ws.close()
    # HTTP calls landed on more than one process too (nginx's log names the upstream),
    # and the log holds no query string (a /ws?token=... must not be written down).
    requests.get(nginx.base + "/ws?token=not-for-the-log", timeout=5)
    log = nginx.access_log()
    upstreams = set(re.findall(r'"(?:GET|POST|PUT|DELETE) /api/\S*" \d+ \d+ \S+ (\S+)', log))
    assert len(upstreams) >= 2, log[-2000:]
    assert "/ws" in log and "not-for-the-log" not in log


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_process_stopped_mid_traffic_loses_nothing_acked(cluster, how):
    nginx, procs = cluster
    victim = procs[0]
    if victim.proc is None or victim.proc.poll() is not None:
        victim.start()  # the previous run stopped it; nginx takes it back on its port
    people = [Api.new_user(nginx.base, f"b{i}") for i in range(6)]
    for i, a in enumerate(people):
        for b in people[i + 1:]:
            a.follow_each_other(b)
    gid = people[0].post("/api/groups", json={"name": "stop one"}).json()["id"]
    for u in people[1:]:
        people[0].put(f"/api/groups/{gid}/members/{u.user_id}")
    # nginx keeps away from a process it saw fail for fail_timeout (5 s, deploy/nginx.conf):
    # after the previous run stopped the victim, place the sockets again until it takes some.
    give_up = time.time() + 20
    while True:
        deadline = time.time() + 10  # the last sockets are gone (placed() counts)
        while sum(connections(p) for p in procs) and time.time() < deadline:
            time.sleep(0.1)
        first: dict[int, WS] = {}
        on_victim = []
        for u in people:
            first[u.user_id], at = placed(procs, lambda: WS(nginx.ws_url, u.token))
            if at == 0:
                on_victim.append(u.user_id)
        if on_victim or time.time() > give_up:
            break
        for ws in first.values():
            ws.close()
        time.sleep(1)
    assert on_victim, "nginx left the first process without sockets"
    time.sleep(0.5)

    per_client = 40
    acked: dict[int, dict] = {}
    held: dict[int, set[int]] = {u.user_id: set() for u in people}
    close_codes: list[int] = []
    lock = threading.Lock()
    halfway = threading.Event()
    errors: list[BaseException] = []

    def take_live(user_id: int, stream: list[dict]) -> None:
        """One socket's messages: each once, in id order per conversation."""
        ids = [f["id"] for f in stream]
        assert len(ids) == len(set(ids)), "a message arrived twice on one socket"
        by_conv: dict[tuple, list[int]] = {}
        for f in stream:
            key = (("g", f["group_id"]) if f["group_id"] is not None
                   else ("p", *sorted((f["sender_id"], f["recipient_id"]))))
            by_conv.setdefault(key, []).append(f["id"])
        for key, got in by_conv.items():
            assert got == sorted(got), f"{key} out of order"
        held[user_id].update(ids)

    def sync(ws: WS, user_id: int) -> None:
        cursor = max(held[user_id], default=0)
        while True:
            page = ws.request({"type": 7, "since_id": cursor, "limit": 1000}, "sync")
            held[user_id].update(m["id"] for m in page["messages"])
            if not page["has_more"]:
                return
            cursor = page["messages"][-1]["id"]

    def reconnect(user: Api) -> WS:
        deadline = time.time() + 20
        while True:
            try:
                return WS(nginx.ws_url, user.token)
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def run(user: Api, index: int) -> None:
        ws, stream = first[user.user_id], []
        others = [p for p in people if p is not user]
        try:
            n = tries = 0
            while n < per_client:
                if n % 3 == 0:
                    frame = {"type": 4, "recipient_id": gid}
                else:
                    frame = {"type": 1, "recipient_id": others[n % len(others)].user_id}
                content = f"{user.user_id}-{n}"
                tries += 1
                assert tries < 30, f"{content} never acked"
                try:
                    ws.send({**frame, "content": content, "client_id": content})
                    while True:
                        f = next_frame(ws)
                        if f["kind"] == "message":
                            stream.append(f)
                        elif f["kind"] == "ack" and f.get("client_id") == content:
                            with lock:
                                acked[f["id"]] = {**f, "sender_id": user.user_id}
                            held[user.user_id].add(f["id"])
                            break
                        elif f["kind"] == "error" and f["error"] == "server_busy":
                            continue  # the process is stopping: its close frame follows
                        elif f["kind"] == "error":
                            raise AssertionError(f)
                except (Closed, websocket.WebSocketException, ConnectionError) as exc:
                    with lock:
                        close_codes.append(getattr(exc, "code", None))
                    take_live(user.user_id, stream)
                    ws.close()
                    ws, stream = reconnect(user), []
                    sync(ws, user.user_id)
                    continue  # the same frame again, same client_id: stored once at most
                n, tries = n + 1, 0
                if len(acked) >= per_client * len(people) // 3:
                    halfway.set()
            # What was still on its way.
            end = time.time() + 2
            while time.time() < end:
                try:
                    f = next_frame(ws, timeout=0.5)
                except websocket.WebSocketTimeoutException:
                    continue
                if f["kind"] == "message":
                    stream.append(f)
            take_live(user.user_id, stream)
            sync(ws, user.user_id)
            ws.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(u, i)) for i, u in enumerate(people)]
    [t.start() for t in threads]
    assert halfway.wait(60)
    victim.signal(how)
    [t.join(90) for t in threads]
    assert not errors, errors
    assert victim.proc.wait(20) is not None
    if how == signal.SIGTERM:
        # The stopped process's sockets were closed with 1001 ("going away").
        assert close_codes.count(1001) >= len(on_victim), close_codes
    else:
        # Killed: no close frame reached anyone, yet every client on it noticed.
        assert 1001 not in close_codes and len(close_codes) >= len(on_victim), close_codes
    for u in people:
        visible = {i for i, a in acked.items()
                   if a["group_id"] == gid or a["recipient_id"] == u.user_id
                   or a["sender_id"] == u.user_id}
        missing = visible - held[u.user_id]
        assert not missing, f"user {u.user_id} misses {sorted(missing)[:10]}"
        assert held[u.user_id] <= set(acked), "a message stored twice or never acked"
    assert len(acked) == per_client * len(people)
