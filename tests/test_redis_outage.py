"""Redis stopped and started again mid-traffic, on a Redis of the test's own.

While Redis is down: messages are still stored, acked and delivered within the
process; users on other processes get them through ``sync``; the stranger rule
is answered from the database; logins keep their brake (per process). When Redis
is back, every process's listener reconnects and resubscribes by itself.
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.services import PrivateRedis
from tests.support import PASSWORD, WS, Api, ServerProcess, need


@pytest.fixture
def redis_and_two(mysql_url):
    need(PrivateRedis.available(), "redis-server (to start a private Redis)")
    redis = PrivateRedis().start()
    env = {"DATABASE_URL": mysql_url, "REDIS_URL": redis.url, "CHAT_REDIS_PREFIX": "outage:"}
    procs = [ServerProcess(env).start(), ServerProcess(env).start()]
    yield redis, procs
    for p in procs:
        p.stop()
    redis.stop()


def wait_health(base: str, status: int, redis: str, timeout: float = 30) -> dict:
    """Poll /healthz until it answers ``status`` with ``"redis": redis``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(base + "/healthz", timeout=5)
        if r.status_code == status and r.json()["redis"] == redis:
            return r.json()
        time.sleep(0.2)
    raise AssertionError(f"/healthz never answered {status} {redis}: {r.status_code} {r.text}")


def test_chat_goes_on_through_a_redis_outage(redis_and_two):
    redis, (p1, p2) = redis_and_two
    alice, bob, carol = (Api.new_user(p1.base, s) for s in ("alice", "bob", "carol"))
    alice.follow_each_other(bob)
    alice.follow_each_other(carol)
    a, c = WS(p1.ws_url, alice.token), WS(p1.ws_url, carol.token)
    b = WS(p2.ws_url, bob.token)
    time.sleep(0.3)
    before = a.request({"type": 1, "recipient_id": bob.user_id, "content": "before"}, "ack")
    last_seen_by_bob = b.expect("message")["id"]
    assert last_seen_by_bob == before["id"]

    redis.stop()
    # Chat still works without Redis: the node stays in the balancer, reporting it.
    health = wait_health(p1.base, 200, "down")
    assert health["db"] == "ok"
    same = a.request({"type": 1, "recipient_id": carol.user_id, "content": "same process"},
                     "ack")
    assert c.expect("message")["id"] == same["id"]
    across = a.request({"type": 1, "recipient_id": bob.user_id, "content": "other process"},
                       "ack")
    assert isinstance(across["id"], int)
    # The stranger rule is answered from the database meanwhile.
    dave = Api.new_user(p1.base, "dave")
    d = WS(p1.ws_url, dave.token)
    for i in range(3):
        assert d.request({"type": 1, "recipient_id": alice.user_id, "content": f"hi {i}"},
                         "ack")
    assert d.request({"type": 1, "recipient_id": alice.user_id, "content": "4th"},
                     "error")["error"] == "stranger_limit"
    # Logins work, and wrong passwords are still braked.
    assert requests.post(p1.base + "/api/tokens", json={"username": alice.username,
                                                        "password": PASSWORD}).status_code == 201
    for _ in range(10):
        requests.post(p1.base + "/api/tokens", json={"username": carol.username,
                                                     "password": "wrong-password"})
    assert requests.post(p1.base + "/api/tokens", json={"username": carol.username,
                                                        "password": PASSWORD}).status_code == 429

    redis.start()
    wait_health(p1.base, 200, "ok")
    wait_health(p2.base, 200, "ok")
    time.sleep(1.5)  # listeners resubscribe
    # bob catches up on what crossed nothing while Redis was down...
    synced = b.request({"type": 7, "since_id": last_seen_by_bob}, "sync")
    assert across["id"] in [m["id"] for m in synced["messages"]]
    # ...and live delivery across processes is back.
    after = a.request({"type": 1, "recipient_id": bob.user_id, "content": "after"}, "ack")
    assert b.expect("message", id=after["id"])
    assert after["online"] is True
    for ws in (a, b, c, d):
        ws.close()


class CatchingUpClient:
    """A client as the protocol asks: it keeps the largest id it saw and answers a
    ``catch_up`` frame with ``sync`` from there (paging while ``has_more``)."""

    def __init__(self, ws: WS) -> None:
        self.ws = ws
        self.seen: set[int] = set()
        self.last = ws.hello["last_id"]
        self.catch_ups = 0

    def pump(self, seconds: float) -> None:
        """Read frames for ``seconds``, catching up whenever told to."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                frame = self.ws.recv(timeout=max(0.05, deadline - time.time()))
            except Exception:
                break
            self.take(frame)

    def take(self, frame: dict) -> None:
        if frame["kind"] == "message":
            self.seen.add(frame["id"])
            self.last = max(self.last, frame["id"])
        elif frame["kind"] == "catch_up":
            self.catch_ups += 1
            self.ws.send({"type": 7, "since_id": self.last})
        elif frame["kind"] == "sync":
            for m in frame["messages"]:
                self.seen.add(m["id"])
                self.last = max(self.last, m["id"])
            if frame["has_more"]:
                self.ws.send({"type": 7, "since_id": self.last})


def test_a_redis_blip_tells_clients_to_catch_up_and_nothing_acked_is_missing(redis_and_two):
    """Receivers on the other process never reconnect, yet end with every acked message."""
    redis, (p1, p2) = redis_and_two
    sender = Api.new_user(p1.base, "sender")
    readers = [Api.new_user(p1.base, f"r{i}") for i in range(3)]
    for reader in readers:
        sender.follow_each_other(reader)
    out = WS(p1.ws_url, sender.token)
    clients = [CatchingUpClient(WS(p2.ws_url, r.token)) for r in readers]
    time.sleep(0.3)
    acked: dict[int, set[int]] = {r.user_id: set() for r in readers}

    def send_round(tag: str) -> None:
        for reader in readers:
            ack = out.request({"type": 1, "recipient_id": reader.user_id,
                               "content": f"{tag} to {reader.user_id}"}, "ack")
            acked[reader.user_id].add(ack["id"])
        for client in clients:
            client.pump(0.05)

    for n in range(5):
        send_round(f"before {n}")
    redis.stop()
    wait_health(p2.base, 200, "down")
    for n in range(10):
        send_round(f"during {n}")
    redis.start()
    wait_health(p2.base, 200, "ok")
    for n in range(5):
        send_round(f"after {n}")
    for client in clients:
        client.pump(2.0)
    for reader, client in zip(readers, clients):
        assert client.catch_ups >= 1, "the process never told its clients to catch up"
        missing = acked[reader.user_id] - client.seen
        assert not missing, f"reader {reader.user_id} lacks {sorted(missing)}"
    for ws in (out, *[c.ws for c in clients]):
        ws.close()


def test_a_member_removed_while_redis_was_down_stops_getting_the_group(redis_and_two):
    """The membership event of a removal made during the outage never reached the other
    process; once Redis is back, that process reads its users' groups again, so the
    removed member's open socket stops getting the group's messages (and one who joined
    meanwhile starts)."""
    redis, (p1, p2) = redis_and_two
    owner, bob, cleo = (Api.new_user(p1.base, s) for s in ("owner", "bob", "cleo"))
    gid = owner.post("/api/groups", json={"name": "outage club"}).json()["id"]
    assert bob.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code in (200, 201)
    b, c = WS(p2.ws_url, bob.token), WS(p2.ws_url, cleo.token)
    time.sleep(0.3)
    owner.post("/api/messages", json={"group_id": gid, "content": "before"})
    assert b.expect("message", group_id=gid)["content"] == "before"

    redis.stop()
    wait_health(p2.base, 200, "down")
    assert owner.delete(f"/api/groups/{gid}/members/{bob.user_id}").status_code in (200, 204)
    assert cleo.put(f"/api/groups/{gid}/members/{cleo.user_id}").status_code in (200, 201)
    redis.start()
    wait_health(p2.base, 200, "ok")
    wait_health(p1.base, 200, "ok")
    time.sleep(1.0)  # the catch_up, then the groups read again a tenth of a second later
    owner.post("/api/messages", json={"group_id": gid, "content": "after"})
    assert c.expect("message", group_id=gid, content="after")
    b.nothing("message", wait=1.5)
    b.close()
    c.close()
