"""A pooled connection is checked before use only when it sat idle (instead of always).

SQLAlchemy's ``pool_pre_ping`` pings the database at every checkout: a round trip
on each connect's two reads and each sync, a sixth of a reconnect storm's CPU. A
connection handed back a moment ago is alive; one that sat in the pool a while
may have been cut (a database restart, a failover, an idle timeout), so it is
pinged, and replaced when the ping fails, as ``pool_pre_ping`` would. A
connection that dies under a busy pool fails its statement once; SQLAlchemy then
sees the disconnect and drops every connection of the pool made before it.
"""
from __future__ import annotations

from time import monotonic
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

IDLE_BEFORE_PING = 2.0  # seconds in the pool after which a connection is pinged first
_IDLE_SINCE = "chat_idle_since"


def ping_when_idle(engine: Engine, idle: float = IDLE_BEFORE_PING) -> None:
    """Ping a connection at checkout when it was idle ``idle`` seconds or more."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or monotonic() - since < idle:
            return  # new, or back in the pool a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the driver's own error: whatever it is, reconnect
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("ping failed")
