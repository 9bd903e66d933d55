"""The ``uploads`` table (one row per kept file) and ``upload_links`` (which message holds it)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..store.models import MYSQL_TABLE, BigId, UTCDateTime, utcnow


class Upload(db.Model):
    """A file a user uploaded: where its bytes are, and what the file object shows."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_owner", "owner_id"),
                      Index("ix_uploads_created", "created_at"), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    mime: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))  # "image" or "file"
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    storage_key: Mapped[str] = mapped_column(String(128))
    thumb_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    thumb_mime: Mapped[str | None] = mapped_column(String(32), nullable=True)
    thumb_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of what is served: the ETag
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UploadLink(db.Model):
    """A message holding an upload (written by the message committer with the message)."""

    __tablename__ = "upload_links"
    __table_args__ = (Index("ix_upload_links_message", "message_id"), MYSQL_TABLE)

    upload_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
