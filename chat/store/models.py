"""The schema: users, follows, blocks, groups, memberships, messages, read cursors, notices, tokens.

Every table is utf8mb4 with a binary collation on MySQL: emoji and every CJK
character round-trip, and keys such as ``client_id`` compare byte for byte.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask_login import UserMixin
from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String,
                        Text, UniqueConstraint, false, true)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db

# Millisecond timestamps on MySQL too (DATETIME has no fraction by default).
UTCDateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")

MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin",
               "mysql_engine": "InnoDB"}


def utcnow() -> datetime:
    """The current UTC time as a naive datetime (how every timestamp is stored)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def private_conv_key(a: int, b: int) -> str:
    """The storage key of the private chat between users ``a`` and ``b`` (``p:<lo>:<hi>``)."""
    lo, hi = (a, b) if a <= b else (b, a)
    return f"p:{lo}:{hi}"


def group_conv_key(group_id: int) -> str:
    """The storage key of a group chat (``g:<id>``)."""
    return f"g:{group_id}"


class User(UserMixin, db.Model):
    """An account. ``username_key`` is the lower-cased name that keeps names unique."""

    __tablename__ = "users"
    __table_args__ = (MYSQL_TABLE,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # docs/protocol.md, Attention: whether friends see presence, whether pushes carry the text,
    # and when the user's last connection closed (null: never seen, or online).
    show_presence: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    push_previews: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # Set at login (``web.auth``): which session row authenticated it (a request's user is
    # an ``accounts.Caller``).
    auth_token_id = None
    auth_session_key = None

    def get_id(self) -> str:
        """Flask-Login keeps this in the session: the session's token, not the user id."""
        return self.auth_session_key or ""


class AuthToken(db.Model):
    """A credential: an API token or a browser session. Only a SHA-256 of the secret is kept."""

    __tablename__ = "auth_tokens"
    __table_args__ = (MYSQL_TABLE,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "api" or "session"
    name: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Moved forward (at most hourly) when the credential is used; an idle one expires.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Follow(db.Model):
    """``follower_id`` follows ``followee_id``."""

    __tablename__ = "follows"
    __table_args__ = (Index("ix_follows_followee", "followee_id"), MYSQL_TABLE)

    follower_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    followee_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Block(db.Model):
    """``blocker_id`` refuses private messages from ``blocked_id``."""

    __tablename__ = "blocks"
    __table_args__ = (MYSQL_TABLE,)

    blocker_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    blocked_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Group(db.Model):
    """A group chat. Named ``chat_groups`` because GROUPS is a reserved word in MySQL 8."""

    __tablename__ = "chat_groups"
    __table_args__ = (MYSQL_TABLE,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    icon: Mapped[str] = mapped_column(String(500), default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "public" (anyone finds and joins it) or "private" (members and invitees only).
    visibility: Mapped[str] = mapped_column(String(8), default="public",
                                            server_default="public")


class Membership(db.Model):
    """A user's place in a group, with its role (``owner`` or ``member``)."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_user", "user_id"), MYSQL_TABLE)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("chat_groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="member")
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invitation(db.Model):
    """An owner asked someone to join a group; they join or decline (docs/protocol.md, Attention)."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_user", "user_id"), MYSQL_TABLE)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("chat_groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    inviter_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(db.Model):
    """One message, stored once whatever the number of recipients.

    ``conv_key`` names the conversation ("p:<lo>:<hi>" or "g:<group>") so that one
    index range serves history, unread counts and sync. Ids are handed out by
    ``MessageSequence`` in commit order, never reused.
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("sender_id", "client_id", name="uq_messages_sender_client"),
        # Covers history pages, sync, and unread counts (which leave out recalled ones).
        Index("ix_messages_conv_id_sender_recalled", "conv_key", "id", "sender_id",
              "recalled"),
        # An edit or recall of a message updates the excerpt kept on its replies.
        Index("ix_messages_reply_to", "reply_to_id"),
        MYSQL_TABLE,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    conv_key: Mapped[str] = mapped_column(String(24))
    # No foreign keys on this hot table: the service checks users and groups in bulk
    # before a batch is written, and InnoDB would look each one up again per row.
    sender_id: Mapped[int] = mapped_column(Integer)
    recipient_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content: Mapped[str] = mapped_column(Text().with_variant(mysql.MEDIUMTEXT(), "mysql",
                                                             "mariadb"))
    # On MySQL/MariaDB a no-pad binary collation (migration 0002): "a1" and "a1 " are
    # different keys, as they are to the service.
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What a history page shows lives on the row, so a page is one index range: the
    # message this one answers, with the original's sender and current excerpt (kept up
    # to date when the original is edited or recalled), mentions, files, and the
    # reactions (JSON: [[emoji, [user ids in the order they reacted]], ...] in the order
    # each emoji was first used; changed under the row's lock), and whether it was
    # edited or recalled.
    reply_to_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reply_sender_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reply_excerpt: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reply_recalled: Mapped[bool] = mapped_column(Boolean, default=False,
                                                 server_default=false())
    mentions: Mapped[str | None] = mapped_column(Text, nullable=True)
    mention_all: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    attachments: Mapped[str | None] = mapped_column(Text, nullable=True)
    reactions: Mapped[str | None] = mapped_column(Text, nullable=True)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recalled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class MessageUpdate(db.Model):
    """An edit, recall or reaction: ordered with the messages (ids from the same sequence)
    so that ``sync`` returns both, and idempotent by the actor's ``client_id``."""

    __tablename__ = "message_updates"
    __table_args__ = (
        UniqueConstraint("actor_id", "client_id", name="uq_updates_actor_client"),
        Index("ix_message_updates_conv_id", "conv_key", "id"),
        Index("ix_message_updates_message", "message_id"),
        MYSQL_TABLE,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    conv_key: Mapped[str] = mapped_column(String(24))
    message_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int] = mapped_column(Integer)
    # No-pad binary collation on MySQL/MariaDB (as messages.client_id).
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The update frame's own fields (content and edited_at, emoji/on/reactions), as JSON.
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Mention(db.Model):
    """A message that mentions a user (``user_id`` 0: the whole group), for unread counts."""

    __tablename__ = "mentions"
    __table_args__ = (MYSQL_TABLE,)

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    conv_key: Mapped[str] = mapped_column(String(24), primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    sender_id: Mapped[int] = mapped_column(Integer)


class MessageSequence(db.Model):
    """A single row holding the last message id handed out.

    Taking ids from a locked row (rather than AUTO_INCREMENT) makes them follow
    commit order across processes, so ``sync`` from the largest id seen never
    skips a message that committed late.
    """

    __tablename__ = "message_sequence"
    __table_args__ = (MYSQL_TABLE,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)


class ReadCursor(db.Model):
    """How far a user has read a conversation; its rows are also the user's conversation list."""

    __tablename__ = "read_cursors"
    __table_args__ = (MYSQL_TABLE,)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    conv_key: Mapped[str] = mapped_column(String(24), primary_key=True)
    peer_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_read_id: Mapped[int] = mapped_column(BigInteger, default=0)
    # The user's own settings of the conversation (docs/protocol.md, Attention). Archived while
    # ``archived_at_id`` is set and no newer message came (or the conversation is muted).
    muted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    archived_at_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Notice(db.Model):
    """Something that happened to a user: follow, group_added, group_removed, group_deleted,
    group_invited."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_user_id", "user_id", "id"), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[int] = mapped_column(Integer)
    # No foreign key: a group_deleted notice outlives its group.
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    group_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PushSubscription(db.Model):
    """A browser's Web Push subscription (RFC 8030): where to post, and the keys (RFC 8291)."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (Index("ix_push_subscriptions_user", "user_id"),
                      UniqueConstraint("endpoint_hash", name="uq_push_endpoint"), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # SHA-256 of the endpoint: endpoints are long URLs, too long for a unique index.
    endpoint_hash: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(Text)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
