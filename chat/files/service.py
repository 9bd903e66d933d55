"""The upload service: keep a file for its owner, say who may read it, forget unused ones.

Who may read a file (PROTOCOL.md 6.3): its uploader, and the members of any
conversation holding a message (not recalled) with it; to everyone else it does
not exist (404). ``upload_links`` says which messages hold which upload; the
message committer writes it in the same transaction as the message.
"""
from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

from gevent.threadpool import ThreadPool
from sqlalchemy import bindparam, text

from ..errors import BadRequest, ChatError, NotFound
from ..extensions import db
from ..service.i18n import N_
from ..store.models import UTCDateTime, utcnow
from . import images
from .models import Upload
from .names import sanitize
from .receive import TooBig, read_file_part
from .storage import Storage, shard_key

log = logging.getLogger("chat.files")

UNUSED_FOR = timedelta(hours=24)
# Slack for the multipart framing around the file, when checking Content-Length up front.
FRAMING = 16 * 1024


class TooLarge(ChatError):
    """An upload over the size limit or the quota (PROTOCOL.md 6.6)."""

    status, code, default_message = 413, "too_large", "the file is too large"


@dataclass(frozen=True)
class UploadSettings:
    """The limits of uploads (CHAT_MAX_UPLOAD_BYTES, CHAT_UPLOAD_QUOTA, ...)."""

    max_bytes: int
    quota: int
    spool_dir: str
    image_threads: int

    @classmethod
    def from_config(cls, config) -> "UploadSettings":
        """Read them from the app's config."""
        return cls(max_bytes=config["CHAT_MAX_UPLOAD_BYTES"], quota=config["CHAT_UPLOAD_QUOTA"],
                   spool_dir=config["CHAT_UPLOAD_SPOOL"], image_threads=config["CHAT_IMAGE_THREADS"])


@dataclass(frozen=True)
class Served:
    """What a download needs: the stored object and the headers that describe it."""

    key: str
    size: int
    mime: str
    etag: str
    name: str
    inline: bool


def file_object(row) -> dict:
    """The file object of PROTOCOL.md 6.3, from an ``uploads`` row."""
    return {"id": row.id, "name": row.name, "size": row.size, "mime": row.mime,
            "kind": row.kind, "width": row.width, "height": row.height,
            "url": f"/api/files/{row.id}",
            "thumb_url": f"/api/files/{row.id}/thumb" if row.thumb_key else None}


_READABLE = text(
    "SELECT 1 FROM upload_links l JOIN messages m ON m.id = l.message_id "
    "WHERE l.upload_id = :f AND m.recalled = 0 AND (m.sender_id = :u OR m.recipient_id = :u "
    "OR (m.group_id IS NOT NULL AND EXISTS (SELECT 1 FROM memberships ms "
    "WHERE ms.group_id = m.group_id AND ms.user_id = :u))) LIMIT 1")
_RESOLVE = text(
    "SELECT u.id, u.owner_id, u.name, u.size, u.mime, u.kind, u.width, u.height, u.thumb_key, "
    "u.created_at, EXISTS (SELECT 1 FROM upload_links l WHERE l.upload_id = u.id) AS linked, "
    "EXISTS (SELECT 1 FROM upload_links l JOIN messages m ON m.id = l.message_id "
    "WHERE l.upload_id = u.id AND m.recalled = 0) AS live, u.created_at >= :cut AS fresh "
    "FROM uploads u WHERE u.id IN :ids").bindparams(bindparam("ids", expanding=True),
                                                     bindparam("cut", type_=UTCDateTime))
# An upload no message holds, made before :cut; or one only recalled messages hold.
_UNUSED = ("NOT EXISTS (SELECT 1 FROM upload_links l WHERE l.upload_id = uploads.id) "
           "AND uploads.created_at < :cut")
_ONLY_RECALLED = (
    "EXISTS (SELECT 1 FROM upload_links l WHERE l.upload_id = uploads.id) AND NOT EXISTS "
    "(SELECT 1 FROM upload_links l JOIN messages m ON m.id = l.message_id "
    "WHERE l.upload_id = uploads.id AND m.recalled = 0)")


class Uploads:
    """Receive, resolve, authorize, serve and clean up uploaded files."""

    def __init__(self, app, settings: UploadSettings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        os.makedirs(settings.spool_dir, exist_ok=True)
        # Decoding pictures is CPU work in C that releases the GIL: off the event loop,
        # in a bounded pool, as password hashing is.
        self.pool = ThreadPool(max(1, settings.image_threads))
        with app.app_context():
            self.engine = db.engine

    # -- receiving ----------------------------------------------------------

    def used_bytes(self, owner_id: int) -> int:
        """Bytes the user's kept files take (counted against CHAT_UPLOAD_QUOTA)."""
        with self.engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner_id = :u"),
                {"u": owner_id}).scalar() or 0)

    def receive(self, owner_id: int, stream: BinaryIO, boundary: bytes,
                content_length: int | None) -> dict:
        """Read the multipart body, keep the file, answer its file object (413, 400)."""
        room = self.settings.quota - self.used_bytes(owner_id)
        allowed = min(self.settings.max_bytes, max(room, 0))
        if content_length is not None and content_length > allowed + FRAMING:
            raise TooLarge()  # refused before a byte of the body is read
        try:
            got = read_file_part(stream, boundary, allowed, self.settings.spool_dir)
        except TooBig:
            raise TooLarge() from None
        try:
            return self._keep(owner_id, got)
        finally:
            for path in (got.path, got.path + ".pic", got.path + ".thumb"):
                if os.path.exists(path):
                    os.unlink(path)

    def _keep(self, owner_id: int, got) -> dict:
        fmt = images.sniff(got.head)
        name = sanitize(got.filename)
        row = Upload(owner_id=owner_id, name=name, storage_key="", digest=got.sha256,
                     size=got.size, kind="file", mime="application/octet-stream")
        path = got.path
        if fmt is not None:
            try:
                cleaned = self.pool.apply(images.clean, (got.path, fmt, path + ".pic",
                                                         path + ".thumb"))
            except images.NotAPicture:
                raise BadRequest(N_("the picture could not be read, or has over 50 "
                                    "megapixels")) from None
            path = path + ".pic"
            row.kind, row.mime = "image", images.MIME[fmt]
            row.width, row.height = cleaned.width, cleaned.height
            row.size = os.path.getsize(path)
            row.digest = self.pool.apply(_sha256, (path,))
            row.thumb_mime = cleaned.thumb_mime
            row.thumb_size = os.path.getsize(got.path + ".thumb")
        db.session.add(row)
        db.session.flush()  # the id names the stored objects
        token = secrets.token_hex(8)
        row.storage_key = shard_key(row.id, token)
        if row.kind == "image":
            row.thumb_key = shard_key(row.id, token, ".thumb")
        try:
            self.storage.put(row.storage_key, path, row.mime)
            if row.thumb_key:
                self.storage.put(row.thumb_key, got.path + ".thumb", row.thumb_mime)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            self._forget_objects(row.storage_key, row.thumb_key)
            raise
        return file_object(row)

    # -- messages -------------------------------------------------------------

    def resolve(self, ids: list[int]) -> dict[int, tuple[int, dict]]:
        """{upload id: (uploader id, file object)} for the ids that exist (the committer's hook)."""
        if not ids:
            return {}
        with self.engine.connect() as conn:
            # What the clean-up is about to delete names nothing: an unused upload in its
            # last minute, or one only recalled messages hold (else the new message could
            # be stored holding a file deleted under it).
            rows = conn.execute(_RESOLVE, {"ids": list(ids), "cut": utcnow() - UNUSED_FOR
                                           + timedelta(minutes=1)}).all()
        return {row.id: (row.owner_id, file_object(row)) for row in rows
                if row.live or (not row.linked and row.fresh)}

    # -- reading --------------------------------------------------------------

    def served(self, user_id: int, upload_id: int, thumb: bool) -> Served:
        """The file (or its thumbnail) if ``user_id`` may read it, else 404."""
        row = db.session.get(Upload, upload_id)
        if row is None or (thumb and not row.thumb_key):
            raise NotFound(N_("no such file"))
        if row.owner_id != user_id and db.session.execute(
                _READABLE, {"f": upload_id, "u": user_id}).first() is None:
            raise NotFound(N_("no such file"))
        if thumb:
            return Served(row.thumb_key, row.thumb_size or 0, row.thumb_mime,
                          f'"{row.digest[:32]}-t"', row.name, True)
        return Served(row.storage_key, row.size, row.mime, f'"{row.digest[:32]}"', row.name,
                      row.kind == "image")

    # -- cleaning up ----------------------------------------------------------

    def cleanup(self) -> int:
        """Delete unused uploads (24 h) and those only recalled messages hold; how many.

        Safe with several processes: each row is deleted by a DELETE that repeats the
        condition, and only the process whose DELETE took the row removes its objects.
        """
        params = {"cut": utcnow() - UNUSED_FOR}
        cut = bindparam("cut", type_=UTCDateTime)
        removed = 0
        with self.engine.connect() as conn:
            found = conn.execute(text(
                f"SELECT id, storage_key, thumb_key FROM uploads WHERE ({_UNUSED}) "
                f"OR ({_ONLY_RECALLED}) LIMIT 1000").bindparams(cut), params).all()
            for row in found:
                taken = conn.execute(text(
                    f"DELETE FROM uploads WHERE id = :id AND (({_UNUSED}) OR ({_ONLY_RECALLED}))"
                ).bindparams(cut), {**params, "id": row.id}).rowcount
                if taken:
                    conn.execute(text("DELETE FROM upload_links WHERE upload_id = :id"),
                                 {"id": row.id})
                conn.commit()
                if taken:
                    self._forget_objects(row.storage_key, row.thumb_key)
                    removed += 1
        if removed:
            log.info("event=uploads_cleaned count=%s", removed)
        return removed

    def _forget_objects(self, *keys: str | None) -> None:
        for key in keys:
            if key:
                try:
                    self.storage.delete(key)
                except Exception:  # the row is gone: an orphan object only costs space
                    log.exception("event=upload_delete_failed key=%s", key)

    def totals(self) -> tuple[int, int]:
        """(uploads kept, bytes stored with thumbnails), for /metrics."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT COUNT(*), COALESCE(SUM(size), 0) + "
                                    "COALESCE(SUM(thumb_size), 0) FROM uploads")).one()
        return int(row[0]), int(row[1])


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()
