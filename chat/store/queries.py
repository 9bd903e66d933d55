"""The hot reads as plain SQL: history, unread, sync, conversation state, token owner.

Each of these runs for every page, every connect or every API call. Written with
the ORM they cost about three times the CPU (statement compilation, cache keys,
row processing), and selecting a page of ids first keeps MariaDB on the
``(conv_key, id)`` index (with the join to users in the same SELECT it read
every match and then sorted: 312 ms instead of 4 ms at 1,000,000 rows).

Two ways in, on purpose:

* ``session_rows``: on the request's ORM session, so a read sees what the
  request wrote (inside ``replica.read``: on the replica, or on the primary as
  that read asks: history on the autocommit connections below, one statement at
  a time, sync on a pooled connection of its own). A request holds at most one
  connection of the main pool; one of the autocommit pool is only ever held for
  one statement and never while waiting for the main pool, so the two cannot
  wait on each other;
* ``pooled_rows``: on a pooled connection outside the session, for the two
  reads of every connect (token and hello), where the session's transaction
  bookkeeping cost more CPU than the queries; on MySQL an autocommit connection
  (``reads``), read through the driver and given back to the pool without a
  ROLLBACK (``token_owner_with_hello``: both in one query). Only for
  one-statement reads that need nothing the current session has written and not
  committed.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from flask import current_app
from sqlalchemy import Executable, Row, Table, TextClause, bindparam, text
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..extensions import db
from . import reads, replica
from .coalesce import Coalescer
from .models import UTCDateTime

# Every connect and every conversation list runs these: per conversation, the user's own
# settings (mute, pin, archive), the newest message, the newest update (edit, recall,
# reaction), and what is unread from others (recalled messages left out: the index covers
# it), and the unread mentions of the user (or of everyone: user 0). ``me`` is the SQL
# that names the user: a bind, or the column of the token row the hello is read through.
_LAST_ID = "(SELECT MAX(m.id) FROM messages m WHERE m.conv_key = rc.conv_key)"
_LAST_UPDATE_ID = "(SELECT MAX(u.id) FROM message_updates u WHERE u.conv_key = rc.conv_key)"


def _unread(me: str) -> str:
    return ("(SELECT COUNT(*) FROM messages m WHERE m.conv_key = rc.conv_key "
            f" AND m.id > rc.last_read_id AND m.sender_id != {me} AND m.recalled = 0)")


def _conversation_columns(me: str) -> str:
    return ("SELECT rc.conv_key, rc.peer_id, rc.group_id, rc.last_read_id, rc.muted, rc.pinned, "
            f"rc.archived_at_id, {_LAST_ID} AS last_id, {_LAST_UPDATE_ID} AS last_update_id, "
            f"{_unread(me)} AS unread")


def _mentions(me: str) -> str:
    return ("(SELECT COUNT(DISTINCT n.message_id) FROM mentions n "
            f"WHERE n.user_id IN ({me}, 0) AND n.conv_key = rc.conv_key "
            f"AND n.message_id > rc.last_read_id AND n.sender_id != {me})")


# What a hello needs of each conversation, and no more (PyMySQL parses every column's
# descriptor in Python, on every connect): its group, its newest message and update, and
# what counts as unread (docs/protocol.md, Attention): the unread messages of a
# conversation that is not muted, the unread mentions of one that is.
def _hello_columns(me: str) -> str:
    return (f"SELECT rc.group_id, {_LAST_ID} AS last_id, {_LAST_UPDATE_ID} AS last_update_id, "
            f"CASE WHEN rc.muted THEN {_mentions(me)} ELSE {_unread(me)} END AS unread ")


_HELLO_ROWS = text(_hello_columns(":me") + "FROM read_cursors rc WHERE rc.user_id = :me")
# The same rows for the owners of many tokens, found in the same statement, each row naming
# its token (connects by token read their tokens and hellos in one round trip:
# ``token_owners_with_hello``).
_HELLO_ROWS_OF_TOKENS = text(_hello_columns("t.user_id") + ", t.token_hash AS of_token "
                             "FROM auth_tokens t JOIN read_cursors rc ON rc.user_id = t.user_id "
                             "WHERE t.token_hash IN :hashes").bindparams(
                                 bindparam("hashes", expanding=True))
# The groups of many users at once (``group_rows``): the group rows of their read cursors,
# as in the hello.
_GROUP_ROWS = text("SELECT user_id, group_id FROM read_cursors WHERE user_id IN :ids "
                   "AND group_id IS NOT NULL").bindparams(bindparam("ids", expanding=True))
_CONVERSATION_ROWS = text(_conversation_columns(":me") + f", {_mentions(':me')} AS mentions "
                          "FROM read_cursors rc WHERE rc.user_id = :me")

# Runs for every API call and every socket.
_OWNER_COLUMNS = ("SELECT u.id, u.username, u.created_at, t.id AS token_id, t.revoked_at, "
                  "t.created_at AS issued_at, t.last_used_at "
                  "FROM auth_tokens t JOIN users u ON u.id = t.user_id ")
_TOKEN_OWNER = text(_OWNER_COLUMNS + "WHERE t.token_hash = :token_hash")
_TOKEN_OWNERS = text(_OWNER_COLUMNS.replace("SELECT ", "SELECT t.token_hash AS of_token, ", 1)
                     + "WHERE t.token_hash IN :hashes").bindparams(
                         bindparam("hashes", expanding=True))
_CREDENTIAL_OWNER = text(_OWNER_COLUMNS + "WHERE t.id = :token_id")
_USER_EXISTS = text("SELECT 1 FROM users WHERE id = :id")
_TOUCH_CREDENTIAL = text("UPDATE auth_tokens SET last_used_at = :now WHERE id = :token_id")

_UNREAD_IDS = ("SELECT m.id FROM messages m JOIN read_cursors rc ON rc.conv_key = m.conv_key "
               "AND rc.user_id = :me WHERE m.id > rc.last_read_id AND m.sender_id != :me "
               "AND m.recalled = 0 ORDER BY m.id LIMIT :n")
_SYNC_IDS = ("SELECT m.id FROM messages m JOIN read_cursors rc ON rc.conv_key = m.conv_key "
             "AND rc.user_id = :me WHERE m.id > :since ORDER BY m.id LIMIT :n")


def pooled_rows(statement: TextClause, params: dict[str, Any]) -> list[Row]:
    """Rows of one read (one statement) on a pooled connection, outside the ORM session;
    on MySQL an autocommit one, read through the driver (``store.reads``)."""
    found = reads.rows(statement, params)
    if found is not None:
        return found
    with reads.engine().connect() as conn:
        return conn.execute(statement, params).all()


def session_rows(statement: Executable, params: dict[str, Any]) -> list[Row]:
    """Rows of one read on the request's ORM session (on the replica inside
    ``replica.read`` when the replica was chosen)."""
    return replica.rows(statement, params)


def insert_ignore(table: Table):
    """INSERT that skips rows whose key already exists (INSERT IGNORE / ON CONFLICT DO NOTHING)."""
    name = db.engine.dialect.name
    if name == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    if name in ("mysql", "mariadb"):
        return mysql_insert(table).prefix_with("IGNORE")
    raise NotImplementedError(f"no INSERT IGNORE for {name}")


def like_contains(text: str) -> str:
    """A LIKE pattern (with ``ESCAPE '\\'``) matching ``text`` anywhere, its %, _ and \\ literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def hello_rows(user_id: int) -> list[Row]:
    """Each of the user's conversations (group, last message id, last update id, and what
    counts as unread: its unread messages, or where muted its unread mentions), on a
    pooled connection: what every connect reads."""
    return pooled_rows(_HELLO_ROWS, {"me": user_id})


def group_rows(user_ids: list[int]) -> list[Row]:
    """(user_id, group_id) of each group of these users, on a pooled connection."""
    return pooled_rows(_GROUP_ROWS, {"ids": tuple(user_ids)})


def conversation_rows(user_id: int) -> list[Row]:
    """Each of the user's conversations (key, peer, group, cursor, mute, pin, archive, last
    message id, last update id, unread messages, unread mentions of the user)."""
    return session_rows(_CONVERSATION_ROWS, {"me": user_id})


def user_exists(user_id: int) -> bool:
    """Whether there is a user with this id (one index lookup, no ORM object: history
    asks it when a private page is empty)."""
    return bool(session_rows(_USER_EXISTS, {"id": user_id}))


def token_owner(token_hash: str) -> Row | None:
    """The user and credential of a token's hash (id, username, created_at, token_id,
    revoked_at, issued_at, last_used_at), on a pooled connection."""
    rows = pooled_rows(_TOKEN_OWNER, {"token_hash": token_hash})
    return rows[0] if rows else None


def token_owner_with_hello(token_hash: str) -> tuple[Row | None, list[Row] | None]:
    """``token_owner``, and the ``hello_rows`` of its user read in the same round trip
    (on MySQL: two statements in one query; ``None`` for the hello where they cannot be,
    and it is then read at the hello). The hello rows are only to be used once the
    token has been found live, and are shared with any connect of the same token read
    with it: read them, do not change them.

    Connects that ask while others' reads are in flight are read together, in one query
    (``store.coalesce``): in a burst of connects each one's query, pool checkout and
    result packets were a fifth of the worker's CPU."""
    together = current_app.extensions.get(_TOKEN_READS)
    if together is None:
        together = current_app.extensions.setdefault(_TOKEN_READS, Coalescer(
            token_owners_with_hello, missing=(None, []),
            patience=current_app.config["CHAT_DB_POOL_TIMEOUT"],
            too_long=lambda: PoolTimeout("no token read within CHAT_DB_POOL_TIMEOUT")))
    return together.get(token_hash)


_TOKEN_READS = "chat.token_reads"


def token_reads() -> Coalescer | None:
    """This app's coalescer of token reads, once a token has been read (for /metrics)."""
    return current_app.extensions.get(_TOKEN_READS)


def token_owners_with_hello(token_hashes: Sequence[str]) -> dict[str, tuple[Row | None,
                                                                             list[Row] | None]]:
    """``token_owner_with_hello`` of each of these tokens, in one query; a token that
    names no credential is left out."""
    params = {"hashes": tuple(token_hashes)}
    found = reads.rows_together([(_TOKEN_OWNERS, params), (_HELLO_ROWS_OF_TOKENS, params)])
    if found is None:  # SQLite: no hello read with the token
        owners = [(token_hash, token_owner(token_hash)) for token_hash in token_hashes]
        return {token_hash: (owner, None) for token_hash, owner in owners if owner is not None}
    owners, hello = found
    answers: dict[str, tuple[Row | None, list[Row] | None]] = {
        row.of_token: (row, []) for row in owners}
    for row in hello:  # (a token deleted between the two statements: its rows dropped)
        if row.of_token in answers:
            answers[row.of_token][1].append(row)
    return answers


def credential_owner(token_id: int) -> Row | None:
    """The same as ``token_owner``, by the credential's id."""
    rows = pooled_rows(_CREDENTIAL_OWNER, {"token_id": token_id})
    return rows[0] if rows else None


def touch_credential(token_id: int, now: str) -> None:
    """Record that a credential was used now (its own short transaction)."""
    with db.engine.begin() as conn:
        conn.execute(_TOUCH_CREDENTIAL, {"token_id": token_id, "now": now})


@lru_cache(maxsize=256)
def _page_statement(page_sql: str, descending: bool) -> TextClause:
    """The statement of ``_messages_in``, made once per shape (parsing a ``text`` for its
    bind names was a tenth of a sync's CPU)."""
    sql = ("SELECT m.id, m.sender_id, m.recipient_id, m.group_id, m.content, m.client_id, "
           "m.created_at, u.username AS sender_name, m.reply_to_id, m.reply_sender_id, "
           "m.reply_excerpt, m.reply_recalled, m.mentions, m.mention_all, m.attachments, "
           "m.reactions, m.edited_at, m.recalled FROM messages m "
           "JOIN users u ON u.id = m.sender_id "
           f"JOIN ({page_sql}) page ON page.id = m.id ORDER BY m.id "
           f"{'DESC' if descending else 'ASC'}")
    return text(sql).columns(created_at=UTCDateTime, edited_at=UTCDateTime)


def _messages_in(page_sql: str, params: dict, descending: bool = False) -> list[Row]:
    """The full rows of a page of ids (``page_sql``: a LIMITed SELECT of ids), in order."""
    return session_rows(_page_statement(page_sql, descending), params)


def history_rows(conv_key: str, before_id: int | None, before_time: str | None,
                 count: int) -> list[Row]:
    """Up to ``count`` messages of a conversation before the cursors, newest first."""
    page = "SELECT id FROM messages WHERE conv_key = :key"
    params: dict = {"key": conv_key, "n": count}
    if before_id is not None:
        page += " AND id < :before"
        params["before"] = before_id
    if before_time is not None:
        page += " AND created_at < :moment"
        params["moment"] = before_time
    return _messages_in(page + " ORDER BY id DESC LIMIT :n", params, descending=True)


def around_rows(conv_key: str, around_id: int, count: int) -> tuple[list[Row], list[Row]]:
    """Up to ``count`` messages of a conversation before ``around_id`` (newest first) and
    ``count`` from it on (oldest first, the message itself first when it is there)."""
    params = {"key": conv_key, "around": around_id, "n": count}
    older = _messages_in("SELECT id FROM messages WHERE conv_key = :key AND id < :around "
                         "ORDER BY id DESC LIMIT :n", params, descending=True)
    newer = _messages_in("SELECT id FROM messages WHERE conv_key = :key AND id >= :around "
                         "ORDER BY id LIMIT :n", params)
    return older, newer


def message_rows_by_id(ids: list[int]) -> list[Row]:
    """The full rows of these messages (in id order)."""
    if not ids:
        return []
    marks = ",".join(f":i{n}" for n in range(len(ids)))
    return _messages_in(f"SELECT id FROM messages WHERE id IN ({marks})",
                        {f"i{n}": v for n, v in enumerate(ids)})


def unread_rows(user_id: int, count: int) -> list[Row]:
    """The oldest ``count`` unread messages of every conversation of the user."""
    return _messages_in(_UNREAD_IDS, {"me": user_id, "n": count})


_SYNC_UPDATES = text(
    "SELECT u.id, u.kind, u.message_id, u.actor_id, u.payload, u.created_at, m.sender_id, "
    "m.recipient_id, m.group_id FROM message_updates u JOIN read_cursors rc "
    "ON rc.conv_key = u.conv_key AND rc.user_id = :me JOIN messages m ON m.id = u.message_id "
    "WHERE u.id > :since ORDER BY u.id LIMIT :n").columns(created_at=UTCDateTime)


def sync_reads(user_id: int, since_id: int, count: int) -> tuple[list[Row], list[Row]]:
    """The first ``count`` messages the user can see with ``id > since_id``, and the
    first ``count`` updates (edits, recalls, reactions) after it with their message's
    sender and conversation: both in one snapshot (a message committed between two
    reads must not fall behind a cursor moved past it by an update)."""
    params = {"me": user_id, "since": since_id, "n": count}
    messages, updates = replica.rows_together([(_page_statement(_SYNC_IDS, False), params),
                                               (_SYNC_UPDATES, params)])
    return messages, updates
