"""The optional read replica (``DATABASE_REPLICA_URL``): where a pure read runs.

History, sync and search may run their row reads on a MariaDB replica; every
write, every ack, every cursor and every membership check stays on the primary.

The rule (read-your-writes): a read goes to the replica only when the replica
has applied every transaction the primary had committed when the read began.
The primary's ``@@global.gtid_binlog_pos`` (a variable, no table is read) is
that point; the replica's ``MASTER_GTID_WAIT(pos, wait)`` says whether it got
there within ``CHAT_REPLICA_WAIT_MS``. An ack is sent only after its commit, so
any id a client has been acked (or otherwise knows) is on the replica whenever
the replica is chosen. Ids alone would not do: with several processes, id 10
may commit after id 11, so "the replica holds id 11" does not mean it holds 10.

Any doubt reads the primary: no binlog position on the primary, a replica behind
by more than the wait (then the replica is skipped for ``CHAT_REPLICA_BEHIND_SECONDS``
without asking), a replica that fails (skipped for ``CHAT_REPLICA_RETRY_SECONDS``;
the read that failed is run again on the primary: it wrote nothing).
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from flask import Flask, current_app
from sqlalchemy import Connection, Engine, Executable, Row, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..extensions import db
from . import reads
from .pool import ping_when_idle

log = logging.getLogger(__name__)
T = TypeVar("T")
_KEY = "chat_replica"
_PRIMARY_POSITION = text("SELECT @@global.gtid_binlog_pos")
_WAIT = text("SELECT MASTER_GTID_WAIT(:pos, :wait)")
# Where the rows of the read running now come from: the replica's connection, the
# primary for ``rows_only`` (``_ONE_SNAPSHOT`` on MySQL, a Connection on SQLite),
# ``_EACH_ALONE`` (``each_alone``), or None: the primary's session.
_EACH_ALONE = "each statement on its own autocommit connection"
_ONE_SNAPSHOT = "the reads together in one snapshot, as one query"
_CURRENT: ContextVar[Any] = ContextVar("chat_replica_conn", default=None)


class ReplicaFailed(Exception):
    """A statement failed on the replica (the read is run again on the primary)."""


class _State:
    """One app's replica engine and what it last learnt of the replica's health."""

    def __init__(self, engine: Engine, wait: float, behind: float, retry: float) -> None:
        self.engine = engine
        self.wait = wait
        self.behind = behind
        self.retry = retry
        self.skip_until = 0.0  # monotonic; before it every read goes to the primary
        self.replica_reads = 0  # reads served by the replica (counted for the tests and ops)


class _Replica:
    """A replica connection that turns its failures into ``ReplicaFailed``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def execute(self, statement: Executable, params: Any = None) -> Any:
        """Run a statement on the replica."""
        try:
            return self.conn.execute(statement, params)
        except (DBAPIError, PoolTimeout) as exc:
            raise ReplicaFailed(str(exc)) from exc

    def __getattr__(self, name: str) -> Any:  # dialect, exec_driver_sql, ...
        return getattr(self.conn, name)


def init_app(app: Flask) -> None:
    """Create the replica engine when ``DATABASE_REPLICA_URL`` is set (else: nothing)."""
    url = app.config.get("DATABASE_REPLICA_URL")
    if not url:
        return
    engine = create_engine(url, **app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    ping_when_idle(engine)
    app.extensions[_KEY] = _State(engine, app.config["CHAT_REPLICA_WAIT_MS"] / 1000,
                                  app.config["CHAT_REPLICA_BEHIND_SECONDS"],
                                  app.config["CHAT_REPLICA_RETRY_SECONDS"])


def _state() -> _State | None:
    return current_app.extensions.get(_KEY)


def _skip(state: _State, seconds: float, why: str) -> None:
    if state.skip_until <= time.monotonic():
        log.warning("event=replica_skipped reason=%s seconds=%s", why, seconds)
    state.skip_until = time.monotonic() + seconds


def _caught_up(state: _State) -> _Replica | None:
    """A replica connection that holds every commit the primary has now, or None."""
    if state.skip_until > time.monotonic():
        return None
    try:
        position = db.session.execute(_PRIMARY_POSITION).scalar()
    except DBAPIError as exc:  # not MariaDB (MySQL's GTIDs differ): the primary it is
        _skip(state, state.retry, type(exc).__name__)
        return None
    if not position:
        return None  # no binlog on the primary: nothing to compare, read the primary
    try:
        conn = state.engine.connect()
    except (DBAPIError, PoolTimeout) as exc:
        _skip(state, state.retry, type(exc).__name__)
        return None
    try:
        reached = conn.execute(_WAIT, {"pos": position, "wait": state.wait}).scalar()
    except (DBAPIError, PoolTimeout) as exc:
        conn.close()
        _skip(state, state.retry, type(exc).__name__)
        return None
    if reached != 0:
        conn.close()
        _skip(state, state.behind, "behind")
        return None
    return _Replica(conn)


def read(fn: Callable[[], T], rows_only: bool = False, each_alone: bool = False) -> T:
    """``fn()``, its row reads on the replica when the rule allows, else on the primary.

    ``rows_only``: ``fn`` does nothing but one ``rows_together`` (sync). On the primary
    they then run on a pooled connection of their own when the request's session holds
    none, without the session's transaction bookkeeping (a third of a sync's CPU in a
    reconnect storm); on MySQL as one query with their transaction
    (``reads.rows_in_one_snapshot``).

    ``each_alone``: no two of ``fn``'s ``rows`` need to see one snapshot, and none needs
    what the session wrote and has not committed (history: a page, then the peer when
    the page is empty; around a message, the older and the newer side, whose ids are
    apart: a change committed between the two reads shows on one side only). On the
    primary each then runs on a pooled autocommit connection through the driver
    (``store.reads``): no transaction to open, no ROLLBACK to send after it. Other reads
    of ``fn`` (a group's membership, through the ORM) stay on the session.
    """
    state = _state()
    replica = _caught_up(state) if state is not None else None
    if replica is None:
        if each_alone:
            with _rows_from(_EACH_ALONE):
                return fn()
        if rows_only and not (db.session.registry.has() and db.session().in_transaction()):
            engine = db.engine
            if reads.through_driver(engine):  # one transaction: its reads see one snapshot
                with _rows_from(_ONE_SNAPSHOT):
                    return fn()
            with engine.connect() as conn, _rows_from(conn):
                return fn()
        return fn()
    try:
        with _rows_from(replica):
            result = fn()
        state.replica_reads += 1
        return result
    except ReplicaFailed as exc:
        _skip(state, state.retry, exc.__cause__.__class__.__name__)
    finally:
        with contextlib.suppress(DBAPIError):  # a dead connection: the pool drops it
            replica.conn.close()
    return fn()


@contextlib.contextmanager
def _rows_from(where: Any) -> Iterator[None]:
    """``rows`` reads from ``where`` (see ``_CURRENT``) inside."""
    token = _CURRENT.set(where)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def rows(statement: Executable, params: dict[str, Any]) -> list[Row]:
    """Rows of one read: on the replica inside ``read`` when it was chosen; else on the
    primary as ``read`` was asked (a pooled connection of the read's own, or one per
    statement), or on the request's session (which sees what the request wrote)."""
    current = _CURRENT.get()
    if isinstance(current, _Replica):
        try:
            return current.execute(statement, params).all()
        except (DBAPIError, PoolTimeout) as exc:  # failed while fetching
            raise ReplicaFailed(str(exc)) from exc
    if current is _EACH_ALONE or current is _ONE_SNAPSHOT:  # a lone read: its own snapshot
        found = reads.rows(statement, params)
        if found is not None:
            return found
    elif current is not None:  # the primary, on a read's own pooled connection
        return current.execute(statement, params).all()
    return db.session.execute(statement, params).all()


def rows_together(statements: list[tuple[Executable, dict[str, Any]]]) -> list[list[Row]]:
    """Rows of several reads that must see one snapshot, as ``rows`` would read each:
    inside ``read(rows_only=True)`` on MySQL's primary, sent as one query."""
    if _CURRENT.get() is _ONE_SNAPSHOT:
        found = reads.rows_in_one_snapshot(statements)
        if found is not None:
            return found
    return [rows(statement, params) for statement, params in statements]


def connection() -> Any:
    """The connection for a read that takes one (search): the replica inside ``read``
    when it was chosen, else the session's."""
    current = _CURRENT.get()
    return current if isinstance(current, (_Replica, Connection)) else db.session.connection()


def served() -> int:
    """How many reads the replica has served in this process (0 without one)."""
    state = _state()
    return state.replica_reads if state is not None else 0
