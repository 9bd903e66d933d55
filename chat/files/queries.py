"""The SQL of files and pictures (the same on MySQL and SQLite), on a connection or session.

Who may read a file, which ids a message may attach, and which uploads the
clean-up may delete: each is one statement, so none reads rows it does not need.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from ..errors import UploadBusy
from ..store.models import UTCDateTime

_CUT = bindparam("cut", type_=UTCDateTime)  # SQLite compares the stored text form
_SETTLED = bindparam("settled", type_=UTCDateTime)

_READABLE = text(
    "SELECT 1 FROM upload_links l JOIN messages m ON m.id = l.message_id "
    "WHERE l.upload_id = :f AND m.recalled = 0 AND (m.sender_id = :u OR m.recipient_id = :u "
    "OR (m.group_id IS NOT NULL AND EXISTS (SELECT 1 FROM memberships ms "
    "WHERE ms.group_id = m.group_id AND ms.user_id = :u))) LIMIT 1")
_RESOLVE = text(
    "SELECT u.id, u.owner_id, u.name, u.size, u.mime, u.kind, u.width, u.height, u.thumb_key, "
    "EXISTS (SELECT 1 FROM upload_links l WHERE l.upload_id = u.id) AS linked, "
    "EXISTS (SELECT 1 FROM upload_links l JOIN messages m ON m.id = l.message_id "
    "WHERE l.upload_id = u.id AND m.recalled = 0) AS live, u.created_at >= :cut AS fresh "
    "FROM uploads u WHERE u.id IN :ids").bindparams(bindparam("ids", expanding=True), _CUT)
# An upload no message holds, made before :cut; or one only recalled messages hold, every
# one of them recalled before :settled (a message checked while one of them was still live
# is either stored by then, holding the file, or refused: see Uploads.cleanup).
_UNUSED = ("uploads.attached = 0 AND uploads.created_at < :cut AND NOT EXISTS "
           "(SELECT 1 FROM upload_links l WHERE l.upload_id = uploads.id)")
_ONLY_RECALLED = (
    "EXISTS (SELECT 1 FROM upload_links l WHERE l.upload_id = uploads.id) AND NOT EXISTS "
    "(SELECT 1 FROM upload_links l JOIN messages m ON m.id = l.message_id "
    "WHERE l.upload_id = uploads.id AND m.recalled = 0) AND NOT EXISTS "
    "(SELECT 1 FROM upload_links l JOIN message_updates mu ON mu.message_id = l.message_id "
    "WHERE l.upload_id = uploads.id AND mu.kind = 'recall' AND mu.created_at >= :settled)")
BATCH = 1000


def used_bytes(conn, owner_id: int) -> int:
    """Bytes of the user's kept files, thumbnails included."""
    return int(conn.execute(text("SELECT COALESCE(SUM(size), 0) + COALESCE(SUM(thumb_size), 0) "
                                 "FROM uploads WHERE owner_id = :u"), {"u": owner_id}).scalar()
               or 0)


def resolve(conn, ids: list[int], fresh_after: datetime) -> list:
    """Rows of these uploads, with whether any message (``linked``) or a message not
    recalled (``live``) holds each, and whether it was made after ``fresh_after``."""
    return conn.execute(_RESOLVE, {"ids": list(ids), "cut": fresh_after}).all()


def readable(session, upload_id: int, user_id: int) -> bool:
    """Whether a message (not recalled) in one of the user's conversations holds it."""
    return session.execute(_READABLE, {"f": upload_id, "u": user_id}).first() is not None


def unused(conn, cut: datetime) -> list:
    """Uploads never attached, made before ``cut`` (one index range)."""
    return conn.execute(text(
        "SELECT id, storage_key, thumb_key FROM uploads WHERE attached = 0 "
        f"AND created_at < :cut LIMIT {BATCH}").bindparams(_CUT), {"cut": cut}).all()


def only_recalled(conn, settled: datetime) -> list:
    """Every upload that only messages recalled before ``settled`` hold (checks each held
    upload)."""
    return conn.execute(text(f"SELECT id, storage_key, thumb_key FROM uploads "
                             f"WHERE {_ONLY_RECALLED} LIMIT {BATCH}").bindparams(_SETTLED),
                        {"settled": settled}).all()


def recalled_after(conn, cursor: int, settled: datetime) -> tuple[int, list]:
    """(update id to resume after, uploads held by messages recalled after ``cursor``).

    Only recalls made before ``settled`` count, and the answer stops short of the first
    one that is younger, so that it is looked at again once it has settled. Update ids
    are handed out under the sequence row's lock and committed in order, so nothing
    committed later gets an id at or below the newest seen.
    """
    newest = conn.execute(text("SELECT MAX(id) FROM message_updates")).scalar() or 0
    young = conn.execute(text(
        "SELECT MIN(id) FROM message_updates WHERE id > :after AND id <= :upto "
        "AND kind = 'recall' AND created_at >= :settled").bindparams(_SETTLED),
        {"after": cursor, "upto": newest, "settled": settled}).scalar()
    if young is not None:
        newest = young - 1
    rows = conn.execute(text(
        "SELECT DISTINCT u.id, u.storage_key, u.thumb_key FROM message_updates mu "
        "JOIN upload_links l ON l.message_id = mu.message_id "
        "JOIN uploads u ON u.id = l.upload_id "
        "WHERE mu.id > :after AND mu.id <= :upto AND mu.kind = 'recall'"),
        {"after": cursor, "upto": newest}).all()
    return max(newest, cursor), rows


def delete_if_unheld(conn, upload_id: int, cut: datetime, settled: datetime) -> bool:
    """Delete the row (and its links) if it is still unused or held only by messages
    recalled before ``settled``; whether this call deleted it (so only one process removes
    its objects)."""
    taken = conn.execute(text(
        f"DELETE FROM uploads WHERE id = :id AND (({_UNUSED}) OR ({_ONLY_RECALLED}))"
    ).bindparams(_CUT, _SETTLED), {"id": upload_id, "cut": cut, "settled": settled}).rowcount
    if taken:
        conn.execute(text("DELETE FROM upload_links WHERE upload_id = :id"), {"id": upload_id})
    return bool(taken)


@contextmanager
def quota_turn(engine, owner_id: int, wait: float) -> Iterator[Connection]:
    """Let one upload of the user at a time check the quota and commit: yields a
    connection that sees every upload committed before the turn.

    MySQL: a named lock on a connection of its own, which no row lock can deadlock with.
    ``wait`` must stay under the driver's read timeout, or a long wait would look like a
    lost connection. Raises UploadBusy (503) if the turn does not come in time. SQLite's
    writes are one at a time already: just a connection.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            yield conn
            return
        tag = hashlib.sha1(str(engine.url.database).encode()).hexdigest()[:12]
        name = f"chat-quota:{tag}:{owner_id}"  # names are server-wide: one per database
        if conn.execute(text("SELECT GET_LOCK(:n, :w)"), {"n": name, "w": wait}).scalar() != 1:
            raise UploadBusy()
        try:
            conn.commit()  # the named lock outlives it; the next read starts afresh
            yield conn
        finally:
            conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})
            conn.commit()


def totals(conn) -> tuple[int, int]:
    """(uploads kept, bytes stored with thumbnails)."""
    row = conn.execute(text("SELECT COUNT(*), COALESCE(SUM(size), 0) + "
                            "COALESCE(SUM(thumb_size), 0) FROM uploads")).one()
    return int(row[0]), int(row[1])
