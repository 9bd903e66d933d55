"""The upload service: keep a file for its owner, say who may read it, forget unused ones.

Who may read a file (docs/protocol.md 3.10): its uploader, and the members of any
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

from ..background import BackgroundPool
from ..errors import BadRequest, NotFound, TooLarge
from ..extensions import db
from ..service.i18n import N_
from ..store.models import utcnow
from . import images, queries
from .models import Upload
from .names import sanitize
from .receive import TooBig, read_file_part
from .storage import Storage, shard_key

log = logging.getLogger("chat.files")

UNUSED_FOR = timedelta(hours=24)
# Slack for the multipart framing around the file, when checking Content-Length up front.
FRAMING = 16 * 1024


@dataclass(frozen=True)
class UploadSettings:
    """The limits of uploads (CHAT_MAX_UPLOAD_BYTES, CHAT_UPLOAD_QUOTA, ...)."""

    max_bytes: int
    quota: int
    spool_dir: str
    image_threads: int
    # How long a recall must be old before the files only recalled messages hold are
    # deleted: longer than a message may wait for its write (CHAT_SEND_TIMEOUT), see cleanup.
    settle: timedelta = timedelta(seconds=30)
    # How long an upload waits for the quota's turn behind the same user's others: under
    # the database driver's read timeout (CHAT_DB_TIMEOUT), so a wait is never taken for
    # a lost connection.
    lock_wait: float = 5.0

    @classmethod
    def from_config(cls, config) -> "UploadSettings":
        """Read them from the app's config."""
        return cls(max_bytes=config["CHAT_MAX_UPLOAD_BYTES"], quota=config["CHAT_UPLOAD_QUOTA"],
                   spool_dir=config["CHAT_UPLOAD_SPOOL"],
                   image_threads=config["CHAT_IMAGE_THREADS"],
                   settle=timedelta(seconds=config["CHAT_SEND_TIMEOUT"] + 20),
                   lock_wait=max(1.0, min(5.0, config["CHAT_DB_TIMEOUT"] / 2)))


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
    """The file object of docs/protocol.md 3.10, from an ``uploads`` row."""
    return {"id": row.id, "name": row.name, "size": row.size, "mime": row.mime,
            "kind": row.kind, "width": row.width, "height": row.height,
            "url": f"/api/files/{row.id}",
            "thumb_url": f"/api/files/{row.id}/thumb" if row.thumb_key else None}


class Uploads:
    """Receive, resolve, authorize, serve and clean up uploaded files."""

    def __init__(self, app, settings: UploadSettings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        os.makedirs(settings.spool_dir, exist_ok=True)
        # Decoding pictures is CPU work in C that releases the GIL: off the event loop,
        # in a bounded pool of threads that give way to the loop, as password hashing is.
        self.pool = BackgroundPool(settings.image_threads)
        with app.app_context():
            self.engine = db.engine
        # The newest recall the clean-up has looked at (0: look at every recall once).
        self.recall_cursor = 0
        self.received = 0  # uploads accepted by this process (/metrics)

    # -- receiving ----------------------------------------------------------

    def used_bytes(self, owner_id: int) -> int:
        """Bytes the user's kept files take (counted against CHAT_UPLOAD_QUOTA)."""
        with self.engine.connect() as conn:
            return queries.used_bytes(conn, owner_id)

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
            kept = self._keep(owner_id, got)
            self.received += 1
            return kept
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
            # The quota again, for uploads of one user running side by side: each took its
            # room before reading its body; here they take turns, each counting what the
            # ones before it committed (a fresh read) before committing itself.
            with queries.quota_turn(self.engine, owner_id, self.settings.lock_wait) as conn:
                used = queries.used_bytes(conn, owner_id)
                if used + row.size + (row.thumb_size or 0) > self.settings.quota:
                    raise TooLarge()
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
            rows = queries.resolve(conn, ids, utcnow() - UNUSED_FOR + timedelta(minutes=1))
        return {row.id: (row.owner_id, file_object(row)) for row in rows
                if row.live or (not row.linked and row.fresh)}

    # -- reading --------------------------------------------------------------

    def served(self, user_id: int, upload_id: int, thumb: bool) -> Served:
        """The file (or its thumbnail) if ``user_id`` may read it, else 404."""
        row = db.session.get(Upload, upload_id)
        if row is None or (thumb and not row.thumb_key):
            raise NotFound(N_("no such file"))
        if row.owner_id != user_id and not queries.readable(db.session, upload_id, user_id):
            raise NotFound(N_("no such file"))
        if thumb:
            return Served(row.thumb_key, row.thumb_size or 0, row.thumb_mime,
                          f'"{row.digest[:32]}-t"', row.name, True)
        return Served(row.storage_key, row.size, row.mime, f'"{row.digest[:32]}"', row.name,
                      row.kind == "image")

    # -- cleaning up ----------------------------------------------------------

    def cleanup(self, full: bool = False) -> int:
        """Delete unused uploads (24 h) and those only recalled messages hold; how many.

        The unused ones are one index range (``attached``, ``created_at``). Recalled ones
        are found from the recalls made since the last round (``message_updates`` ids
        after this process's cursor), or, with ``full``, by checking every held upload.

        A recalled file is deleted only once every recall of the messages holding it is
        older than ``settle``: a message checked while one of them was live (``resolve``)
        is written within CHAT_SEND_TIMEOUT or refused, so by then it is stored and holds
        the file, or it never will be. Safe with several processes: each row is deleted by
        a DELETE that repeats the condition, and only the process whose DELETE took the
        row removes its objects. The cursor moves only after the round's deletes, so a
        round that fails is done again.
        """
        now = utcnow()
        cut, settled = now - UNUSED_FOR, now - self.settings.settle
        newest = self.recall_cursor
        with self.engine.connect() as conn:
            found = {row.id: row for row in queries.unused(conn, cut)}
            if full:
                found.update((row.id, row) for row in queries.only_recalled(conn, settled))
            else:
                newest, recalled = queries.recalled_after(conn, self.recall_cursor, settled)
                found.update((row.id, row) for row in recalled)
            conn.commit()
        removed = 0
        for row in found.values():
            with self.engine.begin() as conn:
                taken = queries.delete_if_unheld(conn, row.id, cut, settled)
            if taken:
                self._forget_objects(row.storage_key, row.thumb_key)
                removed += 1
        self.recall_cursor = newest
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
            return queries.totals(conn)

def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()
