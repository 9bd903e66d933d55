"""A process that dies between its COMMIT and its PUBLISH (SIGKILL, a lost machine) costs
nobody a message: every other process finds the gap in the ids (when the next batch's
notice comes, or when idle, from the database's last id), reads it back from the
database and delivers it before anything newer, so a client that syncs from the largest
id it saw misses nothing.

Three "processes" in one: committers with real RedisBus instances on the shared Redis (a
prefix of the test's own) and a MariaDB database; a third bus listens as bob's server
would. Runs under gevent's monkey-patching, in a child pytest (see conftest.py).
"""
from __future__ import annotations

import uuid

import gevent
import orjson
import pytest
from gevent.event import AsyncResult
from gevent.event import Event as Flag

from chat.bus.redis import RedisBus
from chat.ops.metrics import SendStats
from chat.service.committer import MessageCommitter
from chat.service.outgoing import Outgoing
from chat.service.publishing import StoreBackfill
from chat.service.settings import ServiceSettings
from chat.store.counters import MemoryCounters
from tests.inprocess import add_user, follow_each_other, make_app, running
from tests.service.harness import stored
from tests.support import REDIS_URL

pytestmark = pytest.mark.gevent_patched


class Listener:
    """What a server's registry is to its bus: here it keeps the frames that arrive."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.left_out: list[str | None] = []  # per frame: the connection that does not get it
        self.listening: list[str] = []

    def dispatch(self, event, batch=None) -> None:
        # As the registry: only what reaches a connection here (events read back from the
        # database are for every channel of their conversation).
        if event.frame and event.channel in self.listening:
            self.frames.append(orjson.loads(event.frame))
            self.left_out.append(event.exclude_conn)

    def channels(self) -> list[str]:
        return list(self.listening)

    def catch_up(self) -> None:
        pass

    def count(self, user_id: int, exclude_conn: str | None = None) -> int:
        return 0


def wait_until(condition, timeout: float = 10, what: str = "") -> None:
    with gevent.Timeout(timeout, AssertionError(f"timed out: {what}")):
        while not condition():
            gevent.sleep(0.02)


@pytest.fixture
def processes(mysql_url, redis_prefix):
    """Start server 'processes' (a bus, and a committer unless told not to) on one
    MariaDB database and one Redis prefix; each is stopped at the end."""
    prefix = f"{redis_prefix}dead-{uuid.uuid4().hex[:6]}:"
    settings = ServiceSettings()
    started: list[tuple[RedisBus, MessageCommitter | None]] = []
    with running(make_app(mysql_url)) as app:

        def start(committer: bool = True) -> tuple[RedisBus, MessageCommitter | None, Listener]:
            listener = Listener()
            bus = RedisBus(REDIS_URL, prefix)
            bus.attach(listener)
            bus.attach_backfill(StoreBackfill(app))
            bus.start()
            wait_until(lambda: bus.up, what="the bus connects")
            writer = None
            if committer:
                writer = MessageCommitter(app, settings, bus, MemoryCounters(), SendStats())
                writer.start()
            started.append((bus, writer))
            return bus, writer, listener
        yield app, start
        for bus, writer in started:
            stop(bus, writer)


def stop(bus: RedisBus, committer: MessageCommitter | None) -> None:
    """The process ends: its greenlets and its connections to MariaDB and Redis go."""
    if committer is not None:
        committer.stop()
    bus.close()


def send(committer: MessageCommitter, sender: int, to: int, content: str,
         client_id: str, origin: str | None = None) -> AsyncResult:
    """Submit a private message; the result is (ack, error, created)."""
    result = AsyncResult()
    committer.submit(Outgoing(sender, to, None, content, client_id, origin,
                              lambda ack, err, created, batch: result.set((ack, err, created)),
                              0.0))
    return result


def die_after_commit(bus: RedisBus, committer: MessageCommitter, sender: int, to: int,
                     client_id: str) -> int:
    """The process commits a message and is gone before its PUBLISH; the stored id."""
    reached = Flag()

    def hang(*args, **kwargs):
        reached.set()
        gevent.sleep(3600)
    bus.publish_committed = hang  # the process stops right there, its COMMIT done
    send(committer, sender, to, "sent as the process died", client_id)
    assert reached.wait(10), "the committer never reached its PUBLISH"
    [row] = stored(client_id=client_id)
    stop(bus, committer)
    return row.id


def test_the_next_batch_brings_the_dead_processs_message_before_its_own(processes):
    app, start = processes
    alice, bob, carol = add_user(), add_user(), add_user()
    follow_each_other(alice, bob)
    follow_each_other(carol, bob)
    bobs_server, _, bobs_frames = start(committer=False)
    bobs_frames.listening.append(f"user:{bob}")
    bobs_server.subscribe(f"user:{bob}")
    bus_a, dying, _ = start()
    _, survivor, _ = start()

    first = send(dying, alice, bob, "published as usual", "c-1").get(timeout=10)[0]["id"]
    wait_until(lambda: len(bobs_frames.frames) == 1, what="the first message arrives")
    lost = die_after_commit(bus_a, dying, alice, bob, "c-lost")
    # alice's client reconnects elsewhere and resends: the stored message's ack, no copy.
    ack, err, created = send(survivor, alice, bob, "sent as the process died",
                             "c-lost").get(timeout=10)
    assert err is None and not created and ack["id"] == lost
    after = send(survivor, carol, bob, "a later message", "c-after").get(timeout=10)[0]["id"]

    wait_until(lambda: len(bobs_frames.frames) >= 3, what="bob's server hears both")
    gevent.sleep(0.3)  # anything sent twice would have come by now
    assert [(f["id"], f["content"]) for f in bobs_frames.frames] == [
        (first, "published as usual"), (lost, "sent as the process died"),
        (after, "a later message")]
    assert bobs_frames.frames[1]["sender_id"] == alice


def test_an_idle_process_delivers_what_a_dead_one_left_when_nothing_else_is_sent(processes):
    app, start = processes
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    bobs_server, _, bobs_frames = start(committer=False)
    bobs_frames.listening.append(f"user:{bob}")
    bobs_server.subscribe(f"user:{bob}")
    bus_a, dying, _ = start()
    start()  # a process with nothing to send

    first = send(dying, alice, bob, "published as usual", "c-1").get(timeout=10)[0]["id"]
    wait_until(lambda: len(bobs_frames.frames) == 1, what="the first message arrives")
    lost = die_after_commit(bus_a, dying, alice, bob, "c-2")

    wait_until(lambda: len(bobs_frames.frames) == 2, timeout=15,
               what="bob's process reads the dead one's message back")
    gevent.sleep(1.5)  # and only once, however often the idle process looks
    assert [f["id"] for f in bobs_frames.frames] == [first, lost]


def test_a_slow_publishers_sending_tab_gets_its_ack_and_not_its_message_back(processes):
    # alice's process commits her message and publishes it late (longer than the gap
    # wait), while bob's answer from another process already arrived there: the hole is
    # not read back from the database, which would send her message to every connection
    # of hers, the tab that sent it included (docs/protocol.md: that tab gets the ack).
    app, start = processes
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    bus_a, alices_server, alices_frames = start()
    alices_frames.listening.append(f"user:{alice}")
    bus_a.subscribe(f"user:{alice}")
    _, bobs_server, _ = start()
    publish = bus_a.publish_committed

    def late(*args, **kwargs):
        gevent.sleep(1.5)
        publish(*args, **kwargs)
    bus_a.publish_committed = late
    mine = send(alices_server, alice, bob, "from alice's first tab", "c-slow", "tab-1")
    wait_until(lambda: stored(client_id="c-slow"), what="alice's message is committed")
    answer = send(bobs_server, bob, alice, "bob answers", "c-answer").get(timeout=10)
    ack, err, created = mine.get(timeout=10)
    assert err is None and created
    wait_until(lambda: len(alices_frames.frames) >= 2, what="both reach alice's process")
    gevent.sleep(0.6)  # anything sent twice would have come by now
    assert [(f["id"], f["content"]) for f in alices_frames.frames] == [
        (ack["id"], "from alice's first tab"), (answer[0]["id"], "bob answers")]
    assert alices_frames.left_out == ["tab-1", None]
