"""What the API's calls take: JSON bodies and query strings, declared once.

A view parses its request with these models and the document shows them, so
the two cannot disagree. A body's ``envelope()`` checks only its ids and
cursors (docs/protocol.md 3.4, which error comes first) and hands every other field on as sent: the
service checks those after it has authorized the caller, with the same rules.
"""
from __future__ import annotations

from typing import Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator

from ..errors import BadRequest
from .fields import (AnyString, Attachments, ClientId, Content, Cursor, Description, Flag,
                     GroupName, GroupQuery, HistoryLimit, IconUrl, Id, Mentions, Password,
                     QueryCursor, QueryFlag, Rule, SyncLimit, TokenName, Username, UserQuery,
                     Visibility)


def rule_of(annotation: Any) -> Rule | None:
    """The Rule inside a field's type (``Id``, ``Id | None``, ...), if it has one."""
    for extra in getattr(annotation, "__metadata__", ()):
        if isinstance(extra, Rule):
            return extra
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        for arg in get_args(annotation):
            found = rule_of(arg)
            if found is not None:
                return found
    return None


def _document_one_of(schema: dict, model: type) -> None:
    # "Exactly one of": each branch holds when its field is present and not null.
    names = getattr(model, "one_of", None)
    if names:
        schema["oneOf"] = [{"required": [name], "properties": {name: {"type": "integer"}}}
                           for name in names]


def bad_request(err: ValidationError) -> BadRequest:
    """A pydantic refusal as our 400 (the rules raise BadRequest themselves)."""
    first = err.errors()[0]
    name = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return BadRequest(f"{name} is required")
    if first["type"] == "extra_forbidden":
        return BadRequest(f"unknown field {name!r}")
    return BadRequest(f"{name}: {first['msg']}" if name else first["msg"])


_ENVELOPES: dict[type, type] = {}  # body model -> its envelope (made on first use)


class Body(BaseModel):
    """A JSON object body; fields it does not declare are ignored unless it forbids them."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_document_one_of)
    one_of: ClassVar[tuple[str, ...]] = ()  # exactly one of these must be given

    @model_validator(mode="after")
    def _exactly_one(self) -> "Body":
        if self.one_of and sum(getattr(self, name) is not None for name in self.one_of) != 1:
            raise BadRequest("give exactly one of " + " and ".join(self.one_of))
        return self

    @classmethod
    def envelope(cls) -> type["Body"]:
        """This body with only its envelope fields checked; the others are taken as sent."""
        return _envelope_of(cls)

    @classmethod
    def parse(cls, data: dict, whole: bool = False) -> "Body":
        """The body checked (its envelope, or ``whole``); 400 when it fails."""
        try:
            return (cls if whole else cls.envelope()).model_validate(data)
        except ValidationError as err:
            raise bad_request(err) from None


class Query(BaseModel):
    """A query string; its ``envelope`` parameters (ids, cursors, flags, search texts) are
    checked by the view, any other is handed on as text for the service to check once it
    has authorized the caller (a page's ``limit``: docs/protocol.md 3.4)."""

    model_config = ConfigDict(extra="ignore")
    # ``?name=`` is checked like any value (so ``?limit=`` is 400, as the document's
    # integer says), except for these, where a blank text means "not given".
    blank_is_absent: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def parse(cls, args: dict) -> "Query":
        """The envelope parameters checked; 400 when one fails."""
        given = {name: value for name, value in args.items()
                 if value != "" or name not in cls.blank_is_absent}
        try:
            return _envelope_of(cls).model_validate(given)
        except ValidationError as err:
            raise bad_request(err) from None


def _field_rule(field: Any) -> Rule | None:
    """A model field's Rule (pydantic keeps a required field's ``Annotated`` extras apart)."""
    found = rule_of(field.annotation)
    return found if found is not None else next(
        (extra for extra in field.metadata if isinstance(extra, Rule)), None)


def _envelope_of(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with only its envelope fields checked; the others are taken as sent."""
    derived = _ENVELOPES.get(model)
    if derived is None:
        loose = {name: (Any, None) for name, field in model.model_fields.items()
                 if not getattr(_field_rule(field), "envelope", False)}
        derived = _ENVELOPES[model] = (create_model(model.__name__ + "Envelope",
                                                    __base__=model, **loose)
                                       if loose else model)
    return derived


# -- Bodies -------------------------------------------------------------------------------

class Registration(Body):
    """A new account."""

    username: Username
    password: Password


class Login(Body):
    """A username and password for a bearer token, and an optional label for it."""

    username: AnyString
    password: AnyString
    name: TokenName | None = None


class PasswordChange(Body):
    """The current password, and the new one."""

    current_password: AnyString
    new_password: Password


class NewMessage(Body):
    """A message to a user (``recipient_id``) or a group (``group_id``): its text (empty
    only with attachments), and what it answers, mentions and holds (docs/protocol.md 3.9)."""

    one_of: ClassVar[tuple[str, ...]] = ("recipient_id", "group_id")
    recipient_id: Id | None = None
    group_id: Id | None = None
    content: Content | None = None
    client_id: ClientId | None = None
    reply_to: Id | None = None
    mentions: Mentions | None = None
    mention_all: Flag | None = None
    attachments: Attachments | None = None

    def fields(self) -> dict:
        """What the service checks itself, as sent."""
        return self.model_dump(exclude={"recipient_id", "group_id"})


class MessageEdit(Body):
    """An edit of one's own message."""

    content: Content
    client_id: ClientId | None = None


class ReadRequest(Body):
    """Move the read cursor of a private chat (``recipient_id``) or a group (``group_id``)."""

    one_of: ClassVar[tuple[str, ...]] = ("recipient_id", "group_id")
    recipient_id: Id | None = None
    group_id: Id | None = None
    last_read_id: Cursor


class NewGroup(Body):
    """A new group."""

    name: GroupName
    description: Description | None = None
    icon: IconUrl | None = None
    visibility: Visibility | None = None


class GroupEdit(Body):
    """What the owner changes; ``owner_id`` hands the group over to a member."""

    model_config = ConfigDict(extra="forbid")
    name: GroupName | None = None
    description: Description | None = None
    icon: IconUrl | None = None
    owner_id: Id | None = None


class NoticesRead(Body):
    """Mark notices read: those up to ``up_to_id``, or all."""

    up_to_id: Cursor | None = None


# -- Query strings ------------------------------------------------------------------------

class PageQuery(Query):
    """A page of history: the messages before ``before_id`` (the newest without it), or
    around ``around_id``."""

    before_id: QueryCursor | None = None
    around_id: QueryCursor | None = None
    limit: HistoryLimit | None = None


class SyncQuery(Query):
    """Everything after ``since_id``."""

    since_id: QueryCursor
    limit: SyncLimit | None = None


class UserSearch(Query):
    """Users whose name contains ``q``."""

    blank_is_absent: ClassVar[frozenset[str]] = frozenset({"q"})
    q: UserQuery | None = None


class GroupSearch(Query):
    """With ``q``: groups whose name contains it; without: the caller's groups."""

    q: GroupQuery | None = None


class NoticeQuery(Query):
    """``unread=1``: only the unread notices."""

    unread: QueryFlag | None = None


# -- Attention (docs/protocol.md, Attention) ------------------------------------------------------------

class ConversationEdit(Body):
    """The caller's own settings of one conversation; an absent field stays as it is."""

    muted: Flag | None = None
    pinned: Flag | None = None
    archived: Flag | None = None


class ConversationQuery(Query):
    """``archived=1``: only the archived conversations (else only the others)."""

    archived: QueryFlag | None = None


class MeEdit(Body):
    """The caller's own settings; an absent field stays as it is."""

    show_presence: Flag | None = None
    push_previews: Flag | None = None


class PushKeys(Body):
    """A subscription's keys (RFC 8291): the browser's P-256 key and the auth secret."""

    p256dh: AnyString
    auth: AnyString


class NewPushSubscription(Body):
    """A browser's push subscription, as ``PushSubscription.toJSON()`` gives it."""

    endpoint: AnyString
    keys: PushKeys


class PushUnsubscribe(Body):
    """The endpoint of a subscription to forget."""

    endpoint: AnyString
