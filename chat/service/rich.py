"""The version 2 parts of a new message (docs/protocol.md 3.9): reply, mentions, files.

Checked in the committer's batch, in the protocol's order: what the message
names must exist for the sender (a reply in the same conversation, files the
sender uploaded: else 404) and be allowed (``mention_all`` only by the group's
owner: else 403); then its own fields (content, client_id, mentioned members,
repeated files: 400).
"""
from __future__ import annotations

from typing import Any, Callable

import orjson

from ..errors import BadRequest, ChatError, Forbidden, NotFound
from . import validation
from .outgoing import Outgoing, ReplyTo
from .i18n import N_

MAX_MENTIONS = 50
MAX_ATTACHMENTS = 10
EXCERPT_CODE_POINTS = 100
# A mention of everyone is kept as a mention of user 0.
EVERYONE = 0

# Resolves upload ids to {id: (uploader id, file object)} (chat.service.files when built).
FileResolver = Callable[[list[int]], dict[int, tuple[int, dict]]]


def no_files(ids: list[int]) -> dict[int, tuple[int, dict]]:
    """No upload storage: every upload id names nothing."""
    return {}


def excerpt(content: str) -> str:
    """What a reply quotes of the message it answers: its first 100 code points."""
    return content[:EXCERPT_CODE_POINTS]


def parse_rich_fields(frame_or_body: dict) -> dict[str, Any]:
    """Step 1 for the new fields: well-formed ids (else 400). ``mention_all`` is kept as
    sent: it is one of the message's other fields, checked in step 3."""
    return {"reply_to": validation.optional_id(frame_or_body.get("reply_to"), "reply_to"),
            "mentions": validation.id_list(frame_or_body.get("mentions"), "mentions",
                                           MAX_MENTIONS * 10),
            "mention_all": frame_or_body.get("mention_all"),
            "attachments": validation.id_list(frame_or_body.get("attachments"), "attachments",
                                               MAX_ATTACHMENTS * 10)}


def is_rich(item: Outgoing) -> bool:
    """Whether a message carries any version 2 field (the INSERT then writes them too)."""
    return bool(item.reply_to or item.mentions or item.mention_all or item.attachments)


def quote(target: tuple) -> ReplyTo:
    """What a reply keeps of the message it answers (a ``MessageStore.targets`` row)."""
    return ReplyTo(target[0], target[2], "" if target[7] else excerpt(target[5]),
                   bool(target[7]))


def reference_error(item: Outgoing, targets: dict[int, tuple], owner_id: int | None,
                    files: dict[int, tuple[int, dict]]) -> ChatError | None:
    """Step 2: the message it answers, the files it holds, and ``mention_all``."""
    if item.reply_to is not None:
        target = targets.get(item.reply_to)
        if target is None or target[1] != item.conv_key:
            return NotFound(N_("no such message in this conversation"))
        item.reply = quote(target)
    for upload_id in dict.fromkeys(item.attachments):
        found = files.get(upload_id)
        if found is None or found[0] != item.sender_id:
            return NotFound(N_("no such upload"))
    # Only a well-formed true asks for everyone; anything else is step 3's to refuse.
    if item.mention_all is True and item.group_id is not None and owner_id != item.sender_id:
        return Forbidden(N_("only the group's owner can mention everyone"))
    return None


def field_error(item: Outgoing, members: set[tuple[int, int]], max_content: int,
                files: dict[int, tuple[int, dict]]) -> ChatError | None:
    """Step 3: content (empty only with files), client_id, mentions, files."""
    try:
        item.mention_all = validation.flag(item.mention_all, "mention_all")
        if item.group_id is None and (item.mentions or item.mention_all):
            raise BadRequest(N_("mentions are for group messages"))
        if len(set(item.attachments)) != len(item.attachments):
            raise BadRequest(N_("the same upload is attached twice"))
        if len(item.attachments) > MAX_ATTACHMENTS:
            raise BadRequest(N_("a message holds at most 10 files"))
        item.content = validation.content(item.content, max_content,
                                          may_be_empty=bool(item.attachments))
        validation.client_id(item.client_id)
        mentioned = list(dict.fromkeys(item.mentions))
        if len(mentioned) > MAX_MENTIONS:
            raise BadRequest(N_("a message mentions at most 50 people"))
        if any((item.group_id, uid) not in members for uid in mentioned):
            raise BadRequest(N_("only members of the group can be mentioned"))
        item.mentions = mentioned
        item.files = [files[upload_id][1] for upload_id in item.attachments]
    except ChatError as err:
        return err
    return None


def stored_columns(item: Outgoing) -> tuple:
    """The version 2 columns of a new message's row, in ``committer_writes`` order."""
    reply = item.reply
    return (reply.id if reply else None, reply.sender_id if reply else None,
            reply.excerpt if reply else None, bool(reply and reply.recalled),
            orjson.dumps(item.mentions).decode() if item.mentions else None,
            item.mention_all, orjson.dumps(item.files).decode() if item.files else None)


def mention_rows(item: Outgoing) -> list[tuple]:
    """The mentions a new message makes, for unread counts (never of its own sender)."""
    users = [uid for uid in item.mentions if uid != item.sender_id]
    if item.mention_all:
        users.append(EVERYONE)
    return [(uid, item.conv_key, item.id, item.sender_id) for uid in users]
