"""A user's own settings (docs/protocol.md, Attention): of a conversation (mute, pin, archive), and
of themself (show presence, push previews).

They live on the user's read cursor of the conversation (one row per user and
conversation already), so the conversation list and ``hello`` read them in the
same query as the unread counts.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from ..extensions import db
from ..store import queries
from ..store.models import Message, ReadCursor, User
from . import validation
from .reading import Reading, resolve_conversation
from .shapes import user_json


class ConversationPrefs:
    """Mute, pin and archive, each user for themself."""

    def __init__(self, reading: Reading) -> None:
        self.reading = reading

    def change(self, user_id: int, target_id: Any, is_group: bool, fields: dict) -> dict:
        """Set the given flags (absent ones stay); returns the conversation object."""
        key, peer_id, group_id = resolve_conversation(user_id, target_id, is_group)
        # The flags are checked once the conversation is known (docs/protocol.md 6.6).
        flags = {name: validation.flag(fields[name], name)
                 for name in ("muted", "pinned", "archived") if fields.get(name) is not None}
        values: dict = {name: flags[name] for name in ("muted", "pinned") if name in flags}
        if "archived" in flags:
            # Archived until a message newer than the newest one now arrives.
            values["archived_at_id"] = (db.session.scalar(
                select(func.max(Message.id)).where(Message.conv_key == key)) or 0
            ) if flags["archived"] else None
        db.session.execute(queries.insert_ignore(ReadCursor.__table__).values(
            user_id=user_id, conv_key=key, peer_id=peer_id, group_id=group_id, last_read_id=0))
        if values:
            db.session.execute(update(ReadCursor).where(
                ReadCursor.user_id == user_id, ReadCursor.conv_key == key).values(**values))
        db.session.commit()
        return self.reading.conversations(user_id, archived=None, only_key=key)[0]


def me_json(user_id: int) -> dict:
    """The caller as ``GET /api/me`` shows them: the user and their own settings."""
    user = db.session.get(User, user_id)
    return {**user_json(user), "show_presence": bool(user.show_presence),
            "push_previews": bool(user.push_previews)}


def change_me(user_id: int, fields: dict) -> dict:
    """Set ``show_presence`` / ``push_previews`` (absent ones stay); the new ``me_json``."""
    values = {name: validation.flag(fields[name], name)
              for name in ("show_presence", "push_previews") if fields.get(name) is not None}
    if values:
        db.session.execute(update(User).where(User.id == user_id).values(**values))
        db.session.commit()
    return me_json(user_id)
