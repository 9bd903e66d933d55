"""Redis pub/sub between processes, with a listener that never dies.

A message costs at most one PUBLISH per channel whatever the number of
processes, and only the processes that hold a recipient receive it. Redis
pub/sub is at most once; MariaDB is the record and clients recover anything
missed through ``sync``.
"""
from __future__ import annotations

import logging
import random
from time import monotonic
from typing import Any, Callable, ContextManager, Sequence

import gevent
from gevent.lock import Semaphore

from ..store.redis_client import connection_options, pubsub_options, redis_errors
from .base import Batch, Event, Presence, Sink, deliver_locally, user_channel
from .sequencer import Backfill, Deliver, Sequencer

log = logging.getLogger("chat.bus")

# Published on the processes channel by a process that lost Redis and has it back.
CATCH_UP_CALL = b"catch-up:"
# The notice of a committed batch's ids, after its events: b"seq:<first>:<last>:<shards>:<tag>".
NOTICE = b"seq:"

# A committed batch in one round trip (one server, not a cluster): who listens where, asked
# after the COMMIT as ``RedisBus.presence`` asks it, then the PUBLISHes ``_send`` would make.
# Two round trips per batch (NUMSUB, then the PUBLISHes) were a fifth of the bus's share of
# the CPU with three processes, and the second waited for the first.
# ARGV: the processes' channel, the channel count C, per channel its name, whether our
# subscription counts in NUMSUB (``_ours``) and whether we subscribe to it; then the
# batch's last id, its notice, the event count E, per event its channel's number and its
# encoded payload. Returns {processes, PUBLISHes, notices, per channel: remote, everywhere}.
# A batch's last PUBLISHed event carries the notice (its header gets "n") when every other
# process listens to its channel, as in ``_send``.
PUBLISH_BATCH = """
local procs = redis.call('PUBSUB', 'NUMSUB', ARGV[1])[2]
if procs <= 1 then return {procs} end
local others = procs - 1
local C = tonumber(ARGV[2])
local names, remote, everywhere = {}, {}, {}
for c = 1, C do names[c] = ARGV[3 * c] end
local counts = redis.call('PUBSUB', 'NUMSUB', unpack(names))
local reply = {procs, 0, 0}
for c = 1, C do
  local n = counts[2 * c]
  remote[c] = n - tonumber(ARGV[3 * c + 1]) > 0
  everywhere[c] = n - tonumber(ARGV[3 * c + 2]) >= others
  reply[2 + 2 * c] = remote[c] and 1 or 0
  reply[3 + 2 * c] = everywhere[c] and 1 or 0
end
local at = 3 * C + 3
local last, notice, E = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
local final = 0
for e = 1, E do
  if remote[tonumber(ARGV[at + 1 + 2 * e])] then final = e end
end
local carried = false
for e = 1, E do
  local c = tonumber(ARGV[at + 1 + 2 * e])
  if remote[c] then
    local payload = ARGV[at + 2 + 2 * e]
    if e == final and everywhere[c] then
      payload = '{"n":' .. last .. ',' .. string.sub(payload, 2)
      carried = true
    end
    redis.call('PUBLISH', names[c], payload)
    reply[2] = reply[2] + 1
  end
end
if not carried then
  redis.call('PUBLISH', ARGV[1], notice)
  reply[2] = reply[2] + 1
  reply[3] = 1
end
return reply
"""


class RedisBus:
    """Redis pub/sub between processes, with a listener that never dies.

    An event is delivered to this process's own connections at once, and PUBLISHed
    when another process is alive (``PUBSUB NUMSUB`` of the processes' channel): one
    process alone does no pub/sub work at all, and each process receives only what
    its users need (Redis hands a message only to the channel's subscribers).

    Order: each committed batch's events carry its first id, and its publisher sends a
    notice of its ids after them; every process hands committed batches, its own and
    the others', to its connections in id order (``chat.bus.sequencer``), reading a
    gap back from the database when a publisher died between its COMMIT and its
    PUBLISH. While Redis is down, events reach this process's connections only (and
    the sequencer reads the others' from the database); clients are told to sync when
    it is back.
    """

    ALONE_RECHECK = 1.0
    CONFIRM_WAIT = 1.0  # seconds after which our SUBSCRIBE has surely reached Redis
    # A batch's last event may carry its notice: one subscriber connection per process
    # receives every channel in the order Redis handled the PUBLISHes (not on a cluster).
    NOTICE_IN_EVENT = True
    PUBLISH = "publish"  # the client's method: ``spublish`` on a cluster
    ONE_ROUND_TRIP = True  # a batch's presence and PUBLISHes in one script (PUBLISH_BATCH)

    def __init__(self, url: str, prefix: str = "chat:") -> None:
        import redis  # imported here so the embedded defaults never need it

        self.redis_module = redis
        self.errors = redis_errors()
        self.url = url
        self.prefix = prefix
        self.client = self._make_client(url)
        self.sink: Sink | None = None
        self.pubsub = None
        self.pubsub_lock = Semaphore()
        self.listener: gevent.Greenlet | None = None
        self.up = False
        self.published = 0  # PUBLISHes sent: events and notices
        self.notices = 0  # of which committed batches' notices
        self.received = 0
        self.reconnects = 0
        self.missed = False  # set while events may have been lost; cleared on reconnect
        self.tag = f"{id(self):x}{random.getrandbits(32):x}"
        self._processes = f"{prefix}processes"  # every listener subscribes: NUMSUB counts them
        self.sequencer = Sequencer(self.deliver_here, self._tell_clients_to_catch_up)
        self._alone_until = 0.0
        self.subscribed: set[str] = set()
        self._fresh: dict[str, float] = {}  # channel -> when we sent its SUBSCRIBE
        # Channel changes not sent yet, in order, and the greenlet that sends them.
        self._pending: list[tuple[str, str]] = []
        self._flusher: gevent.Greenlet | None = None
        # redis-py's Script: EVALSHA, loading the script again when Redis lost it.
        self._publish_batch = (self.client.register_script(PUBLISH_BATCH)
                               if self.ONE_ROUND_TRIP else None)

    def _make_client(self, url: str) -> Any:
        return self.redis_module.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                                                health_check_interval=0,
                                                **connection_options(url))

    def _numsub(self, names: Sequence[str]) -> list[int]:
        """Subscribers of each of ``names`` (``PUBSUB NUMSUB``, one round trip)."""
        return [n for _, n in self.client.pubsub_numsub(*names)]

    def attach(self, sink: Sink) -> None:
        """Deliver to ``sink`` from now on."""
        self.sink = sink

    def _full(self, channel: str) -> str:
        return self.prefix + channel

    def presence(self, channels: Sequence[str]) -> Presence:
        """One ``PUBSUB NUMSUB`` for the process count and these channels.

        A process that found itself alone asks again only after ``ALONE_RECHECK``
        seconds: alone, no other process can listen to anything.
        """
        if not self._worth_asking():
            return Presence()
        try:
            counts = self._numsub([self._processes, *[self._full(c) for c in channels]])
        except self.errors as exc:
            self._publish_failed(exc)
            return Presence()
        others = self._others(counts[0])
        if not others:
            return Presence()
        remote = frozenset(
            channel for channel, subscribers in zip(channels, counts[1:])
            if subscribers - self._ours(channel) > 0)
        # Here our subscription always counts as ours, young or not: if it is not yet
        # counted, a channel may look listened to by fewer processes, never by all.
        everywhere = frozenset(
            channel for channel, subscribers in zip(channels, counts[1:])
            if subscribers - (channel in self.subscribed) >= others)
        return Presence(others, remote, everywhere)

    def _worth_asking(self) -> bool:
        """Up, and not found alone in the last ``ALONE_RECHECK`` seconds."""
        return self.up and monotonic() >= self._alone_until

    def _others(self, processes: int) -> int:
        """The other live processes, from the processes' channel's subscriber count; none
        (we are alone): not asked again for ``ALONE_RECHECK`` seconds."""
        others = max(0, processes - 1)
        if not others:
            self._alone_until = monotonic() + self.ALONE_RECHECK
        return others

    def _publish_failed(self, exc: Exception) -> None:
        log.warning("event=redis_publish_failed error=%s", type(exc).__name__)
        self._mark_down()

    def attach_backfill(self, backfill: Backfill) -> None:
        """Where the sequencer reads gaps and the last id from (the database)."""
        self.sequencer.backfill = backfill

    def _ours(self, channel: str) -> int:
        """Our own subscriber of ``channel`` in ``NUMSUB``'s count: 0 while our SUBSCRIBE
        is young, since it may not have reached Redis yet (counting it would make a
        listener elsewhere look like ours, and its message would not be PUBLISHed)."""
        if channel not in self.subscribed:
            return 0
        since = self._fresh.get(channel)
        if since is None:
            return 1
        if monotonic() - since < self.CONFIRM_WAIT:
            return 0
        del self._fresh[channel]
        return 1

    def _subscribe_sink(self, send: Callable[[list[str]], None],
                        drop: Callable[[list[str]], None]) -> list[str]:
        """Subscribe to every channel of the sink, 500 a command, until what is subscribed
        is what the sink holds; the channels. Each command yields: a socket opening
        meanwhile asked ``subscribe`` and one closing ``unsubscribe``, both of which wait
        for the listener, so the sink is listed again, its new channels subscribed and
        those it no longer holds unsubscribed (``drop``), until nothing changed. The caller
        marks the bus listening before it yields again."""
        held: dict[str, None] = {}  # in the order subscribed
        while True:
            now = dict.fromkeys(self.sink.channels() if self.sink else [])
            new = [c for c in now if c not in held]
            gone = [c for c in held if c not in now]
            if not new and not gone:
                return list(held)
            for channels, command in ((new, send), (gone, drop)):
                for start in range(0, len(channels), 500):
                    command(channels[start:start + 500])
            held.update(dict.fromkeys(new))
            for channel in gone:
                del held[channel]

    def _subscribed_now(self, channels: Sequence[str]) -> None:
        self.subscribed.update(channels)
        now = monotonic()
        for channel in channels:
            self._fresh[channel] = now

    def publish(self, events: Sequence[Event], presence: Presence | None = None,
                batch: Batch | None = None) -> None:
        """Deliver here at once; PUBLISH (pipelined) what other processes need."""
        if not events:
            return
        if presence is None:
            presence = self.presence(list(dict.fromkeys(e.channel for e in events)))
        deliver_locally(self.sink, events, batch, log)
        if presence.others and self.up:
            self._send(events)

    def publish_committed(self, first: int, last: int, events: Sequence[Event],
                          presence: Presence | None, deliver: Deliver,
                          asked: Callable[[Presence], None] | None = None) -> None:
        """A committed batch (ids ``first..last``): its events PUBLISHed on the channels
        another process listens to (``presence``, asked after the COMMIT), with its notice,
        at once; ``deliver`` (its acks, then ``deliver_here`` of its events) called when
        every id before it has gone out here.

        ``presence`` None: asked here (after the COMMIT, since the batch is committed), on
        one server in the same round trip as the PUBLISHes, and handed to ``asked`` before
        anything of the batch is delivered."""
        if presence is None and self._publish_batch is not None:
            presence = self._publish_asking(first, last, events)
        else:
            if presence is None:
                presence = self.presence(list(dict.fromkeys(e.channel for e in events)))
            if presence.others and self.up:
                self._send([e for e in events if e.channel in presence.remote],
                           (first, last), presence.everywhere)
        if asked is not None:
            asked(presence)
        self.sequencer.own(first, last, deliver)

    def _publish_asking(self, first: int, last: int, events: Sequence[Event]) -> Presence:
        """``presence`` and ``_send`` of a committed batch in one script (PUBLISH_BATCH)."""
        if not self._worth_asking():
            return Presence()
        channels = list(dict.fromkeys(e.channel for e in events))
        number = {channel: n for n, channel in enumerate(channels, 1)}
        args: list[Any] = [self._processes, len(channels)]
        for channel in channels:
            args += (self._full(channel), self._ours(channel), int(channel in self.subscribed))
        args += (last, self._notice((first, last), 1), len(events))
        for event in events:
            args += (number[event.channel], event.encode(self.tag, first))
        try:
            reply = self._publish_batch(args=args)
        except self.errors as exc:
            self._publish_failed(exc)
            return Presence()
        others = self._others(reply[0])
        if not others:
            return Presence()
        self.published += reply[1]
        self.notices += reply[2]
        flags = reply[3:]
        return Presence(others,
                        frozenset(c for n, c in enumerate(channels) if flags[2 * n]),
                        frozenset(c for n, c in enumerate(channels) if flags[2 * n + 1]))

    def expect(self, first: int, last: int) -> None:
        """This process is writing ids ``first..last`` (see ``Sequencer.expect``)."""
        self.sequencer.expect(first, last)

    def writing(self) -> ContextManager[None]:
        """A batch whose ids are known only after its COMMIT is being written (see
        ``Sequencer.writing``)."""
        return self.sequencer.writing()

    def forget(self, first: int) -> None:
        """The batch expected from ``first`` will not be handed over."""
        self.sequencer.forget(first)

    def holding(self) -> int:
        """This process's committed batches and acks still waiting for their turn."""
        return self.sequencer.own_waiting()

    def after(self, id: int, call: Callable[[], None]) -> None:
        """Call once every id up to ``id`` has gone out here (see ``Sequencer.after``)."""
        self.sequencer.after(id, call)

    def deliver_here(self, events: Sequence[Event], batch: Batch | None = None) -> None:
        """Hand events to this process's connections only."""
        deliver_locally(self.sink, events, batch, log)

    def _send(self, events: Sequence[Event], ids: tuple[int, int] | None = None,
              everywhere: frozenset[str] = frozenset()) -> None:
        """PUBLISH the events in one pipeline, then (for a committed batch) its notice.

        When the batch's last event goes to a channel that every other process listens
        to, that event is the notice (Redis hands it to each process after the batch's
        other events): no PUBLISH of its own. A process that stopped listening meanwhile
        finds a hole and reads it back."""
        first, last = ids if ids else (None, None)
        carried = (ids is not None and self.NOTICE_IN_EVENT and bool(events)
                   and events[-1].channel in everywhere)
        try:
            pipe = self.client.pipeline(transaction=False)
            publish = getattr(pipe, self.PUBLISH)
            for n, event in enumerate(events, 1):
                notice = last if carried and n == len(events) else None
                publish(self._full(event.channel), event.encode(self.tag, first, notice))
                self.published += 1
            if ids is not None and not carried:
                sent = self._notices(pipe, ids, [e.channel for e in events])
                self.published += sent
                self.notices += sent
            pipe.execute()
        except self.errors as exc:
            self._publish_failed(exc)

    def _notices(self, pipe: Any, ids: tuple[int, int], channels: Sequence[str]) -> int:
        """The batch's notice, on the processes' channel: Redis hands it to each process
        after the events it PUBLISHed before it. Returns the PUBLISHes added."""
        getattr(pipe, self.PUBLISH)(self._processes, self._notice(ids, 1))
        return 1

    def _notice(self, ids: tuple[int, int], shards: int) -> bytes:
        return NOTICE + f"{ids[0]}:{ids[1]}:{shards}:{self.tag}".encode()

    def online(self, user_ids: Sequence[int], exclude_conn: str | None = None,
               presence: Presence | None = None) -> set[int]:
        """Users connected here or on any process subscribed to their channel."""
        found: set[int] = set()
        remote: list[int] = []
        for uid in user_ids:
            if self.sink is not None and self.sink.count(uid, exclude_conn) > 0:
                found.add(uid)
            else:
                remote.append(uid)
        if remote:
            if presence is None:
                presence = self.presence([user_channel(u) for u in remote])
            found.update(u for u in remote if user_channel(u) in presence.remote)
        return found

    def subscribe(self, channel: str) -> None:
        """Start receiving a channel (no-op while disconnected: resubscribed on reconnect)."""
        self._subscription("subscribe", channel)

    def unsubscribe(self, channel: str) -> None:
        """Stop receiving a channel."""
        self._subscription("unsubscribe", channel)

    def _subscription(self, verb: str, channel: str) -> None:
        """Send a SUBSCRIBE at once, with whatever is queued before it; queue an
        UNSUBSCRIBE for a greenlet that sends what queued up in one command. A reconnect
        storm closes thousands of sockets at once: a command per socket and channel was a
        twentieth of its CPU (py-spy). A SUBSCRIBE cannot wait: a new socket's first ``sync`` must not read
        the database before Redis holds its subscription, or a message committed and
        published in between would reach neither."""
        if self.pubsub is None or not self.up:
            return  # the listener subscribes to every channel of the sink when it is back
        self._pending.append((verb, channel))
        if verb == "subscribe":
            self._send_pending()
        elif self._flusher is None:
            self._flusher = gevent.spawn(self._send_later)

    def _send_later(self) -> None:
        try:
            self._send_pending()
        finally:
            self._flusher = None

    def _send_pending(self) -> None:
        """Send the queued (un)subscriptions in their order, many channels per command.
        The queue is taken under the lock, so two senders never swap their order."""
        try:
            with self.pubsub_lock:
                while self._pending:
                    pending, self._pending = self._pending, []
                    pubsub = self.pubsub
                    if pubsub is None or not self.up:
                        return  # the listener resubscribes to the sink's channels
                    runs: list[tuple[str, list[str]]] = []
                    for verb, channel in pending:
                        if runs and runs[-1][0] == verb:
                            runs[-1][1].append(channel)
                        else:
                            runs.append((verb, [channel]))
                    for verb, channels in runs:
                        for start in range(0, len(channels), 500):
                            part = channels[start:start + 500]
                            getattr(pubsub, verb)(*[self._full(c) for c in part])
                            if verb == "subscribe":
                                self._subscribed_now(part)
                            else:
                                self.subscribed.difference_update(part)
                                for channel in part:
                                    self._fresh.pop(channel, None)
        except self.errors as exc:
            log.warning("event=redis_subscription_failed error=%s", type(exc).__name__)
            self._mark_down()

    def start(self) -> None:
        """Start the listener greenlet (once, when the server starts)."""
        if self.listener is None:
            self.listener = gevent.spawn(self._listen_forever)

    def close(self) -> None:
        """Stop listening and close the connection (tests; the process's end)."""
        if self.listener is not None:
            self.listener.kill()
            self.listener = None
        self.sequencer.stop()
        self.client.close()

    def status(self) -> str:
        """"ok" while connected to Redis, "down" otherwise."""
        return "ok" if self.up else "down"

    def _lost(self, reason: str) -> None:
        """The connection to Redis is gone: say so once, and tell clients to catch up.

        Whatever other processes publish from now on cannot reach this process's
        clients until the listener is back; they sync now, and again once it is.
        """
        self.missed = True
        self.sequencer.went_down()
        if not self.up:
            return
        log.warning("event=redis_down reason=%s", reason)
        self.up = False
        self._tell_clients_to_catch_up()

    def _tell_clients_to_catch_up(self) -> None:
        if self.sink is not None:
            try:
                self.sink.catch_up()
            except Exception:
                log.exception("event=catch_up_failed")

    def _mark_down(self) -> None:
        self._lost("command_failed")
        pubsub = self.pubsub
        if pubsub is not None:
            try:
                pubsub.close()  # wakes the listener, which reconnects
            except Exception:
                pass

    def _on_message(self, full_channel: bytes, data: bytes) -> None:
        """Hand one bus message on: a notice, a catch-up call, or an event to dispatch."""
        channel = full_channel.decode()[len(self.prefix):]
        if channel == self._processes[len(self.prefix):] or channel.startswith("{seq"):
            self._on_control(data)
            return
        try:
            event, origin, first, last = Event.decode(channel, data)
            if origin == self.tag:
                return  # ours: delivered here when it was published
            self.received += 1
            if first is not None:
                self.sequencer.event(first, event)
                if last is not None:  # the batch's last event, and its notice
                    self.sequencer.notice(first, last)
            elif self.sink is not None:
                self.sink.dispatch(event)
        except Exception:
            log.exception("event=bad_bus_message channel=%s", channel)

    def _on_control(self, data: bytes) -> None:
        """A batch's notice, or a process back from a loss of Redis calling for a sync."""
        if data.startswith(NOTICE):
            try:
                first, last, shards, tag = data[len(NOTICE):].decode().split(":", 3)
                if tag != self.tag:
                    self.sequencer.notice(int(first), int(last), int(shards))
            except Exception:
                log.exception("event=bad_bus_notice")
        elif data.startswith(CATCH_UP_CALL) and data[len(CATCH_UP_CALL):] != self.tag.encode():
            self._alone_until = 0.0  # the caller is back: not alone any more
            self._tell_clients_to_catch_up()

    def _listen_forever(self) -> None:
        """Connect, subscribe, relay; on any failure back off and start again."""
        delay = 0.2
        while True:
            try:
                self._listen_once()
                delay = 0.2
            except Exception as exc:
                self._lost(type(exc).__name__)
            gevent.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)

    def _connected(self, channels: int) -> None:
        """Subscribed again: up, and after a loss every process's clients catch up."""
        if not self.up:
            self.reconnects += 1
        self.up = True
        self.sequencer.came_up()
        if self.missed:
            self.missed = False
            # Messages published while we were away were not delivered here, and what
            # this process could not publish meanwhile did not reach the others: every
            # process tells its clients to catch up.
            log.info("event=redis_reconnected channels=%s", channels)
            # The call first: it also ends the others' belief that they are alone (cached
            # for ALONE_RECHECK seconds, during which they publish nothing), before our
            # clients' sync reads what was committed.
            getattr(self.client, self.PUBLISH)(self._processes,
                                               CATCH_UP_CALL + self.tag.encode())
            self._tell_clients_to_catch_up()
            # And once more after ALONE_RECHECK, for a batch that was past its presence
            # check when the call arrived (it matters on a cluster: one shard's loss drops
            # every process's listener at once, and they come back one by one).
            gevent.spawn_later(self.ALONE_RECHECK * 1.5, self._tell_clients_to_catch_up)

    def _listen_once(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True, **pubsub_options())
        try:
            self.sequencer.begin()  # the last id, read before we can hear of later ones
            with self.pubsub_lock:
                pubsub.subscribe(self._processes)
                self._pending = []  # what was queued is in the sink's channels now
                channels = self._subscribe_sink(
                    lambda part: pubsub.subscribe(*[self._full(c) for c in part]),
                    lambda part: pubsub.unsubscribe(*[self._full(c) for c in part]))
                self.subscribed, self._fresh = set(), {}
                self._subscribed_now(channels)
                self.pubsub = pubsub  # no yield since the sink's last channel was sent
            self._connected(len(channels))
            for message in pubsub.listen():
                if message.get("type") == "message":
                    self._on_message(message["channel"], message["data"])
            raise ConnectionError("pubsub ended")
        finally:
            self.pubsub = None
            self.subscribed = set()
            try:
                pubsub.close()
            except Exception:
                pass
