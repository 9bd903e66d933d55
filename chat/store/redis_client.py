"""Redis clients for counters and slots: a bounded pool that greenlets wait their turn on.

``REDIS_URL`` names one Redis (``redis://host:port/db``, the default) or a Redis
Cluster (``redis+cluster://host:port[,host:port...]``: seed nodes, the rest is
discovered). On a cluster every multi-key command and script touches keys of one
hash slot (hash tags ``{...}``), and pipelines are never transactional.
"""
from __future__ import annotations

from collections.abc import Sequence
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
                        **kwargs)


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
    pool = redis.BlockingConnectionPool.from_url(url, **options)
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
