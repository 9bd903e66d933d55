"""The connect's one-statement reads (``chat.store.reads``, ``queries.pooled_rows``), on
SQLite and on MariaDB: what a connect reads is what is committed now, and on MariaDB
the connection goes back to the pool without a ROLLBACK."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import text

from chat.extensions import db
from chat.store import queries, reads
from tests.inprocess import add_user


def _user_count() -> int:
    return queries.pooled_rows(text("SELECT COUNT(*) AS n FROM users"), {})[0].n


class _Sent(list):
    """The queries a connection sent (``connection``: that connection)."""
    connection = None


@contextmanager
def _queries_sent(engine) -> Iterator[_Sent]:
    """On MariaDB, the queries the engine's one pooled connection sends inside (the pool
    is emptied first, so that it is the one every read takes); nothing on SQLite."""
    sent = _Sent()
    if engine.dialect.name not in ("mysql", "mariadb"):
        yield sent
        return
    engine.dispose()
    with engine.connect() as conn:
        raw = sent.connection = conn.connection.dbapi_connection
    query = raw.query
    raw.query = lambda sql, unbuffered=False: (sent.append(sql), query(sql, unbuffered))[1]
    try:
        yield sent
    finally:
        del raw.query


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


def test_on_mariadb_a_restart_costs_one_failed_read_not_one_per_pooled_connection(
        in_app, mysql_url):
    """A lost connection retires every connection the pool made before it, as SQLAlchemy's
    own execution does: after a database restart the next read fails, the one after it
    works (the other dead connections are replaced at checkout, not tried)."""
    import sqlalchemy
    from sqlalchemy.exc import DBAPIError

    engine = reads.engine()
    if engine.dialect.name not in ("mysql", "mariadb"):
        return  # SQLite: no pool of connections to lose
    engine.dispose()
    held = [engine.raw_connection() for _ in range(3)]  # three connections in the pool
    ids = []
    for conn in held:
        cursor = conn.cursor()
        cursor.execute("SELECT CONNECTION_ID()")
        ids.append(cursor.fetchone()[0])
        cursor.close()
    for conn in held:
        conn.close()
    admin = sqlalchemy.create_engine(mysql_url, poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as conn:  # the restart, as the pool sees it: all three cut
        for thread_id in ids:
            conn.exec_driver_sql(f"KILL CONNECTION {int(thread_id)}")
    admin.dispose()
    try:
        _user_count()  # the first read meets a dead connection (no ping: used just now)
    except DBAPIError as exc:
        assert exc.connection_invalidated
    assert _user_count() >= 0  # the next one gets a new connection, not a dead one
    assert _user_count() >= 0


def _token(user_id: int, revoked: bool = False) -> str:
    """A credential of ``user_id`` stored the way the accounts service stores one."""
    from chat.service.accounts import hash_secret
    from chat.store.models import AuthToken, utcnow
    secret = f"secret-{user_id}-{revoked}"
    db.session.add(AuthToken(user_id=user_id, token_hash=hash_secret(secret), kind="api",
                             revoked_at=utcnow() if revoked else None))
    db.session.commit()
    return hash_secret(secret)


def test_a_socket_token_brings_its_owners_hello_in_the_same_round_trip(in_app):
    """On MariaDB a WebSocket opened with a token reads the token's owner and that user's
    hello rows as one query: the same rows as the hello read alone, and no other user's.
    SQLite reads the owner only (the hello is then read at the hello)."""
    from tests.inprocess import add_group
    owner, other = add_user(), add_user()
    group = add_group(owner, other)
    add_group(other)  # a conversation of someone else's: not in the owner's hello
    token_hash = _token(owner)
    engine = reads.engine()
    mariadb = engine.dialect.name in ("mysql", "mariadb")
    with _queries_sent(engine) as sent:
        row, hello = queries.token_owner_with_hello(token_hash)
    assert (row.id, row.revoked_at) == (owner, None)
    if not mariadb:
        assert hello is None
        return
    assert len(sent) == 1 and sent[0].count("SELECT ") >= 2  # both reads, one round trip
    def said(rows):  # what a hello takes of each row
        return sorted((r.group_id, r.last_id, r.last_update_id, r.unread) for r in rows)
    assert said(hello) == said(queries.hello_rows(owner))
    assert [r.group_id for r in hello] == [group]
    assert queries.token_owner_with_hello(_token(other, revoked=True))[0].revoked_at is not None
    assert queries.token_owner_with_hello("0" * 64) == (None, [])


def test_each_column_descriptor_is_parsed_once_and_rows_read_as_before(in_app, monkeypatch):
    """On MariaDB the same statement's column descriptors are parsed once and reused
    (``store.driver``): the rows, their types and the cursor's description stay PyMySQL's
    own, and a statement whose column names vary cannot grow the memory without end."""
    import datetime

    from chat.store import driver
    if reads.engine().dialect.name not in ("mysql", "mariadb"):
        return  # SQLite: no PyMySQL
    add_user()
    statement = text("SELECT u.id, u.username, u.created_at, CAST(u.username AS BINARY) AS raw, "
                     "1.5 AS n, NULL AS nothing FROM users u ORDER BY u.id LIMIT 2")
    first = queries.pooled_rows(statement, {})
    known = dict(driver._known_columns)
    assert any(b"nothing" in data for data, _ in known)  # this statement's columns are kept
    again = queries.pooled_rows(statement, {})
    assert again == first and dict(driver._known_columns) == known  # parsed once
    row = again[0]
    assert (type(row.id), type(row.username), type(row.created_at), type(row.raw)) == (
        int, str, datetime.datetime, bytes)
    assert row.raw == row.username.encode() and row.nothing is None
    with reads.engine().connect() as conn:  # the DB-API description, as PyMySQL makes it
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute("SELECT 1 AS one, 'two' AS two")
        assert [d[0] for d in cursor.description] == ["one", "two"]
        assert cursor.fetchall() == ((1, "two"),)
        cursor.close()
    monkeypatch.setattr(driver, "DESCRIPTORS_KEPT", 8)
    for i in range(20):
        assert queries.pooled_rows(text(f"SELECT {i} AS column_{i}"), {})[0][0] == i
        assert len(driver._known_columns) <= 8


def test_the_groups_of_several_users_come_in_one_read(in_app):
    """``group_rows``: each user's groups, read again for sockets whose groups came with
    their token (``GroupCheck``); private conversations and other users' groups are not."""
    from tests.inprocess import add_group, follow_each_other
    from chat.service.reading import Reading
    a, b, c, loner = add_user(), add_user(), add_user(), add_user()
    follow_each_other(a, b)
    one, two = add_group(a, b), add_group(b)
    add_group(c)  # someone else's
    found = Reading.groups_of([a, b, loner])
    assert {user: sorted(groups) for user, groups in found.items()} == {a: [one],
                                                                        b: [one, two]}
    assert Reading.groups_of([]) == {}


def test_on_mariadb_a_driver_error_retires_the_connection(in_app, monkeypatch):
    """An error of the driver's own (not an answer of the server: a packet out of
    sequence) leaves the connection in an unknown state: it is not given back to the
    pool, whose next read then works on another."""
    import pymysql
    from sqlalchemy.exc import DBAPIError

    engine = reads.engine()
    if engine.dialect.name not in ("mysql", "mariadb"):
        return
    engine.dispose()
    with engine.connect() as conn:
        first = conn.connection.dbapi_connection
    real_query = first.query

    def broken(sql, unbuffered=False):
        raise pymysql.err.InternalError("Packet sequence number wrong - got 3 expected 1")
    first.query = broken
    try:
        _user_count()
    except DBAPIError:
        pass
    else:
        raise AssertionError("the driver's error was not raised")
    finally:
        first.query = real_query
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is not first
    assert _user_count() >= 0
    with engine.connect() as conn:  # a server's error keeps its connection
        second = conn.connection.dbapi_connection
    try:
        queries.pooled_rows(text("SELECT no_such_column FROM users"), {})
    except DBAPIError:
        pass
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is second
    # Server errors numbered 3000 and up (MySQL 5.7+, MariaDB 4000+) are answers too.
    real_query = second.query
    second.query = lambda sql, unbuffered=False: (_ for _ in ()).throw(
        pymysql.err.OperationalError(4078, "Illegal parameter data type"))
    try:
        _user_count()
    except DBAPIError:
        pass
    finally:
        second.query = real_query
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is second


def test_sync_reads_messages_and_updates_in_one_snapshot_and_one_round_trip(in_app):
    """Sync's two reads must see one snapshot. On MariaDB they go as one query with their
    transaction (no ROLLBACK after it), leave no transaction open on the pooled
    connection, and find what each read alone finds; SQLite reads them one by one."""
    from chat.store import replica
    from chat.store.committer_sql import MessageStore
    from chat.store.models import ReadCursor, private_conv_key, utcnow
    from tests.store.test_committer_sql import _update_row, write

    alice, bob = add_user(), add_user()
    key = private_conv_key(alice, bob)
    for me, peer in ((alice, bob), (bob, alice)):
        db.session.add(ReadCursor(user_id=me, conv_key=key, peer_id=peer, last_read_id=0))
    db.session.commit()
    store = MessageStore(db.engine)
    try:
        ids = write(store, (alice, bob, None, "one", "c1", utcnow()),
                    (bob, alice, None, "two", "c2", utcnow()))
        update = store.allocate_ids(1)
        store.insert_updates([_update_row(update, key, ids[0], bob, "u1")])
        store.commit()
    finally:
        store.rollback()
        store.discard()
    engine = reads.engine()
    mariadb = engine.dialect.name in ("mysql", "mariadb")
    with _queries_sent(engine) as sent:
        messages, updates = replica.read(lambda: queries.sync_reads(alice, ids[0] - 1, 10),
                                         rows_only=True)
    assert [m.content for m in messages] == ["one", "two"]
    assert [(u.id, u.message_id, u.sender_id) for u in updates] == [(update, ids[0], alice)]
    assert queries.sync_reads(alice, ids[0], 10)[0][0].content == "two"  # outside ``read``
    if not mariadb:
        return
    assert len(sent) == 1 and "START TRANSACTION" in sent[0] and "COMMIT" in sent[0]
    with engine.connect() as conn:  # the same connection, its transaction ended
        assert conn.connection.dbapi_connection is sent.connection
        assert conn.exec_driver_sql("SELECT @@in_transaction").scalar() == 0


def test_on_mariadb_a_failed_snapshot_read_leaves_no_transaction_behind(in_app):
    """A statement that fails half-way through a snapshot's query leaves its transaction
    open: that connection is retired, never handed to the next read."""
    from sqlalchemy.exc import DBAPIError

    engine = reads.engine()
    if engine.dialect.name not in ("mysql", "mariadb"):
        assert reads.rows_in_one_snapshot([]) is None  # SQLite: read one by one instead
        return
    engine.dispose()
    with engine.connect() as conn:
        first = conn.connection.dbapi_connection
    try:
        reads.rows_in_one_snapshot([(text("SELECT COUNT(*) AS n FROM users"), {}),
                                    (text("SELECT no_such_column FROM users"), {})])
    except DBAPIError:
        pass
    else:
        raise AssertionError("the failing read did not raise")
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is not first
        assert conn.exec_driver_sql("SELECT @@in_transaction").scalar() == 0
    assert reads.rows_in_one_snapshot([(text("SELECT 7 AS n"), {})]) == [[(7,)]]



def test_tokens_read_together_each_come_back_with_their_own_owner_and_hello(in_app):
    """What a burst of connects reads in one query: every token its own user and that
    user's conversations only; an unknown token nothing."""
    from tests.inprocess import add_group

    alone, grouped, busy = add_user("alone"), add_user("grouped"), add_user("busy")
    one = add_group(grouped, busy)
    two = add_group(busy)
    hashes = {_token(user): user for user in (alone, grouped, busy)}
    unknown = "0" * 64
    found = queries.token_owners_with_hello([*hashes, unknown])
    assert unknown not in found
    for token_hash, user in hashes.items():
        owner, hello = found[token_hash]
        assert owner.id == user
        if reads.engine().dialect.name == "sqlite":  # it reads the hello at the hello
            assert hello is None
        else:
            assert sorted(row.group_id for row in hello) == {
                    alone: [], grouped: [one], busy: sorted([one, two])}[user]
    # One token alone, as a lone connect asks: the same answer.
    token_hash = next(iter(hashes))
    assert queries.token_owner_with_hello(token_hash)[0].id == hashes[token_hash]
    assert queries.token_owner_with_hello(unknown)[0] is None
