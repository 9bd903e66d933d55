"""ClusterBus (``chat.bus.cluster``) on a private Redis Cluster (3 masters + 3 replicas):
sharded pub/sub between 'processes', presence per master, a committed batch's notice on
every shard it touched, and a master killed: the listener resubscribes on the promoted replica and tells its clients to catch up.
Runs under gevent's monkey-patching, in a child pytest (see conftest.py).
"""
from __future__ import annotations

import shutil
import uuid

import gevent
import pytest
from gevent import monkey

from chat.bus import Event, Presence, make_bus
from chat.bus.cluster import ClusterBus
from tests.bus.test_local_and_redis import (CHURN, Sink, listen_through_churn, subscribe_all,
                                            wait_until)
from tests.redis_cluster import RedisCluster
from tests.support import need

pytestmark = pytest.mark.gevent_patched


@pytest.fixture(scope="module")
def cluster():
    need(shutil.which("redis-server") is not None, "redis-server (to start a Redis Cluster)")
    nodes = RedisCluster()
    try:
        yield nodes.create()
    finally:
        nodes.stop()


@pytest.fixture
def buses(cluster):
    prefix = f"bus-{uuid.uuid4().hex[:6]}:"
    started: list[ClusterBus] = []

    def _start(sink: Sink) -> ClusterBus:
        bus = make_bus(cluster.url, prefix)
        assert isinstance(bus, ClusterBus)
        bus.attach(sink)
        bus.start()
        started.append(bus)
        wait_until(lambda: bus.up, what="the listener connects")
        return bus
    yield _start
    for bus in started:
        bus.close()


def test_sharded_pubsub_between_processes_presence_and_online(buses):
    channels = [f"user:{n}" for n in range(1, 9)] + ["group:5"]  # spread over the masters
    sink_a, sink_b = Sink(), Sink(channels, online={n: ["b"] for n in range(1, 9)})
    a, b = buses(sink_a), buses(sink_b)
    subscribe_all(b, sink_b)
    wait_until(lambda: a.presence(["user:1"]).others == 1, what="a sees b")
    assert a.presence(channels + ["user:99"]) == Presence(1, frozenset(channels),
                                                          frozenset(channels))
    assert a.online([1, 2, 99]) == {1, 2}
    a.publish([Event(c, c.encode()) for c in channels] + [Event("user:99", b"nobody")])
    wait_until(lambda: len(sink_b.events) == len(channels), what="b receives")
    assert sorted(sink_b.frames()) == sorted(c.encode() for c in channels)
    assert a.published == len(channels) + 1
    b.unsubscribe("user:1")
    wait_until(lambda: a.presence(["user:1"]).remote == frozenset(), what="b left user:1")


@pytest.mark.parametrize("held, change, expected", CHURN)
def test_channels_that_come_and_go_while_the_listener_subscribes(cluster, buses, held, change,
                                                                   expected):
    a = buses(Sink())
    listen_through_churn(lambda: make_bus(cluster.url, a.prefix), a, held, change, expected)


def spublish_from_another_process(cluster: RedisCluster, channel: str, data: bytes) -> None:
    """SPUBLISH on the channel's master over a plain blocking socket, as another process
    would: this process's greenlets (the listener) get no turn meanwhile."""
    plain_socket = monkey.get_original("socket", "socket")
    args = [b"SPUBLISH", channel.encode(), data]
    command = b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    with plain_socket() as sock:
        sock.connect(("127.0.0.1", cluster.master_of(channel)))
        sock.sendall(command)
        assert sock.recv(64).startswith(b":")  # handed to the subscribers


def test_a_batch_on_two_shards_goes_out_once_both_shards_noticed_it(buses, cluster):
    b = buses(Sink())
    user, group = "user:1", next(f"group:{n}" for n in range(2, 200)
                                 if cluster.master_of(b.prefix + f"group:{n}")
                                 != cluster.master_of(b.prefix + "user:1"))
    sink_b = Sink([user, group])
    b.attach(sink_b)
    subscribe_all(b, sink_b)
    b.sequencer.position = b.sequencer.floor = 10  # as read from the database at connect
    b.publish_committed(12, 12, [Event(user, b"ours 12")], Presence(),
                        lambda events_too: b.deliver_here([Event(user, b"ours 12")]))

    def notice_on_the_shard_of(channel: str) -> None:
        order = b.order_channels[b._node(b.prefix + channel).name]
        spublish_from_another_process(cluster, order, b"seq:11:11:2:elsewhere")
    spublish_from_another_process(cluster, b.prefix + group,
                                  Event(group, b"theirs 11").encode("elsewhere", 11))
    notice_on_the_shard_of(group)
    gevent.sleep(0.2)
    assert sink_b.frames() == []  # the other shard's event may still be on its way
    spublish_from_another_process(cluster, b.prefix + user,
                                  Event(user, b"theirs 11").encode("elsewhere", 11))
    notice_on_the_shard_of(user)
    wait_until(lambda: len(sink_b.frames()) == 3, what="b delivers")
    assert sink_b.frames() == [b"theirs 11", b"theirs 11", b"ours 12"]


def test_a_master_killed_the_listener_moves_to_the_promoted_replica(buses, cluster):
    sink_a, sink_b = Sink(), Sink(["user:1"])
    a, b = buses(sink_a), buses(sink_b)
    subscribe_all(b, sink_b)
    victim = cluster.master_of(b.prefix + "user:1")
    cluster.kill(victim)
    wait_until(lambda: not b.up, what="b notices")
    assert sink_b.catch_ups >= 1
    wait_until(lambda: a.up and b.up, timeout=60, what="both back on the new master")
    assert victim not in cluster.masters()
    wait_until(lambda: a.presence(["user:1"]).remote == {"user:1"}, what="b's channel is back")
    a.publish([Event("user:1", b"after failover")])
    wait_until(lambda: sink_b.frames() == [b"after failover"], what="b receives again")
    assert sink_b.catch_ups >= 2  # told when it went down and again once back
