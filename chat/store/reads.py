"""The hot reads through the driver itself, and autocommit connections for the
one-statement ones (a connect's token and hello, a history page's).

A socket opened with a token sends its token and hello reads as one query
(``rows_together``), and sync its two reads with their transaction
(``rows_in_one_snapshot``: START TRANSACTION, both SELECTs, COMMIT): the
connections of the autocommit engine allow several statements in one query, and
only ever run the app's own statements with every value escaped by the driver.

A pooled connection goes back to the pool with a ROLLBACK, to end the
transaction its first SELECT opened: a round trip after each of a connect's two
reads. These reads are one statement each and write nothing, so on MySQL they
run on an engine of their own whose connections are in autocommit mode (each
statement its own transaction, seeing everything committed) and go back to the
pool without that ROLLBACK (SQLAlchemy's ``skip_autocommit_rollback``). SQLite
keeps the one engine.

On MySQL these reads, and sync's two (``store.replica``), run through PyMySQL
itself (``driver_rows``):
SQLAlchemy's execution and result layers cost more CPU than the queries. What
SQLAlchemy would do on an error is done here: its exception, and a lost
connection dropped with every connection of the pool made before it.
"""
from __future__ import annotations

import logging
import re
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, NamedTuple

from flask import Flask, current_app
from sqlalchemy import Engine, TextClause, TextualSelect, create_engine, event, text
from sqlalchemy.exc import DBAPIError

from ..extensions import db
from .driver import allow_multi_statements
from .pool import ping_when_idle

log = logging.getLogger("chat.reads")
_KEY = "chat.reads_engine"
_MULTI = "chat.multi_statements"  # in a connection's pool record: several statements allowed
# Connects read one statement at a time on it, so it needs fewer connections than the
# main pool; it adds this many (at most) to each process's count at MariaDB. No overflow:
# in a burst of connects an overflow connection was opened and closed again for each read
# (a tenth of a connect's CPU); waiting a moment for a pooled one is cheaper.
POOL_SIZE, MAX_OVERFLOW = 20, 0


def init_app(app: Flask) -> None:
    """Create the autocommit engine on MySQL (nothing on SQLite)."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if not url.startswith(("mysql", "mariadb")):
        return
    opts = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    opts["pool_size"] = min(POOL_SIZE, opts.get("pool_size", POOL_SIZE))
    opts["max_overflow"] = min(MAX_OVERFLOW, opts.get("max_overflow", MAX_OVERFLOW))
    engine = create_engine(url, isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True,
                           **opts)
    ping_when_idle(engine)
    event.listen(engine, "connect", _statements_together)
    app.extensions[_KEY] = engine


def _statements_together(dbapi_connection: Any, record: Any) -> None:
    """A new connection may send several statements in one query (``rows_together``)."""
    record.info[_MULTI] = allow_multi_statements(dbapi_connection)
    if not record.info[_MULTI]:  # the reads still work, a round trip each
        log.warning("event=multi_statements_refused engine=reads")


def engine() -> Engine:
    """The engine for one-statement reads: the autocommit one, else the app's."""
    return current_app.extensions.get(_KEY) or db.engine


def rows(statement: TextClause | TextualSelect,
         params: dict[str, Any]) -> list[NamedTuple] | None:
    """Rows of one read on a pooled autocommit connection through the driver itself, as
    named tuples (``None`` on SQLite, which has no such engine). A connect runs two such
    reads, a history page one (two when it is empty); SQLAlchemy's execution and result
    layers cost more CPU than either query."""
    found = current_app.extensions.get(_KEY)
    if found is None:
        return None
    with driver_connection(found) as conn:  # pinged when idle, no ROLLBACK on return
        return driver_rows(found, conn, statement, params)


Statement = tuple[TextClause | TextualSelect, dict[str, Any]]


def rows_together(statements: list[Statement]) -> list[list[NamedTuple]] | None:
    """Each read's rows, in order, like ``rows``, the reads sent as one multi-statement
    query (one round trip: a connect's token and hello). ``None`` on SQLite."""
    found = current_app.extensions.get(_KEY)
    if found is None:
        return None
    with driver_connection(found) as conn:
        if conn.info.get(_MULTI):
            return driver_result_sets(found, conn, statements)
        return [driver_rows(found, conn, statement, params) for statement, params in statements]


# Several reads that must see one snapshot (sync's messages and updates), with their
# transaction, as one query on an autocommit connection: one round trip, where reads in
# a transaction of the main engine cost one each and a ROLLBACK. REPEATABLE READ whatever
# the server's default: the snapshot is what the reads are together for.
_SNAPSHOT = ("REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def rows_in_one_snapshot(statements: list[Statement]) -> list[list[NamedTuple]] | None:
    """Each read's rows, in order, as ``rows`` reads them, every read seeing the same
    snapshot: sent with their transaction as one query (a statement at a time where the
    connection allows no more). ``None`` on SQLite."""
    return rows_in_one_transaction(statements, *_SNAPSHOT)


def rows_in_one_transaction(statements: list[Statement], isolation: str,
                            start: str = "START TRANSACTION") -> list[list[NamedTuple]] | None:
    """Each statement's rows (none for a write), the statements run in one transaction
    at ``isolation`` and sent with its START and COMMIT as one query on an autocommit
    connection (a statement at a time where the connection allows no more). ``None`` on
    SQLite."""
    found = current_app.extensions.get(_KEY)
    if found is None:
        return None
    begin = _transaction_begin(isolation, start)
    every = [*begin, *statements, _COMMIT]
    with driver_connection(found) as conn:
        try:
            if conn.info.get(_MULTI):
                sets = driver_result_sets(found, conn, every)
            else:
                sets = [driver_rows(found, conn, statement, params)
                        for statement, params in every]
        except DBAPIError:
            # Its transaction may still be open (a statement failed before the COMMIT):
            # the connection must not serve another query.
            if conn.is_valid:
                conn.invalidate()
            raise
    return sets[len(begin):-1]


def through_driver(engine: Engine) -> bool:
    """Whether ``driver_rows`` reads on this engine's connections (MySQL: PyMySQL's
    values are what the app uses; SQLite's times are text without the statement's
    column types)."""
    return engine.dialect.name in ("mysql", "mariadb")


@contextmanager
def driver_connection(engine: Engine) -> Iterator[Any]:
    """A pooled DB-API connection of ``engine``, given back at the end; a failure to
    connect is raised as SQLAlchemy's error, as its own checkout would raise it."""
    dialect = engine.dialect
    try:
        conn = engine.raw_connection()
    except dialect.loaded_dbapi.Error as exc:  # a new connection failed: not wrapped here
        raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from exc
    try:
        yield conn
    finally:
        conn.close()


def driver_rows(engine: Engine, conn: Any, statement: TextClause | TextualSelect,
                params: dict[str, Any]) -> list[NamedTuple]:
    """Rows of one read on ``conn`` (from ``driver_connection(engine)``) through the
    driver, as named tuples: the driver's values as they come (MySQL's DATETIME as
    datetime; a ``TextualSelect``'s column types matter on SQLite only)."""
    return driver_result_sets(engine, conn, [(statement, params)])[0]


def driver_result_sets(engine: Engine, conn: Any,
                       statements: list[Statement]) -> list[list[NamedTuple]]:
    """``driver_rows`` of each read, sent as one query (more than one read needs a
    connection that allows several statements: ``allow_multi_statements``)."""
    texts = [(s.element if isinstance(s, TextualSelect) else s).text for s, _ in statements]
    dialect = engine.dialect
    try:
        cursor = conn.cursor()
        if len(statements) == 1:
            cursor.execute(_pyformat(texts[0]), statements[0][1])
        else:  # each statement's values escaped by the driver, as ``execute`` does
            cursor.execute(";".join(cursor.mogrify(_pyformat(sql), params)
                                    for sql, (_, params) in zip(texts, statements)))
        found = [_named_rows(cursor)]
        for _ in statements[1:]:
            cursor.nextset()
            found.append(_named_rows(cursor))
        cursor.close()
        return found
    except dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy's own execution would: a lost connection leaves the pool, and so
        # does every connection made before it (after a restart or a failover they are
        # all dead: one failed read, not one per pooled connection); the error is
        # SQLAlchemy's (the app answers those 503, ``errors.DATABASE_UNAVAILABLE``).
        lost = dialect.is_disconnect(exc, conn.dbapi_connection, None)
        if lost:
            engine.pool._invalidate(conn, exc)  # what SQLAlchemy's Connection calls
        elif not _server_error(exc):
            # The driver's own (a packet out of sequence, ...): the connection's state is
            # unknown, and an autocommit one goes back without a ROLLBACK to clear it.
            conn.invalidate()
        raise DBAPIError.instance(";".join(texts), [p for _, p in statements], exc,
                                  dialect.loaded_dbapi.Error, connection_invalidated=lost,
                                  dialect=dialect) from exc
    except BaseException:
        # Stopped half-way (a greenlet killed, a timeout): what is left of the answer is
        # unread, and an autocommit connection goes back without a ROLLBACK to clear it.
        conn.invalidate()
        raise


def _server_error(exc: Exception) -> bool:
    """Whether the server answered with this error (a server error number: 1000-1999, or
    3000 and up in MySQL 5.7+ and MariaDB; 2000-2999 are the client library's own): the
    connection is then in a known state, ready for the next query."""
    code = exc.args[0] if exc.args else None
    return isinstance(code, int) and (1000 <= code < 2000 or code >= 3000)


def _named_rows(cursor: Any) -> list[NamedTuple]:
    """The cursor's current result set as named tuples (none for a statement that
    returns no rows: a START TRANSACTION)."""
    if cursor.description is None:
        return []
    shape = _row_type(tuple(column[0] for column in cursor.description))
    return [shape._make(row) for row in cursor.fetchall()]


_COMMIT = (text("COMMIT"), {})


@lru_cache(maxsize=8)
def _transaction_begin(isolation: str, start: str) -> tuple[Statement, Statement]:
    return ((text(f"SET TRANSACTION ISOLATION LEVEL {isolation}"), {}), (text(start), {}))


@lru_cache(maxsize=64)
def _pyformat(sql: str) -> str:
    """A ``text()`` statement's ``:name`` binds as the driver's ``%(name)s`` (a literal %
    doubled)."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


@lru_cache(maxsize=64)
def _row_type(columns: tuple[str, ...]) -> type:
    return namedtuple("Row", columns, rename=True)  # rename: ``SELECT 1`` names a column "1"


def dispose(app: Flask) -> None:
    """Close the autocommit engine's connections (tests, between apps)."""
    found = app.extensions.get(_KEY)
    if found is not None:
        found.dispose()
