"""The connect's one-statement reads (``chat.store.reads``, ``queries.pooled_rows``), on
SQLite and on MariaDB: what a connect reads is what is committed now, and on MariaDB
the connection goes back to the pool without a ROLLBACK."""
from __future__ import annotations

from sqlalchemy import text

from chat.extensions import db
from chat.store import queries, reads
from tests.inprocess import add_user


def _user_count() -> int:
    return queries.pooled_rows(text("SELECT COUNT(*) AS n FROM users"), {})[0].n


def test_each_read_sees_what_was_committed_since_the_last(in_app):
    before = _user_count()
    for _ in range(3):  # the same pooled connection, most likely: no old snapshot kept
        add_user()
        before, now = _user_count(), before
        assert before == now + 1


def test_on_mariadb_the_read_needs_no_rollback_to_end_it(in_app):
    engine = reads.engine()
    if engine.dialect.name not in ("mysql", "mariadb"):
        assert engine is db.engine  # SQLite: the one engine
        return
    engine.dispose()  # one connection in the pool: the one watched below
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw.get_autocommit()
    sent = []
    query, rollback = raw.query, raw.rollback
    raw.query = lambda sql, unbuffered=False: (sent.append(sql), query(sql, unbuffered))[1]
    raw.rollback = lambda: (sent.append("ROLLBACK"), rollback())[1]
    try:
        _user_count()
    finally:
        del raw.query, raw.rollback
    assert sent == ["SELECT COUNT(*) AS n FROM users"]
