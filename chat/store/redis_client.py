"""Redis clients for counters and slots: a bounded pool that greenlets wait their turn on.

``REDIS_URL`` names one Redis (``redis://host:port/db``, the default) or a Redis
Cluster (``redis+cluster://host:port[,host:port...]``: seed nodes, the rest is
discovered). On a cluster every multi-key command and script touches keys of one
hash slot (hash tags ``{...}``), and pipelines are never transactional.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

CLUSTER_SCHEME = "redis+cluster://"


def is_cluster_url(url: str | None) -> bool:
    """Whether ``url`` names a Redis Cluster (the ``redis+cluster://`` scheme)."""
    return bool(url) and url.startswith(CLUSTER_SCHEME)  # type: ignore[union-attr]


def cluster_seeds(url: str) -> list[tuple[str, int]]:
    """(host, port) of every seed node in a ``redis+cluster://`` URL."""
    hosts = url[len(CLUSTER_SCHEME):].split("/", 1)[0]
    seeds = []
    for part in hosts.split(","):
        host, _, port = part.strip().rpartition(":")
        seeds.append((host or "127.0.0.1", int(port or 6379)))
    return seeds


def redis_errors() -> tuple[type[Exception], ...]:
    """What a Redis call may raise when Redis is unreachable (a cluster's own errors too)."""
    import redis
    from redis.exceptions import RedisClusterException

    return (redis.RedisError, RedisClusterException)


@cache
def quick_check_connection_class() -> type:
    """redis-py's ``Connection`` with a cheap check at each pool checkout (TCP URLs).

    A pool asks every connection it hands out whether something waits on it: a
    connection the server closed is then replaced before a command fails on it. redis-py
    asks with ``select.poll()``, which gevent's patching turns into watchers, a timer and
    a greenlet switch: about 30 µs of CPU per command (a quarter of a small script call's
    cost here), on every Redis call of a connect and of a send. This asks the kernel
    itself, without waiting (one ``poll`` system call); only when something is there
    does redis-py's own check decide."""
    import select

    import redis
    from gevent import monkey

    make_poll = monkey.get_original("select", "poll")

    class QuickCheckConnection(redis.Connection):
        def can_read(self, timeout: float = 0) -> bool:
            reader = getattr(self._parser, "_reader", None)  # hiredis's (buffered replies)
            if timeout == 0 and self._sock is not None and reader is not None \
                    and not reader.has_data():
                poller = make_poll()
                poller.register(self._sock, select.POLLIN)
                if not poller.poll(0):
                    return False
            return super().can_read(timeout)

    return QuickCheckConnection


def pubsub_options() -> dict[str, Any]:
    """What a listener's ``pubsub()`` is made with: each message handed on as it is.
    redis-py's default handler of a pushed message (RESP3) looks a logger up and formats
    the whole message for a debug line nobody reads, on every message a process hears."""
    return {"push_handler_func": _as_is}


def _as_is(message: Any) -> Any:
    return message


def connection_options(url: str) -> dict[str, Any]:
    """``connection_class`` for a ``redis://`` or cluster URL (TLS and Unix sockets keep
    redis-py's own)."""
    if url.startswith(("redis://", CLUSTER_SCHEME)):
        return {"connection_class": quick_check_connection_class()}
    return {}


def make_cluster(url: str, **kwargs: Any):
    """A ``RedisCluster`` on the URL's seed nodes (per-node pools built from ``kwargs``)."""
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    (host, port), *rest = cluster_seeds(url)
    # ``url=`` makes redis-py build each node's pool with ``connection_pool_class``. A few
    # quick retries ride over MOVED and a failover's first refusals; callers then fall back.
    return RedisCluster(url=f"redis://{host}:{port}/0",
                        startup_nodes=[ClusterNode(h, p) for h, p in rest],
                        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3),
                        **connection_options(url), **kwargs)


def make_client(url: str, *, max_connections: int = 32, timeout: float = 2.0):
    """A client whose pool holds at most ``max_connections`` connections (per node on a cluster).

    redis-py's default pool opens a new connection for every concurrent caller: a
    reconnect storm of thousands of sockets, each asking Redis one thing, would
    open thousands of connections at once (and time out opening them). Here
    callers wait up to ``timeout`` seconds for a free connection instead.
    """
    import redis

    options: dict[str, Any] = {"max_connections": max_connections, "timeout": timeout,
                               "socket_timeout": timeout, "socket_connect_timeout": 1,
                               "health_check_interval": 0}
    if is_cluster_url(url):
        return make_cluster(url, connection_pool_class=redis.BlockingConnectionPool, **options)
    pool = redis.BlockingConnectionPool.from_url(url, **connection_options(url), **options)
    return redis.Redis(connection_pool=pool)


class Lua:
    """A Lua script, called like redis-py's ``Script`` (``keys``, ``args``, ``client``).

    On one Redis it is EVALSHA (loaded once). On a cluster it is EVAL: the script
    cache is per node, a replica promoted by a failover starts without it, and a
    NOSCRIPT inside a pipeline would come back only after the rest had run.
    """

    def __init__(self, client: Any, text: str) -> None:
        self.client = client
        self.text = text
        self.cluster = hasattr(client, "get_primaries")
        self.script = None if self.cluster else client.register_script(text)

    def __call__(self, keys: Sequence[str], args: Sequence[Any] = (), client: Any = None):
        """Run (or queue, when ``client`` is a pipeline) the script on ``keys``."""
        if self.script is not None:
            return self.script(keys=keys, args=args, client=client)
        return (client or self.client).execute_command("EVAL", self.text, len(keys), *keys,
                                                       *args)
