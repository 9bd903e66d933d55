"""How the service's results look on the wire: messages, acks, users, notices, times.

Every frame and API answer is built here, so a field is named in one place.
Frames are serialised once (``dumps``) and the same bytes go to every recipient.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

_last_iso: list = [None, None]  # a batch shares one timestamp: format it once


def iso(moment: datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 with milliseconds and Z."""
    if moment is None:
        return None
    if moment == _last_iso[0]:
        return _last_iso[1]
    text = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z")
    _last_iso[0], _last_iso[1] = moment, text
    return text


def dumps(frame: dict) -> bytes:
    """Serialise a frame once (orjson: fast, and never a raw newline)."""
    return orjson.dumps(frame)


def reactions_list(summary: list) -> list[dict]:
    """The stored summary ``[[emoji, [user ids]], ...]`` as the wire shows it."""
    return [{"emoji": emoji, "count": len(users), "user_ids": users} for emoji, users in summary]


def message_frame(row: Any) -> dict:
    """A stored message as the ``message`` frame (and as history, unread and sync items):
    as it is now, recalled ones with their text, files, mentions and reactions gone."""
    # Each field is read once into a local: history builds 50 of these per page, and a
    # result row's attribute access is a lookup by name.
    group_id, recipient_id, sender_id = row.group_id, row.recipient_id, row.sender_id
    target = f"g{group_id}" if group_id is not None else str(recipient_id)
    recalled = bool(row.recalled)
    reply = None
    reply_to = row.reply_to_id
    if reply_to is not None:
        reply_recalled = bool(row.reply_recalled)
        reply = {"id": reply_to, "sender_id": row.reply_sender_id,
                 "excerpt": "" if reply_recalled else (row.reply_excerpt or ""),
                 "recalled": reply_recalled}
    if recalled:
        content, mentions, mention_all, attachments, reactions = "", [], False, [], []
    else:
        content, mention_all = row.content, bool(row.mention_all)
        mentions, attachments, summary = row.mentions, row.attachments, row.reactions
        mentions = orjson.loads(mentions) if mentions else []
        attachments = orjson.loads(attachments) if attachments else []
        reactions = reactions_list(orjson.loads(summary)) if summary else []
    edited_at = row.edited_at
    return {"kind": "message", "code": 200, "id": row.id,
            "from": f"{sender_id}->{target}", "sender_id": sender_id,
            "sender_name": row.sender_name, "recipient_id": recipient_id,
            "group_id": group_id, "content": content,
            "created_at": iso(row.created_at), "client_id": row.client_id,
            "reply_to": reply, "mentions": mentions, "mention_all": mention_all,
            "attachments": attachments,
            "edited_at": None if edited_at is None else iso(edited_at), "recalled": recalled,
            "reactions": reactions}


def update_frame(update_id: int, kind: str, message: Any, actor_id: int, created_at: Any,
                 payload: dict) -> dict:
    """An edit, recall or reaction, as pushed live and returned by ``sync``."""
    return {"kind": "update", "code": 200, "id": update_id, "update": kind,
            "message_id": message.id, "actor_id": actor_id, "sender_id": message.sender_id,
            "recipient_id": message.recipient_id, "group_id": message.group_id,
            "created_at": iso(created_at), **payload}


def change_ack(update_id: int | None, message_id: int, client_id: Any) -> dict:
    """The ack of an edit, recall or reaction: the update's id, or the message's when
    nothing changed."""
    return {"kind": "ack", "code": 200, "id": update_id if update_id else message_id,
            "message_id": message_id, "client_id": client_id}


def ack_frame(row: Any, online: bool | None) -> dict:
    """The ack of a stored message (also the body of ``POST /api/messages``)."""
    ack = {"kind": "ack", "code": 200, "id": row.id, "client_id": row.client_id,
           "created_at": iso(row.created_at), "recipient_id": row.recipient_id,
           "group_id": row.group_id}
    if row.group_id is None:
        ack["online"] = bool(online)
        ack["content"] = "recipient online" if online else "recipient offline"
    else:
        ack["content"] = "sent"
    return ack


def read_frame(user_id: int, peer_id: int | None, group_id: int | None, value: int) -> dict:
    """A read receipt: ``user_id`` has read the conversation up to ``value``."""
    return {"kind": "read", "code": 200, "user_id": user_id, "recipient_id": peer_id,
            "group_id": group_id, "last_read_id": value}


def typing_frame(user_id: int, peer_id: int | None, group_id: int | None) -> dict:
    """``user_id`` is typing in a private chat (``peer_id``) or a group."""
    return {"kind": "typing", "code": 200, "user_id": user_id, "recipient_id": peer_id,
            "group_id": group_id}


def user_json(user: Any) -> dict:
    """A user as the API shows it."""
    return {"id": user.id, "username": user.username, "created_at": iso(user.created_at)}


def notice_frame(notice: Any, actor_name: str | None) -> dict:
    """A notice as the ``notice`` frame and the API show it."""
    return {"kind": "notice", "code": 200, "id": notice.id, "notice": notice.kind,
            "actor_id": notice.actor_id, "actor_name": actor_name, "group_id": notice.group_id,
            "group_name": notice.group_name, "created_at": iso(notice.created_at),
            "read": notice.read_at is not None}
