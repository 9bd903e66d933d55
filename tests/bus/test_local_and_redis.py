"""The bus (``chat.bus``): LocalBus and RedisBus behind one interface, one test body for both;
then what only Redis does: other processes, presence, committed batches in id order, and
resubscribing after an outage. Runs under gevent's monkey-patching, in a child pytest (see conftest.py).
"""
from __future__ import annotations

import uuid

import gevent
import pytest
from gevent import monkey

from chat.bus import Event, LocalBus, Presence, make_bus
from chat.bus.redis import RedisBus
from tests.services import PrivateRedis
from tests.support import REDIS_URL, need

pytestmark = pytest.mark.gevent_patched


class Sink:
    """What the registry is to a bus: it keeps the events, lists channels, counts connections."""

    def __init__(self, channels=(), online=None) -> None:
        self.events: list[tuple[Event, object]] = []
        self.subscribed = list(channels)
        self.online = online or {}
        self.catch_ups = 0

    def dispatch(self, event: Event, batch=None) -> None:
        if event.frame == b"boom":
            raise RuntimeError("a broken event")
        self.events.append((event, batch))

    def channels(self) -> list[str]:
        return list(self.subscribed)

    def catch_up(self) -> None:
        self.catch_ups += 1

    def count(self, user_id: int, exclude_conn: str | None = None) -> int:
        return sum(1 for conn in self.online.get(user_id, ()) if conn != exclude_conn)

    def frames(self) -> list[bytes]:
        return [event.frame for event, _ in self.events]


def wait_until(condition, timeout: float = 10, what: str = "") -> None:
    with gevent.Timeout(timeout, AssertionError(f"timed out: {what}")):
        while not condition():
            gevent.sleep(0.01)


@pytest.fixture
def redis_buses(redis_prefix):
    """Start RedisBus 'processes' on the shared Redis, sharing one prefix of the test's own."""
    prefix = f"{redis_prefix}bus-{uuid.uuid4().hex[:6]}:"
    started: list[RedisBus] = []

    def _start(sink: Sink, url: str = REDIS_URL) -> RedisBus:
        bus = RedisBus(url, prefix)
        bus.attach(sink)
        bus.start()
        started.append(bus)
        wait_until(lambda: bus.up, what="the listener connects")
        return bus
    yield _start
    for bus in started:
        bus.close()


@pytest.fixture(params=["local", "redis"])
def bus_with(request):
    """One process's bus with its sink: LocalBus, then RedisBus on the shared Redis."""
    def _make(sink: Sink):
        if request.param == "local":
            bus = LocalBus()
            bus.attach(sink)
            return bus
        return request.getfixturevalue("redis_buses")(sink)
    return _make


def subscribe_all(bus, sink: Sink) -> None:
    """What the registry does as connections come: ask the bus for each channel."""
    for channel in sink.channels():
        bus.subscribe(channel)


# -- the twins: one body, both buses ----------------------------------------------------------


def test_publish_delivers_to_this_process_in_order_with_every_field(bus_with):
    sink = Sink(["user:1", "group:2"])
    bus = bus_with(sink)
    subscribe_all(bus, sink)
    batch = object()
    events = [Event("user:1", b'{"n":1}', exclude_conn="c1"),
              Event("group:2", b'{"n":2}', exclude_user=7),
              Event("user:1", member=(2, False)), Event("user:1", close_auth=42)]
    bus.publish(events, batch=batch)
    gevent.sleep(0.1)  # a Redis bus would have echoed anything it mistook for another's
    assert [e for e, _ in sink.events] == events
    assert all(b is batch for _, b in sink.events)
    bus.publish([])
    assert len(sink.events) == 4


def test_one_broken_event_does_not_stop_the_rest(bus_with):
    sink = Sink(["user:1"])
    bus = bus_with(sink)
    bus.publish([Event("user:1", b"1"), Event("user:1", b"boom"), Event("user:1", b"3")])
    assert sink.frames() == [b"1", b"3"]


def test_online_counts_local_connections_except_the_sender(bus_with):
    sink = Sink(online={1: ["c1"], 2: ["c2", "c3"]})
    bus = bus_with(sink)
    assert bus.online([1, 2, 3]) == {1, 2}
    assert bus.online([1, 2], exclude_conn="c1") == {2}
    assert bus.online([2], exclude_conn="c2") == {2}


def test_alone_there_is_nobody_else_to_tell(bus_with):
    bus = bus_with(Sink(["user:1"]))
    assert bus.presence(["user:1"]) == Presence()
    assert bus.status() == ("off" if isinstance(bus, LocalBus) else "ok")


def test_make_bus_picks_the_twin():
    assert isinstance(make_bus(None, "p:"), LocalBus)
    assert isinstance(make_bus(REDIS_URL, "p:"), RedisBus)


def test_an_event_survives_the_wire():
    event = Event("group:9", b'{"kind":"message","content":"a\\nb"}', exclude_conn="c-1",
                  exclude_user=4, member=(9, True), close_auth=12)
    assert Event.decode("group:9", event.encode("tag")) == (event, "tag", None, None)
    assert Event.decode("user:1", Event("user:1").encode()) == (Event("user:1"), None, None,
                                                                None)
    assert Event.decode("group:9", event.encode("tag", 41)) == (event, "tag", 41, None)
    assert Event.decode("group:9", event.encode("tag", 41, 44)) == (event, "tag", 41, 44)


# -- what only Redis does: other processes ---------------------------------------------------


def test_another_process_gets_what_it_subscribed_to_once(redis_buses):
    sink_a, sink_b = Sink(["user:1"]), Sink(["user:1", "group:5"])
    a, b = redis_buses(sink_a), redis_buses(sink_b)
    subscribe_all(a, sink_a)
    subscribe_all(b, sink_b)
    a.publish([Event("user:1", b"to-1", exclude_conn="c9"), Event("group:5", b"to-g5"),
               Event("user:2", b"to-2")])
    wait_until(lambda: len(sink_b.events) == 2, what="b receives")
    assert [(e.channel, e.frame, e.exclude_conn) for e, _ in sink_b.events] == [
        ("user:1", b"to-1", "c9"), ("group:5", b"to-g5", None)]
    gevent.sleep(0.2)
    assert sink_a.frames() == [b"to-1", b"to-g5", b"to-2"]  # its own, once, not echoed back
    assert len(sink_b.events) == 2  # user:2 is nobody's: Redis hands it to no one


def test_a_channel_another_process_subscribed_after_presence_was_asked_still_hears(
        redis_buses):
    """A socket that opened elsewhere between a batch's presence check and its commit may
    have synced before the commit: the PUBLISH after the commit must still reach it."""
    sink_a, sink_b = Sink(), Sink()
    a, b = redis_buses(sink_a), redis_buses(sink_b)
    wait_until(lambda: a.presence(["user:3"]).others == 1, what="a sees b")
    asked = a.presence(["user:3"])
    assert asked.remote == frozenset()  # nobody listened to user:3 when asked
    sink_b.subscribed.append("user:3")  # ... then the socket opened on b
    b.subscribe("user:3")
    a.publish([Event("user:3", b"committed after")], asked)
    wait_until(lambda: [e.frame for e, _ in sink_b.events] == [b"committed after"],
               what="b receives")


def test_a_young_subscription_of_ours_does_not_hide_a_listener_elsewhere(redis_buses):
    """Our SUBSCRIBE goes on the listener's connection, NUMSUB on another: Redis may
    answer the NUMSUB first. Counting our young subscription as one of the subscribers
    would then take the other process's for ours, and the message would not be sent."""
    sink_a, sink_b = Sink(["user:5"]), Sink()
    a, b = redis_buses(sink_a), redis_buses(sink_b)
    subscribe_all(a, sink_a)
    wait_until(lambda: b.presence(["user:5"]).remote == {"user:5"}, what="b sees a")
    b._subscribed_now(["user:5"])  # b's SUBSCRIBE, sent and not yet read by Redis
    assert b.presence(["user:5"]).remote == {"user:5"}


def test_presence_and_online_see_the_other_process(redis_buses):
    sink_a, sink_b = Sink(), Sink(["user:7"], online={7: ["b-conn"]})
    a, b = redis_buses(sink_a), redis_buses(sink_b)
    subscribe_all(b, sink_b)
    wait_until(lambda: a.presence(["user:7"]).others == 1, what="a sees b")
    assert a.presence(["user:7", "user:8"]) == Presence(1, frozenset({"user:7"}),
                                                        frozenset({"user:7"}))
    assert a.online([7, 8]) == {7}
    b.unsubscribe("user:7")  # sent by a greenlet, with whatever else queued up meanwhile
    wait_until(lambda: a.presence(["user:7"]).remote == frozenset(), what="b unsubscribed")


def publish_from_another_process(url: str, channel: str, data: bytes) -> None:
    """PUBLISH and wait for Redis's answer on a plain blocking socket, as another process
    would: this process's greenlets (the listener) get no turn meanwhile."""
    plain_socket = monkey.get_original("socket", "socket")
    host, port = url.split("//")[1].split("/")[0].split(":")
    args = [b"PUBLISH", channel.encode(), data]
    command = b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    with plain_socket() as sock:
        sock.connect((host, int(port)))
        sock.sendall(command)
        assert sock.recv(64).startswith(b":")  # Redis has handed it to the subscribers


def test_a_subscription_holds_before_the_subscriber_does_anything_else(redis_buses):
    """A new socket reads its first ``sync`` right after registering: Redis must already
    hold its subscription, or a message published in between reaches neither. Here the
    publish comes from a blocking socket, before any other greenlet of this process runs."""
    sink_a, sink_b = Sink(["user:1"]), Sink()
    redis_buses(sink_a)
    b = redis_buses(sink_b)
    b.unsubscribe("user:9")  # queued (unsubscriptions are sent in bulk by a greenlet)
    sink_b.subscribed.append("user:42")
    b.subscribe("user:42")
    publish_from_another_process(REDIS_URL, b.prefix + "user:42",
                                 Event("user:42", b"right after").encode("elsewhere"))
    wait_until(lambda: sink_b.frames() == [b"right after"], timeout=2, what="b receives")


def test_our_committed_batch_waits_for_the_earlier_one_another_process_published_late(
        redis_buses):
    sink_a, sink_b = Sink(), Sink(["user:1"])
    redis_buses(sink_a)  # the other process
    b = redis_buses(sink_b)
    subscribe_all(b, sink_b)
    b.sequencer.position = b.sequencer.floor = 10  # as read from the database at connect
    acks = []

    def deliver(events_too: bool) -> None:
        acks.append(events_too)
        b.deliver_here([Event("user:1", b"ours 13")])
    b.publish_committed(13, 13, [Event("user:1", b"ours 13")], Presence(others=1), deliver)
    gevent.sleep(0.1)
    assert acks == [] and sink_b.frames() == []  # ids 11-12 are committed elsewhere
    for n in (11, 12):
        publish_from_another_process(REDIS_URL, b.prefix + "user:1",
                                     Event("user:1", b"theirs %d" % n).encode("elsewhere", 11))
    publish_from_another_process(REDIS_URL, b.prefix + "processes", b"seq:11:12:1:elsewhere")
    wait_until(lambda: len(sink_b.frames()) == 3, what="b delivers")
    assert sink_b.frames() == [b"theirs 11", b"theirs 12", b"ours 13"] and acks == [True]


def test_a_committed_batch_is_published_on_the_channels_listened_to_elsewhere_only(
        redis_buses):
    sink_a, sink_b = Sink(), Sink(["user:2"])
    a, b = redis_buses(sink_a), redis_buses(sink_b)
    subscribe_all(b, sink_b)
    b.sequencer.position = b.sequencer.floor = 0  # b orders what it receives
    wait_until(lambda: a.presence(["user:2"]).others == 1, what="a sees b")
    presence = a.presence(["user:1", "user:2"])  # asked after the COMMIT
    a.publish_committed(1, 1, [Event("user:1", b"to 1"), Event("user:2", b"to 2")], presence,
                        lambda events_too: None)
    wait_until(lambda: sink_b.frames() == [b"to 2"], what="b receives")
    # user:1 has no listener elsewhere: no PUBLISH; user:2's event is the batch's last on
    # a channel every other process listens to: it carries the notice.
    assert (a.published, a.notices) == (1, 0) and b.sequencer.position == 1
    c = redis_buses(Sink())  # a third process, listening to neither channel
    wait_until(lambda: a.presence(["user:2"]).others == 2, what="a sees c")
    a.publish_committed(2, 2, [Event("user:2", b"again")], a.presence(["user:2"]),
                        lambda events_too: None)
    wait_until(lambda: b.sequencer.position == 2, what="b delivers the second batch")
    assert (a.published, a.notices) == (3, 1)  # c hears of the batch by its own notice
    assert c.received == 0


def test_after_an_outage_the_listener_resubscribes_by_itself(redis_buses):
    need(PrivateRedis.available(), "redis-server (to start a private Redis)")
    server = PrivateRedis().start()
    try:
        sink_a, sink_b = Sink(), Sink(["user:1"])
        a, b = redis_buses(sink_a, server.url), redis_buses(sink_b, server.url)
        subscribe_all(b, sink_b)
        assert (sink_a.catch_ups, sink_b.catch_ups) == (0, 0)
        server.stop()
        wait_until(lambda: not b.up, what="b notices the outage")
        assert sink_b.catch_ups == 1  # its clients are told they may miss messages
        a.publish([Event("user:1", b"while down")])  # no error: delivered here only
        assert b.status() == "down" and sink_a.frames() == [b"while down"]
        sink_b.subscribed.append("group:3")  # a connection arrived while Redis was away
        b.subscribe("group:3")
        server.start()
        wait_until(lambda: a.up and b.up, what="both reconnect")
        wait_until(lambda: a.presence(["user:1", "group:3"]).remote == {"user:1", "group:3"},
                   what="b's channels are back")
        a.publish([Event("user:1", b"back"), Event("group:3", b"new")])
        wait_until(lambda: sink_b.frames() == [b"back", b"new"], what="b receives again")
        assert b.reconnects >= 2
        # Told when the bus went down and again once it is back (and once more when the
        # other process, back too, calls on every process to catch up).
        # (and a last time ALONE_RECHECK later, if that has passed by now).
        assert 2 <= sink_b.catch_ups <= 4 and 2 <= sink_a.catch_ups <= 4
    finally:
        server.stop()


class ChurningSink(Sink):
    """A connection opens (``opens`` its channel) or closes (``closes``) while the
    listener sends its SUBSCRIBEs: the listener's first listing is from before, and the
    connection's own ``subscribe`` or ``unsubscribe`` finds the bus not listening yet (it
    returns at once, as it does while Redis is away)."""

    def __init__(self, bus_box: list, channels=(), opens: str | None = None,
                 closes: str | None = None) -> None:
        super().__init__(channels)
        self.bus_box, self.opens, self.closes = bus_box, opens, closes
        self.listed = 0

    def channels(self) -> list[str]:
        listed = super().channels()
        self.listed += 1
        if self.listed == 1:  # the listener's first listing, before its SUBSCRIBEs yield
            if self.opens:
                self.subscribed.append(self.opens)
                self.bus_box[0].subscribe(self.opens)
            if self.closes:
                self.subscribed.remove(self.closes)
                self.bus_box[0].unsubscribe(self.closes)
        return listed


# (what the sink holds, what changes during the subscribing, what must be held after).
# A channel kept after its connection closed would make every other process PUBLISH its
# events here for nothing until the next reconnect.
CHURN = [
    (["user:1"], {"opens": "group:9"}, {"user:1", "group:9"}),
    (["user:1", "group:9"], {"closes": "group:9"}, {"user:1"}),
]


def listen_through_churn(make, a, held: list[str], change: dict, expected: set[str]) -> None:
    """A bus ``make()`` starts listening while its sink changes (``ChurningSink``): it must
    end up holding what the sink holds, as process ``a`` sees it, and hear it."""
    box: list = []
    sink = ChurningSink(box, held, **change)
    b = make()
    box.append(b)
    b.attach(sink)
    b.start()
    try:
        wait_until(lambda: b.up, what="the listener connects")
        wait_until(lambda: a.presence(["user:1", "group:9"]).remote == expected,
                   what=f"{expected} held after {change}")
        assert b.subscribed == expected
        a.publish([Event("group:9", b"to the late one"), Event("user:1", b"to user 1")])
        wait_until(lambda: b"to user 1" in sink.frames(), what="b hears user:1")
        assert (b"to the late one" in sink.frames()) == ("group:9" in expected)
    finally:
        b.close()
    wait_until(lambda: a.presence(["user:1"]).remote == frozenset(), what="b gone")


@pytest.mark.parametrize("held, change, expected", CHURN)
def test_channels_that_come_and_go_while_the_listener_subscribes(redis_buses, held, change,
                                                                   expected):
    a = redis_buses(Sink())
    listen_through_churn(lambda: RedisBus(REDIS_URL, a.prefix), a, held, change, expected)
