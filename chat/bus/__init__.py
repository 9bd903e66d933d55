"""The bus carries events between server processes: in-process (``LocalBus``) or Redis
pub/sub (``RedisBus``), behind one interface (``Bus``)."""
from .base import (GROUP, USER, Batch, Bus, Event, Presence, Sink, group_channel,
                   parse_channel, user_channel)
from .local import LocalBus

__all__ = ["GROUP", "USER", "Batch", "Bus", "Event", "LocalBus", "Presence", "Sink",
           "group_channel", "parse_channel", "user_channel", "make_bus"]


def make_bus(redis_url: str | None, prefix: str) -> Bus:
    """Redis pub/sub when a URL is configured (sharded on a cluster), else the in-process bus."""
    if not redis_url:
        return LocalBus()
    from ..store.redis_client import is_cluster_url
    if is_cluster_url(redis_url):
        from .cluster import ClusterBus
        return ClusterBus(redis_url, prefix)
    from .redis import RedisBus  # imported here so the embedded defaults never need redis
    return RedisBus(redis_url, prefix)
