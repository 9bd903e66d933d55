"""Several server processes, one chat: everything crosses processes through Redis."""
from __future__ import annotations

import random
import signal
import threading
import time

import pytest
import websocket

from tests.conftest import mysql_env
from tests.support import WS, Api, ServerProcess


@pytest.fixture(scope="module")
def two(mysql_url, redis_prefix):
    """Two processes sharing MariaDB and Redis (like two machines behind a balancer)."""
    env = mysql_env(mysql_url, redis_prefix, CHAT_RATE_PER_MINUTE=100000)
    procs = [ServerProcess(env).start(), ServerProcess(env).start()]
    yield procs
    for p in procs:
        p.stop()


def conversation(frame: dict) -> tuple:
    """The conversation a message frame belongs to."""
    if frame["group_id"] is not None:
        return ("g", frame["group_id"])
    return ("p", *sorted((frame["sender_id"], frame["recipient_id"])))


def users(base, n, mutual=True):
    people = [Api.new_user(base, f"u{i}") for i in range(n)]
    if mutual:
        for i, a in enumerate(people):
            for b in people[i + 1:]:
                a.follow_each_other(b)
    return people


def test_private_message_crosses_processes_with_the_right_online_flag(two):
    p1, p2 = two
    alice, bob = users(p1.base, 2)
    a = WS(p1.ws_url, alice.token)
    a_other = WS(p2.ws_url, alice.token)  # alice's phone, on the other process
    b = WS(p2.ws_url, bob.token)
    time.sleep(0.3)  # subscriptions settle
    ack = a.request({"type": 1, "recipient_id": bob.user_id, "content": "across",
                     "client_id": "x"}, "ack")
    assert ack["online"] is True
    assert b.expect("message")["id"] == ack["id"]
    assert a_other.expect("message")["id"] == ack["id"]
    b.close()
    time.sleep(0.5)
    ack = a.request({"type": 1, "recipient_id": bob.user_id, "content": "gone?"}, "ack")
    assert ack["online"] is False
    for ws in (a, a_other):
        ws.close()


def test_group_read_typing_and_notices_cross_processes(two):
    p1, p2 = two
    owner, m1, m2 = users(p1.base, 3)
    gid = owner.post("/api/groups", json={"name": "x-proc"}).json()["id"]
    m1.put(f"/api/groups/{gid}/members/{m1.user_id}")
    o = WS(p1.ws_url, owner.token)
    s1 = WS(p2.ws_url, m1.token)
    s2 = WS(p2.ws_url, m2.token)
    time.sleep(0.3)
    # A notice from process 1's action reaches m2 on process 2, and so do the group's messages.
    owner.put(f"/api/groups/{gid}/members/{m2.user_id}")
    assert s2.expect("notice")["notice"] == "group_added"
    time.sleep(0.3)
    ack = o.request({"type": 4, "recipient_id": gid, "content": "hello all"}, "ack")
    assert s1.expect("message")["id"] == ack["id"]
    assert s2.expect("message")["id"] == ack["id"]
    s1.send({"type": 6, "recipient_id": gid, "group": True})
    assert o.expect("typing")["user_id"] == m1.user_id
    assert s2.expect("typing")["user_id"] == m1.user_id
    # A private read receipt crosses too.
    pm = o.request({"type": 1, "recipient_id": m1.user_id, "content": "pm"}, "ack")
    s1.expect("message")
    s1.send({"type": 5, "recipient_id": owner.user_id, "last_read_id": pm["id"]})
    assert o.expect("read")["last_read_id"] == pm["id"]
    # And a follow notice, made on the other process (a new follower: a follow again
    # within the hour makes none).
    fan = Api.new_user(p2.base, "fan")
    fan.put(f"/api/users/{owner.user_id}/follow")
    assert o.expect("notice")["actor_id"] == fan.user_id
    for ws in (o, s1, s2):
        ws.close()


def test_edits_reactions_and_recalls_cross_processes_live_and_in_sync(two):
    """An update made on one process (by frame or by HTTP) reaches members on the other."""
    p1, p2 = two
    owner, member = users(p1.base, 2)
    gid = owner.post("/api/groups", json={"name": "x-proc updates"}).json()["id"]
    member.put(f"/api/groups/{gid}/members/{member.user_id}")
    o = WS(p1.ws_url, owner.token)
    m = WS(p2.ws_url, member.token)
    time.sleep(0.3)
    sent = o.request({"type": 4, "recipient_id": gid, "content": "draft"}, "ack")
    assert m.expect("message")["id"] == sent["id"]
    edit = o.request({"type": 8, "message_id": sent["id"], "content": "final"}, "ack")
    seen = m.expect("update", update="edit")
    assert (seen["id"], seen["message_id"], seen["content"]) == (edit["id"], sent["id"], "final")
    # The member reacts over HTTP on process 2; the owner on process 1 sees it live.
    answer = member.put(f"/api/messages/{sent['id']}/reactions/%F0%9F%91%8D")
    assert answer.status_code == 200
    reaction = o.expect("update", update="reaction")
    assert reaction["reactions"] == [{"emoji": "\U0001f44d", "count": 1,
                                      "user_ids": [member.user_id]}]
    recall = o.request({"type": 9, "message_id": sent["id"]}, "ack")
    assert m.expect("update", update="recall")["id"] == recall["id"]
    # A device of the member that was away gets the same, in id order, from sync.
    synced = WS(p2.ws_url, member.token).request(
        {"type": 7, "since_id": sent["id"] - 1, "limit": 50}, "sync")
    assert [u["update"] for u in synced["updates"]] == ["edit", "reaction", "recall"]
    assert synced["messages"][0]["recalled"] is True and synced["messages"][0]["content"] == ""
    for ws in (o, m):
        ws.close()


def test_hammering_two_processes_then_sync_gives_every_acked_message_once(two):
    """Clients on both processes send at once; after reconnect + sync each holds all, once."""
    p1, p2 = two
    people = users(p1.base, 6)
    gid = people[0].post("/api/groups", json={"name": "hammer"}).json()["id"]
    for u in people[1:]:
        u.put(f"/api/groups/{gid}/members/{u.user_id}")
    procs = [p1, p2]
    per_client = 150
    acked: dict[int, dict] = {}
    own: dict[int, list[int]] = {u.user_id: [] for u in people}
    live: dict[int, list[int]] = {u.user_id: [] for u in people}
    conversation_of: dict[int, tuple] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    sockets = {u.user_id: WS(procs[i % 2].ws_url, u.token) for i, u in enumerate(people)}
    time.sleep(0.5)

    def run(user: Api):
        ws = sockets[user.user_id]
        rng = random.Random(user.user_id)
        try:
            for n in range(per_client):
                if rng.random() < 0.3:
                    frame = {"type": 4, "recipient_id": gid}
                else:
                    other = rng.choice([p for p in people if p is not user])
                    frame = {"type": 1, "recipient_id": other.user_id}
                ws.send({**frame, "content": f"{user.user_id}-{n}", "client_id": f"c{n}"})
            got = 0
            deadline = time.time() + 60
            while got < per_client and time.time() < deadline:
                f = ws.recv(timeout=30)
                if f["kind"] == "ack":
                    got += 1
                    with lock:
                        acked[f["id"]] = f
                    own[user.user_id].append(f["id"])
                elif f["kind"] == "message":
                    live[user.user_id].append(f["id"])
                    conversation_of[f["id"]] = conversation(f)
                elif f["kind"] == "error":
                    raise AssertionError(f)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(u,)) for u in people]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    assert len(acked) == per_client * len(people)
    time.sleep(1)
    # Drain what was still on its way, then disconnect.
    for u in people:
        ws = sockets[u.user_id]
        while True:
            try:
                f = ws.recv(timeout=0.5)
            except websocket.WebSocketTimeoutException:
                break
            if f["kind"] == "message":
                live[u.user_id].append(f["id"])
                conversation_of[f["id"]] = conversation(f)
        ws.close()
    for u in people:
        seen = live[u.user_id]
        assert len(seen) == len(set(seen)), "a message arrived twice live"
        # Within each conversation, live messages came in id order, across both processes.
        by_conversation: dict[tuple, list[int]] = {}
        for i in seen:
            by_conversation.setdefault(conversation_of[i], []).append(i)
        for conv, ids in by_conversation.items():
            assert ids == sorted(ids), f"user {u.user_id} got {conv} out of order"
        since = max(seen) if seen else 0
        ws = WS(procs[(u.user_id + 1) % 2].ws_url, u.token)
        synced: list[int] = []
        cursor = since
        while True:
            page = ws.request({"type": 7, "since_id": cursor, "limit": 1000}, "sync")
            synced += [m["id"] for m in page["messages"]]
            if not page["has_more"]:
                break
            cursor = page["messages"][-1]["id"]
        ws.close()
        assert len(synced) == len(set(synced)) and all(i > since for i in synced)
        # What the client holds: what it sent (acked), what came live, what sync brought.
        held = set(own[u.user_id]) | set(seen) | set(synced)
        visible = {i for i, a in acked.items()
                   if a["group_id"] == gid or a["recipient_id"] == u.user_id} | set(own[u.user_id])
        missing = visible - held
        assert not missing, f"user {u.user_id} misses {sorted(missing)[:10]}"
        assert held <= set(acked), "a message nobody acked appeared"


def test_sigterm_closes_sockets_with_1001_at_once_and_loses_no_acked_message(mysql_url,
                                                                               redis_prefix):
    env = mysql_env(mysql_url, redis_prefix, CHAT_RATE_PER_MINUTE=100000)
    proc = ServerProcess(env, kind="gunicorn", workers=1).start()
    alice, bob = users(proc.base, 2)
    a = websocket.create_connection(proc.ws_url, header=[f"Authorization: Bearer {alice.token}"],
                                    timeout=30)
    b = websocket.create_connection(proc.ws_url, header=[f"Authorization: Bearer {bob.token}"],
                                    timeout=30)
    a.recv(), b.recv()
    acks: list[int] = []
    stop = threading.Event()

    def send_forever():
        n = 0
        while not stop.is_set():
            try:
                a.send(f'{{"type":1,"recipient_id":{bob.user_id},"content":"m{n}",'
                       f'"client_id":"k{n}"}}')
                n += 1
                time.sleep(0.002)
            except Exception:
                return

    sender = threading.Thread(target=send_forever)
    sender.start()
    time.sleep(1.0)
    started = time.time()
    proc.signal(signal.SIGTERM)
    close_code = None
    import json
    while True:
        try:
            opcode, data = a.recv_data(control_frame=True)
        except Exception:
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            close_code = int.from_bytes(data[:2], "big")
            break
        if opcode == websocket.ABNF.OPCODE_TEXT:
            frame = json.loads(data)
            if frame["kind"] == "ack":
                acks.append(frame["id"])
    took = time.time() - started
    stop.set()
    sender.join()
    assert close_code == 1001
    assert took < 8, f"sockets were closed only after {took:.1f}s"
    proc.proc.wait(30)
    assert acks, "nothing was acked before the shutdown"
    # Every acked message is stored (read through a fresh server).
    again = ServerProcess(env).start()
    try:
        stored = set()
        cursor = 0
        reader = Api(again.base, bob.token)
        while True:
            page = reader.get("/api/sync", params={"since_id": cursor, "limit": 1000}).json()
            stored |= {m["id"] for m in page["messages"]}
            if not page["has_more"]:
                break
            cursor = page["messages"][-1]["id"]
        assert set(acks) <= stored
    finally:
        again.stop()
