"""What the API answers: every JSON shape, declared once (docs/protocol.md 4, 5).

The document is generated from these, and under the testing config every answer
the API gives is checked against the one its view declares (chat.api.operation),
so an answer with a field the document lacks, or without one it promises, fails
the end-to-end tests. The shapes are built by chat.service.shapes; these only
describe them (checking them on every production answer would cost history
pages more than it is worth).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..service.notices import KINDS
from .fields import Id

_TIME_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                 r"\.[0-9]{3}Z$")
Time = Annotated[str, Field(pattern=_TIME_PATTERN, json_schema_extra={"format": "date-time"})]
# The same, for a field some answers leave out (pydantic cannot merge two schema extras).
SometimesTime = Annotated[str, Field(pattern=_TIME_PATTERN)]
Count = Annotated[int, Field(ge=0)]
Position = Annotated[int, Field(ge=0)]  # a cursor: 0, or a message id
Role = Literal["owner", "member"]


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def sometimes():
    """A field that some answers leave out; when present it is never null."""
    return Field(default=None, json_schema_extra=_no_default)


class Answer(BaseModel):
    """A JSON answer: exactly these fields, of exactly these JSON types."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorDetail(Answer):
    """One of docs/protocol.md's error names, and a human-readable reason."""

    code: str
    message: str


class Error(Answer):
    """Every failure: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class User(Answer):
    """A user as anyone may see them."""

    id: Id
    username: str
    created_at: Time


class Me(User):
    """The caller, with their own settings (docs/protocol.md, Attention)."""

    show_presence: bool
    push_previews: bool


class Profile(User):
    """A user with the relation seen from the caller."""

    following: bool
    followed_by: bool
    blocking: bool
    online: bool | None
    last_seen_at: Time | None


class UserList(Answer):
    """Users found."""

    users: list[User]


class Token(Answer):
    """A new bearer token: its secret is shown this once."""

    token: str
    user_id: Id
    id: Id


class TokenInfo(Answer):
    """A live token, without its secret."""

    id: Id
    name: str
    created_at: Time


class TokenList(Answer):
    """The caller's live tokens."""

    tokens: list[TokenInfo]


class Revoked(Answer):
    """A token or session ended."""

    revoked: bool


class Ticket(Answer):
    """A single-use ticket that opens one WebSocket (``/ws?ticket=``) within ``expires_in`` s."""

    ticket: str
    expires_in: Count


class Changed(Answer):
    """The password changed."""

    changed: bool


class Group(Answer):
    """A group; ``role`` is the caller's (null: not a member) where the call tells it."""

    id: Id
    name: str
    description: str
    icon: str
    owner_id: Id
    member_count: Count
    created_at: Time
    visibility: Literal["public", "private"]
    role: Role | None = None


class GroupList(Answer):
    """Groups."""

    groups: list[Group]


class Invited(Answer):
    """Someone who does not follow the owner was invited instead of added (202)."""

    invited: bool
    group_id: Id
    user_id: Id


class Deleted(Answer):
    """A group deleted."""

    deleted: bool
    id: Id


class Member(User):
    """A member of a group."""

    role: Role
    joined_at: Time


class MemberList(Answer):
    """A group's members, the owner first."""

    members: list[Member]


class ReplyTo(Answer):
    """The message a message answers: its sender and current first 100 code points."""

    id: Id
    sender_id: Id
    excerpt: str
    recalled: bool


class Reaction(Answer):
    """One emoji on a message: who reacted with it, in the order they did."""

    emoji: str
    count: Count
    user_ids: list[Id]


class File(Answer):
    """An uploaded file (docs/protocol.md 3.10); ``width``, ``height``, ``thumb_url`` for images."""

    id: Id
    name: str
    size: Count
    mime: str
    kind: Literal["image", "file"]
    width: Count | None
    height: Count | None
    url: str
    thumb_url: str | None


class Message(Answer):
    """A chat message, as the ``message`` frame shows it (history and sync: as it is now)."""

    kind: Literal["message"]
    code: Literal[200]
    id: Id
    from_: str = Field(alias="from", description="sender->recipient, or sender->g<group id>")
    sender_id: Id
    sender_name: str
    recipient_id: Id | None
    group_id: Id | None
    content: str
    created_at: Time
    client_id: str | None
    reply_to: ReplyTo | None
    mentions: list[Id]
    mention_all: bool
    attachments: list[File]
    edited_at: Time | None
    recalled: bool
    reactions: list[Reaction]


class Update(Answer):
    """An edit, recall or reaction of ``message_id`` by ``actor_id`` (``sender_id`` sent it)."""

    kind: Literal["update"]
    code: Literal[200]
    id: Id
    update: Literal["edit", "recall", "reaction"]
    message_id: Id
    actor_id: Id
    sender_id: Id
    recipient_id: Id | None
    group_id: Id | None
    created_at: Time
    content: str = sometimes()
    edited_at: SometimesTime = sometimes()
    emoji: str = sometimes()
    on: bool = sometimes()
    reactions: list[Reaction] = sometimes()


class Page(Answer):
    """A page of history, oldest first (``has_newer`` on a page around a message)."""

    messages: list[Message]
    has_more: bool
    has_newer: bool = sometimes()


class Sync(Answer):
    """The ``sync`` frame: every message and update after ``since_id``, oldest first."""

    kind: Literal["sync"]
    code: Literal[200]
    messages: list[Message]
    updates: list[Update]
    has_more: bool


class Ack(Answer):
    """The ``ack`` of a stored message; ``online`` for private messages only."""

    kind: Literal["ack"]
    code: Literal[200]
    id: Id
    client_id: str | None
    created_at: Time
    recipient_id: Id | None
    group_id: Id | None
    online: bool = sometimes()
    content: str


class ChangeAck(Answer):
    """The ``ack`` of an edit, recall or reaction: the update's id, or the message's when
    nothing changed."""

    kind: Literal["ack"]
    code: Literal[200]
    id: Id
    message_id: Id
    client_id: str | None


class PrivateConversation(Answer):
    """A private chat with ``user_id``, with its newest message and the peer's read cursor."""

    kind: Literal["private"]
    user_id: Id
    name: str
    last_message: Message | None
    unread: Count
    mentions: Count
    last_read_id: Position
    peer_last_read_id: Position
    muted: bool
    pinned: bool
    archived: bool


class GroupConversation(Answer):
    """A group's chat, with its newest message."""

    kind: Literal["group"]
    group_id: Id
    name: str
    icon: str
    last_message: Message | None
    unread: Count
    mentions: Count
    last_read_id: Position
    muted: bool
    pinned: bool
    archived: bool


Conversation = Annotated[PrivateConversation | GroupConversation, Field(discriminator="kind")]


class ConversationList(Answer):
    """The caller's conversations, pinned first, then newest first."""

    conversations: list[Conversation]


class Unread(Answer):
    """What is unread, by conversation."""

    total: Count
    conversations: list[Conversation]


class Read(Answer):
    """The ``read`` frame: ``user_id`` has read the conversation up to ``last_read_id``."""

    kind: Literal["read"]
    code: Literal[200]
    user_id: Id
    recipient_id: Id | None
    group_id: Id | None
    last_read_id: Position


class Notice(Answer):
    """The ``notice`` frame: something that happened to the caller."""

    kind: Literal["notice"]
    code: Literal[200]
    id: Id
    notice: Literal[KINDS]  # type: ignore[valid-type]
    actor_id: Id
    actor_name: str | None
    group_id: Id | None
    group_name: str | None
    created_at: Time
    read: bool


class NoticeList(Answer):
    """The caller's notices, newest first, and how many are unread."""

    notices: list[Notice]
    unread: Count


class Marked(Answer):
    """How many notices were marked read."""

    marked: Count


class PushKey(Answer):
    """The VAPID public key (base64url), for ``PushManager.subscribe``."""

    key: str


class PushSubscribed(Answer):
    """A push subscription kept."""

    id: Id
    endpoint: str


class PushSubscriptionList(Answer):
    """The caller's push subscriptions."""

    subscriptions: list[PushSubscribed]


class PushUnsubscribed(Answer):
    """Whether a subscription was removed (false: there was none)."""

    removed: bool
