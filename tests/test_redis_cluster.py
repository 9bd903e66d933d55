"""The chat on a Redis Cluster: 3 masters + 3 replicas of its own, on loopback ports.

Two server processes share the cluster (``REDIS_URL=redis+cluster://...``): the
cross-process suite of ``test_scaleout`` runs on it unchanged, the bus uses
sharded pub/sub (SPUBLISH, at most one per channel with a listener elsewhere),
the stores' keys and scripts stay within one slot, and a master SIGKILLed
mid-traffic is replaced by its replica while clients catch up and lose nothing.
"""
from __future__ import annotations

import shutil
import time
import uuid

import pytest
import requests

from tests.redis_cluster import RedisCluster
from tests.support import WS, ServerProcess, need
from tests.test_redis_outage import CatchingUpClient
from tests.test_scaleout import (  # noqa: F401 - collected here, on the cluster's ``two``
    test_edits_reactions_and_recalls_cross_processes_live_and_in_sync,
    test_group_read_typing_and_notices_cross_processes,
    test_hammering_two_processes_then_sync_gives_every_acked_message_once,
    test_private_message_crosses_processes_with_the_right_online_flag,
    users,
)


@pytest.fixture(scope="module")
def cluster():
    need(shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None,
         "redis-server and redis-cli (to start a private Redis Cluster)")
    nodes = RedisCluster()
    try:
        yield nodes.create()
    finally:
        nodes.stop()


def cluster_env(mysql_url: str, cluster: RedisCluster, **extra) -> dict:
    """Server environment on MariaDB and the cluster, with a key prefix of its own."""
    return {"DATABASE_URL": mysql_url, "REDIS_URL": cluster.url,
            "CHAT_REDIS_PREFIX": f"cl-{uuid.uuid4().hex[:6]}:",
            **{k: str(v) for k, v in extra.items()}}


@pytest.fixture(scope="module")
def two(mysql_url, cluster):
    """Two processes on one MariaDB and the cluster (what ``test_scaleout``'s tests use)."""
    env = cluster_env(mysql_url, cluster, CHAT_RATE_PER_MINUTE=100000)
    procs = [ServerProcess(env).start(), ServerProcess(env).start()]
    yield procs
    for p in procs:
        p.stop()


def test_health_reports_the_cluster_bus_up(two):
    for proc in two:
        body = requests.get(proc.base + "/healthz", timeout=5).json()
        assert (body["redis"], body["bus"]) == ("ok", "ok"), proc.log()


def test_spublish_count_per_message_and_no_plain_publish(mysql_url, cluster):
    """The figure, on two fresh processes (no other test's users going offline meanwhile):
    a message costs one SPUBLISH per channel another process listens to (bob's or the
    group's; none when the recipient is on the sender's process: the sender's own channel
    has no listener elsewhere), plus its batch's notice (here each message is a batch of
    its own; under load one notice serves a whole batch); plain PUBLISH, which a cluster
    copies to every node, never."""
    env = cluster_env(mysql_url, cluster, CHAT_RATE_PER_MINUTE=100000)
    p1, p2 = ServerProcess(env).start(), ServerProcess(env).start()
    try:
        count_spublish(p1, p2, cluster)
    finally:
        p1.stop()
        p2.stop()


def count_spublish(p1: ServerProcess, p2: ServerProcess, cluster: RedisCluster) -> None:
    alice, bob, carol = users(p1.base, 3)
    gid = alice.post("/api/groups", json={"name": "count"}).json()["id"]
    bob.put(f"/api/groups/{gid}/members/{bob.user_id}")
    a, c = WS(p1.ws_url, alice.token), WS(p1.ws_url, carol.token)
    b = WS(p2.ws_url, bob.token)
    time.sleep(0.5)
    a.request({"type": 1, "recipient_id": bob.user_id, "content": "warm-up"}, "ack")
    b.expect("message")
    time.sleep(1.5)  # the online notices of the three, published once, are behind us
    rounds = 20
    cluster.reset_stats()
    for n in range(rounds):
        ack = a.request({"type": 1, "recipient_id": bob.user_id, "content": f"b{n}"}, "ack")
        assert b.expect("message")["id"] == ack["id"]
    across = cluster.commandstats("spublish")
    cluster.reset_stats()
    for n in range(rounds):
        ack = a.request({"type": 1, "recipient_id": carol.user_id, "content": f"c{n}"}, "ack")
        assert c.expect("message")["id"] == ack["id"]
    local = cluster.commandstats("spublish")
    cluster.reset_stats()
    for n in range(rounds):
        ack = a.request({"type": 4, "recipient_id": gid, "content": f"g{n}"}, "ack")
        assert b.expect("message")["id"] == ack["id"]
    group = cluster.commandstats("spublish")
    plain = cluster.commandstats("publish")
    print(f"\nSPUBLISH per message: across {across / rounds:.2f}, same process "
          f"{local / rounds:.2f}, group {group / rounds:.2f}; PUBLISH {plain}")
    # Other events of these users that fall in a window (presence or attention updates)
    # add a few calls now and then, hence bounds rather than equalities.
    assert 2 * rounds <= across <= 2.5 * rounds  # bob's channel + the notice
    assert rounds <= local <= 1.5 * rounds  # the notice only
    assert 2 * rounds <= group <= 2.5 * rounds  # the group's channel + the notice
    assert plain == 0, "plain PUBLISH on a cluster is broadcast to every node"
    for ws in (a, b, c):
        ws.close()


def test_store_keys_and_scripts_work_on_the_cluster(cluster):
    """Counters (MGET over many slots), slots, presence, flood leases and tickets."""

    import gevent

    from chat.store.counters import RedisCounters, stranger_key
    from chat.store.flood import RedisFloodStore
    from chat.store.presence import RedisPresence
    from chat.store.tickets import RedisTickets

    prefix = f"unit-{uuid.uuid4().hex[:6]}:"
    counters = RedisCounters(cluster.url, prefix)
    keys = [stranger_key(s, r) for s in range(1, 8) for r in range(1, 4)]
    assert counters.incr_many(keys, 60) == [1] * len(keys)
    assert counters.get_many(keys + ["absent"]) == [1] * len(keys) + [0]
    assert counters.incr_existing_many([keys[0], "absent"], 60) == [2, None]
    counters.seed_many({"absent": (5, 1), keys[1]: (9, 3)}, 60)
    assert counters.get_many(["absent", keys[1]]) == [5, 4]
    counters.decr_many(keys[:2])
    assert counters.get_many(keys[:2]) == [1, 3]
    assert counters.status() == "ok"

    flood = RedisFloodStore(cluster.url, prefix)
    granted = flood.take([(uid, 4, 10, 0, 0) for uid in range(1, 6)])
    assert [g for g, _ in granted] == [4] * 5
    assert [g for g, _ in flood.take([(1, 10, 10, 0, 0)])] == [6]

    presence = RedisPresence(cluster.url, prefix, stale_after=30)
    assert presence.opened(7, "c1") is True
    assert presence.opened(7, "c2") is False
    assert presence.online([7, 8]) == {7}
    presence.closed(7, "c1")
    presence.closed(7, "c2")
    gevent.sleep(0.2)  # the batching greenlet sends the closes
    assert presence.gone([7]) == {7}

    tickets = RedisTickets(cluster.url, prefix)
    tickets.put("t", "42:1", 10)
    assert (tickets.take("t"), tickets.take("t")) == ("42:1", None)


def test_a_master_killed_mid_traffic_its_replica_takes_over_and_nothing_acked_is_lost(
        mysql_url, cluster):
    """Readers on the other process never reconnect, yet hold every acked message once."""
    env = cluster_env(mysql_url, cluster, CHAT_RATE_PER_MINUTE=100000)
    p1, p2 = ServerProcess(env).start(), ServerProcess(env).start()
    try:
        sender, *readers = users(p1.base, 5)
        gid = sender.post("/api/groups", json={"name": "failover"}).json()["id"]
        for reader in readers:
            reader.put(f"/api/groups/{gid}/members/{reader.user_id}")
        out = WS(p1.ws_url, sender.token)
        clients = [CatchingUpClient(WS(p2.ws_url, r.token)) for r in readers]
        live: dict[int, list[int]] = {r.user_id: [] for r in readers}
        for reader, client in zip(readers, clients):
            take = client.take

            def counting(frame, take=take, uid=reader.user_id):
                if frame["kind"] == "message":
                    live[uid].append(frame["id"])
                take(frame)
            client.take = counting
        time.sleep(0.5)
        acked: dict[int, set[int]] = {r.user_id: set() for r in readers}

        def send_round(tag: str) -> None:
            for reader in readers:
                out.send({"type": 1, "recipient_id": reader.user_id, "content": f"{tag}"})
            out.send({"type": 4, "recipient_id": gid, "content": f"{tag} to all"})
            for _ in range(len(readers) + 1):
                frame = out.expect("ack", timeout=30)
                for reader in readers:
                    if frame["group_id"] == gid or frame["recipient_id"] == reader.user_id:
                        acked[reader.user_id].add(frame["id"])
            for client in clients:
                client.pump(0.02)

        for n in range(10):
            send_round(f"before {n}")
        # The master that holds the first reader's channel (the bus's busiest slot here).
        victim = cluster.master_of(f"{env['CHAT_REDIS_PREFIX']}user:{readers[0].user_id}")
        masters_before = set(cluster.masters())
        cluster.kill(victim)
        for n in range(20):  # traffic goes on while the cluster notices and promotes
            send_round(f"during {n}")
        cluster.wait_ok(60)
        promoted = set(cluster.masters()) - masters_before
        assert victim not in cluster.masters() and len(promoted) == 1, cluster.masters()
        for proc in (p1, p2):
            deadline = time.time() + 30
            while requests.get(proc.base + "/healthz", timeout=5).json()["bus"] != "ok":
                assert time.time() < deadline, proc.log()
                time.sleep(0.2)
        for n in range(10):
            send_round(f"after {n}")
        for client in clients:
            client.pump(3.0)
        for reader, client in zip(readers, clients):
            assert client.catch_ups >= 1, "the process never told its clients to catch up"
            missing = acked[reader.user_id] - client.seen
            assert not missing, f"reader {reader.user_id} lacks {sorted(missing)}"
            assert client.seen == acked[reader.user_id], "a message nobody acked appeared"
            assert len(live[reader.user_id]) == len(set(live[reader.user_id])), \
                "a message arrived twice live"
        # Live delivery across processes works on the new master.
        ack = out.request({"type": 1, "recipient_id": readers[0].user_id, "content": "new"},
                          "ack")
        assert clients[0].ws.expect("message", id=ack["id"])
        for ws in (out, *[c.ws for c in clients]):
            ws.close()
    finally:
        p1.stop()
        p2.stop()
