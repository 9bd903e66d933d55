"""The bus on Redis Cluster: sharded pub/sub (SPUBLISH / SSUBSCRIBE).

A channel lives on the shard that owns its hash slot, so pub/sub traffic spreads
over the masters instead of being copied to every node (plain PUBLISH on a
cluster is broadcast over the cluster bus to every node). Everything else is
``RedisBus``'s: presence, the one-PUBLISH-per-channel rule, catch-up calls, the
listener that never dies. What differs:

- one subscriber connection per master, each read by its own greenlet;
- the fence is a PING on the subscriber connection of each shard that carries
  the batch's channels: Redis answers it after every message it pushed to that
  connection before, so when the PONG is read all earlier messages of those
  channels have been dispatched (no control channel, no extra PUBLISH);
- any error on any shard (a master killed, a slot moved: Redis then sends an
  unasked SUNSUBSCRIBE) drops the whole listener: it reloads the slot map,
  subscribes again on the new masters, and every process's clients ``sync``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Callable

import gevent
from gevent.event import AsyncResult
from gevent.event import Event as Flag

from ..store.redis_client import make_cluster
from .redis import RedisBus

log = logging.getLogger("chat.bus")


class ClusterBus(RedisBus):
    """``RedisBus`` over a Redis Cluster's sharded pub/sub."""

    PUBLISH = "spublish"

    def __init__(self, url: str, prefix: str = "chat:") -> None:
        super().__init__(url, prefix)
        self.readers: dict[str, Any] = {}  # master's name -> its subscriber PubSub
        self._failed: Flag | None = None
        self.fence_timeouts = 0  # fences given up on (a shard that did not answer in time)

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

    def _fence(self, channels: Sequence[str],
               commands: Callable[[Any], None] | None = None) -> list:
        """PING the subscriber connection of each shard holding a channel we listen to;
        ``commands`` go in a pipeline while the PONGs are on their way (replies returned)."""
        shards = {self._node(self._full(c)).name for c in channels if c in self.subscribed}
        waits = []
        for shard in shards:
            pubsub = self.readers.get(shard)
            if pubsub is None:
                continue
            self._fence_counter += 1
            token = f"{self.tag}:{self._fence_counter}".encode()
            self._fences[token] = AsyncResult()
            with self.pubsub_lock:
                pubsub.ping(token)
            waits.append(token)
        replies: list = []
        if commands is not None:
            pipe = self.client.pipeline(transaction=False)
            commands(pipe)
            replies = pipe.execute()
        try:
            with gevent.Timeout(self.FENCE_TIMEOUT):
                for token in waits:
                    self._fences[token].wait()
        except gevent.Timeout:
            self.fence_timeouts += 1
            log.warning("event=fence_timeout shards=%s", len(waits))
        finally:
            for token in waits:
                self._fences.pop(token, None)
        return replies

    def _subscription(self, verb: str, channel: str) -> None:
        if self._failed is None or not self.up:
            return
        try:
            with self.pubsub_lock:
                if verb == "subscribe":
                    self._ssubscribe(self._full(channel))
                    self.subscribed.add(channel)
                else:
                    self.subscribed.discard(channel)
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
            pubsub = self.readers[node.name] = self.client.get_redis_connection(node).pubsub()
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
                    # Our fence's PING: redis-py hands its answer back as the bare token.
                    fence = self._fences.get(response if isinstance(response, bytes)
                                             else response[1])
                    if fence is not None:
                        fence.set()
                    continue
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
            with self.pubsub_lock:
                channels = self.sink.channels() if self.sink else []
                for name in [self._processes, *[self._full(c) for c in channels]]:
                    self._ssubscribe(name)
                self.subscribed = set(channels)
            self._connected(len(channels))
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
