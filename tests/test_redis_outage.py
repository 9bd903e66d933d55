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


def wait_health(base: str, status: int, timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(base + "/healthz", timeout=5)
        if r.status_code == status:
            return r.json()
        time.sleep(0.2)
    raise AssertionError(f"/healthz never answered {status}: {r.status_code} {r.text}")


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
    health = wait_health(p1.base, 503)
    assert health["redis"] == "down" and health["db"] == "ok"
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
    wait_health(p1.base, 200)
    wait_health(p2.base, 200)
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
