"""Redis clients for counters and slots: a bounded pool that greenlets wait their turn on."""
from __future__ import annotations


def make_client(url: str, *, max_connections: int = 32, timeout: float = 2.0):
    """A client whose pool holds at most ``max_connections`` connections.

    redis-py's default pool opens a new connection for every concurrent caller: a
    reconnect storm of thousands of sockets, each asking Redis one thing, would
    open thousands of connections at once (and time out opening them). Here
    callers wait up to ``timeout`` seconds for a free connection instead.
    """
    import redis

    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
        socket_connect_timeout=1, health_check_interval=0)
    return redis.Redis(connection_pool=pool)
