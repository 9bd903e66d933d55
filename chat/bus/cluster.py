"""The bus on Redis Cluster: sharded pub/sub (SPUBLISH / SSUBSCRIBE).

A channel lives on the shard that owns its hash slot, so pub/sub traffic spreads
over the masters instead of being copied to every node (plain PUBLISH on a
cluster is broadcast over the cluster bus to every node). Everything else is
``RedisBus``'s: presence, the one-PUBLISH-per-channel rule, catch-up calls, the
listener that never dies. What differs:

- one subscriber connection per master, each read by its own greenlet;
- a committed batch's notice (``chat.bus.sequencer``) goes to every shard that
  carried its events, on a channel of that shard's own (``{seq<n>}``, one per
  master): a shard hands its messages to a subscriber in order, so a process that
  has every shard's notice has every event of the batch;
- any error on any shard (a master killed, a slot moved: Redis then sends an
  unasked SUNSUBSCRIBE) drops the whole listener: it reloads the slot map,
  subscribes again on the new masters, and every process's clients ``sync``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import gevent
from gevent.event import Event as Flag

from ..store.redis_client import make_cluster, pubsub_options
from .redis import RedisBus

log = logging.getLogger("chat.bus")


class ClusterBus(RedisBus):
    """``RedisBus`` over a Redis Cluster's sharded pub/sub."""

    PUBLISH = "spublish"
    NOTICE_IN_EVENT = False  # each shard delivers in order, not the shards together
    ONE_ROUND_TRIP = False  # a script runs on one shard: presence and PUBLISHes apart

    def __init__(self, url: str, prefix: str = "chat:") -> None:
        super().__init__(url, prefix)
        self.readers: dict[str, Any] = {}  # master's name -> its subscriber PubSub
        self._failed: Flag | None = None
        self.order_channels: dict[str, str] = {}  # master's name -> its notice channel

    def _make_client(self, url: str) -> Any:
        return make_cluster(url, socket_timeout=5, socket_connect_timeout=2)

    def _node(self, name: str) -> Any:
        return self.client.get_node_from_key(name)

    def _numsub(self, names: Sequence[str]) -> list[int]:
        """``PUBSUB SHARDNUMSUB`` on each master, for the channels of its slots."""
        by_node: dict[str, list[int]] = defaultdict(list)
        nodes = {}
        for index, name in enumerate(names):
            node = self._node(name)
            nodes[node.name] = node
            by_node[node.name].append(index)
        counts = [0] * len(names)
        for node_name, indexes in by_node.items():
            reply = self.client.execute_command(
                "PUBSUB SHARDNUMSUB", *[names[i] for i in indexes], target_nodes=nodes[node_name])
            for index, (_, subscribers) in zip(indexes, reply):
                counts[index] = subscribers
        return counts

    def _order_channels(self) -> dict[str, str]:
        """Each master's notice channel: the first ``{seq<n>}`` whose slot it holds."""
        # The masters that hold slots (a master without any would never be found).
        masters = {nodes[0].name for nodes in self.client.nodes_manager.slots_cache.values()
                   if nodes}
        found: dict[str, str] = {}
        for n in range(100_000):
            name = f"{self.prefix}{{seq{n}}}"
            owner = self._node(name).name
            if owner in masters and owner not in found:
                found[owner] = name
                if len(found) == len(masters):
                    break
        return found

    def _notices(self, pipe: Any, ids: tuple[int, int], channels: Sequence[str]) -> int:
        """The batch's notice on every shard that carried one of its events, after them."""
        shards = {self._node(self._full(c)).name for c in channels} or \
            {self._node(self._processes).name}
        if not shards <= self.order_channels.keys():
            self.order_channels = self._order_channels()  # the slot map changed
        notice = self._notice(ids, len(shards))
        sent = 0
        for shard in shards:
            channel = self.order_channels.get(shard)
            if channel is not None:  # else a master we cannot name: the gap is read back
                pipe.spublish(channel, notice)
                sent += 1
        return sent

    def _subscription(self, verb: str, channel: str) -> None:
        if self._failed is None or not self.up:
            return
        try:
            with self.pubsub_lock:
                if verb == "subscribe":
                    self._ssubscribe(self._full(channel))
                    self._subscribed_now([channel])
                else:
                    self.subscribed.discard(channel)
                    self._fresh.pop(channel, None)
                    pubsub = self.readers.get(self._node(self._full(channel)).name)
                    if pubsub is not None:
                        pubsub.sunsubscribe(self._full(channel))
        except self.errors as exc:
            log.warning("event=redis_%s_failed error=%s", verb, type(exc).__name__)
            self._mark_down()

    def _mark_down(self) -> None:
        self._lost("command_failed")
        if self._failed is not None:
            self._failed.set()  # the listener closes every shard's connection and starts again

    def _ssubscribe(self, name: str) -> None:
        """SSUBSCRIBE on the master of ``name``'s slot (its connection and reader made once)."""
        node = self._node(name)
        pubsub = self.readers.get(node.name)
        fresh = pubsub is None
        if fresh:
            pubsub = self.readers[node.name] = self.client.get_redis_connection(node).pubsub(
                **pubsub_options())
        pubsub.ssubscribe(name)
        if fresh:  # after the first SSUBSCRIBE: it opens the connection the reader reads
            gevent.spawn(self._read, pubsub, self._failed)

    def _read(self, pubsub: Any, failed: Flag) -> None:
        """Relay one shard's messages until its connection fails."""
        try:
            while not failed.is_set():
                response = pubsub.parse_response(block=True)
                if response is None:
                    continue
                if isinstance(response, bytes) or response[0] == b"pong":
                    continue  # a health check's PING answered
                kind = response[0]
                if kind == b"smessage":
                    self._on_message(response[1], response[2])
                elif kind == b"sunsubscribe" and \
                        response[1] not in pubsub.pending_unsubscribe_shard_channels:
                    raise ConnectionError("slot moved")  # Redis dropped us from the channel
                else:
                    pubsub.handle_message(response)  # keeps redis-py's bookkeeping true
        except Exception as exc:
            if not failed.is_set():
                log.warning("event=redis_shard_lost error=%s %s", type(exc).__name__, exc)
        finally:
            failed.set()

    def _listen_once(self) -> None:
        failed = self._failed = Flag()
        try:
            # After a failover the old slot map names a dead master: ask the cluster again.
            self.client.nodes_manager.initialize()
            self.order_channels = self._order_channels()
            self.sequencer.begin()  # the last id, read before we can hear of later ones
            with self.pubsub_lock:
                for name in [self._processes, *self.order_channels.values()]:
                    self._ssubscribe(name)
                def subscribe(part: list[str]) -> None:
                    for channel in part:
                        self._ssubscribe(self._full(channel))

                def drop(part: list[str]) -> None:
                    for channel in part:
                        self.readers[self._node(self._full(channel)).name].sunsubscribe(
                            self._full(channel))
                channels = self._subscribe_sink(subscribe, drop)
                self.subscribed, self._fresh = set(), {}
                self._subscribed_now(channels)
            self._connected(len(channels))  # no yield since the sink's last channel was sent
            failed.wait()
            raise ConnectionError("a shard's subscriber connection ended")
        finally:
            failed.set()
            self._failed = None
            self.subscribed = set()
            readers, self.readers = self.readers, {}
            for pubsub in readers.values():
                try:
                    pubsub.close()
                except Exception:
                    pass
