"""The field types of the API's declared schemas: each is one rule of chat.service.validation.

A ``Rule`` pairs the check that the view or the service runs (a function of
chat.service.validation, the one implementation of the rule) with the JSON
Schema that the document shows for it, written from the same constants.
tests/test_api_schemas.py keeps the two in agreement value by value.

docs/protocol.md 3.4 orders the checks: ids first (400), then existence and
permission (404/403, the service), then the other fields (400, the service).
So only ``envelope`` rules (ids and cursors) are checked by the view before it
calls the service; the others are checked by the service, with the same
function, once it has authorized the caller.
"""
from __future__ import annotations

from typing import Annotated, Any, Callable

from flask import current_app, has_app_context
from pydantic_core import core_schema

from ..config import BaseConfig
from ..errors import BadRequest
from ..service import validation as v
from ..service.emoji import reaction_emoji

# Every character for which str.isspace() is true (the meaning of "only white space" in
# docs/protocol.md 5), as a regex class body that Python, ECMA 262 and Rust read alike.
SPACES = (r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f"
          r"\u205f\u3000")
NOT_BLANK = f"[^{SPACES}]"  # at least one character that is not white space
NO_NUL = r"^[^\u0000]*$"


class Rule:
    """A field's check (``check(value, field_name)``) and the JSON Schema that documents it."""

    __slots__ = ("check", "schema", "envelope")

    def __init__(self, check: Callable[[Any, str], Any], schema: dict | Callable[[], dict],
                 *, envelope: bool = False) -> None:
        self.check = check
        self.schema = schema
        self.envelope = envelope  # checked by the view before the service authorizes

    def validate(self, value: Any, field: str) -> Any:
        """The checked value; a required field sent as ``null`` is missing (docs/protocol.md 5)."""
        if value is None:
            raise BadRequest(f"{field} is required")
        return self.check(value, field)

    def json_schema(self) -> dict:
        """The rule as JSON Schema (built now: some bounds are settings)."""
        return dict(self.schema() if callable(self.schema) else self.schema)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        # ``X | None`` fields never reach the check with None: pydantic answers them first.
        return core_schema.with_info_plain_validator_function(
            lambda value, info: self.validate(value, info.field_name))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict:
        return self.json_schema()


def max_content() -> int:
    """``CHAT_MAX_CONTENT`` of the running app (the environment's default outside one)."""
    if has_app_context():
        return current_app.config["CHAT_MAX_CONTENT"]
    return BaseConfig.CHAT_MAX_CONTENT


def _string(max_len: int | None = None, min_len: int = 0, pattern: str | None = None) -> dict:
    schema: dict = {"type": "string"}
    if min_len:
        schema["minLength"] = min_len
    if max_len is not None:
        schema["maxLength"] = max_len
    if pattern is not None:
        schema["pattern"] = pattern
    return schema


def _text(max_len: int) -> dict:
    """What ``validation.text_field(required=True)`` accepts."""
    return {**_string(max_len, 1), "allOf": [{"pattern": NOT_BLANK}, {"pattern": NO_NUL}]}


def _trimmed(max_len: int) -> dict:
    """A text of at most ``max_len`` characters once white space around it is trimmed."""
    word, space = f"[^{SPACES}]", f"[{SPACES}]"
    middle = f"[\\s\\S]{{0,{max_len - 2}}}"  # any characters
    return _string(pattern=f"^{space}*(?:{word}(?:{middle}{word})?)?{space}*$")


# An http(s) URL as validation.icon_url reads it (urlsplit skips leading C0 controls):
# a host up to the first / ? or #, no white space, no NUL. (A bracketed IPv6 host, which
# the rule also takes, is left out: the document is stricter there, never looser.)
_ICON_URL = (r"^[\u0001-\u0008\u000e-\u001b]*[Hh][Tt][Tt][Pp][Ss]?://[^/?#\[\]\u0000" + SPACES
             + r"]+(?:[/?#][^\u0000" + SPACES + r"]*)?$")

# -- JSON bodies ------------------------------------------------------------------------

Id = Annotated[int, Rule(v.entity_id, {"type": "integer", "minimum": 1, "maximum": v.MAX_ID},
                         envelope=True)]
Cursor = Annotated[int, Rule(v.cursor, {"type": "integer", "minimum": 0, "maximum": v.MAX_ID},
                             envelope=True)]
Content = Annotated[str, Rule(lambda value, _: v.content(value, max_content()),
                              lambda: {**_string(max_content(), 1, NOT_BLANK)})]
ClientId = Annotated[str, Rule(lambda value, _: v.client_id(value),
                               _string(v.CLIENT_ID_MAX, 1))]
Username = Annotated[str, Rule(lambda value, _: v.username(value),
                               _string(pattern="^" + v.USERNAME_RE.pattern + "$"))]
Password = Annotated[str, Rule(lambda value, _: v.password(value),
                               _string(v.PASSWORD_MAX, v.PASSWORD_MIN))]
AnyString = Annotated[str, Rule(v.string, {"type": "string"})]
TokenName = Annotated[str, Rule(lambda value, _: v.token_name(value),
                                _string(v.TOKEN_NAME_MAX))]
GroupName = Annotated[str, Rule(lambda value, f: v.text_field(value, f, v.GROUP_NAME_MAX,
                                                               required=True),
                                _text(v.GROUP_NAME_MAX))]
Description = Annotated[str, Rule(
    lambda value, f: v.text_field(value, f, v.GROUP_DESCRIPTION_MAX, required=False),
    _string(v.GROUP_DESCRIPTION_MAX, pattern=NO_NUL))]
IconUrl = Annotated[str, Rule(lambda value, _: v.icon_url(value), {
    "anyOf": [{"const": ""}, _string(v.ICON_MAX, pattern=_ICON_URL)],
    "description": "an http or https URL, or empty for none"})]



def id_list(most: int) -> Rule:
    """A list of at most ``most`` ids (repeats allowed: the service decides what they mean)."""
    return Rule(lambda value, f: v.id_list(value, f, most),
                {"type": "array", "maxItems": most,
                 "items": {"type": "integer", "minimum": 1, "maximum": v.MAX_ID}},
                envelope=True)


Mentions = Annotated[list[int], id_list(500)]
Attachments = Annotated[list[int], id_list(100)]
Flag = Annotated[bool, Rule(v.flag, {"type": "boolean"})]
Visibility = Annotated[str, Rule(lambda value, f: v.visibility(value, f),
                                 {"type": "string", "enum": list(v.VISIBILITIES)})]
Emoji = Annotated[str, Rule(lambda value, _: reaction_emoji(value), {
    "type": "string", "minLength": 1, "maxLength": 8,
    "description": "exactly one emoji of Unicode's list (unqualified forms are stored "
                   "fully qualified)"})]

# -- Query strings (every value arrives as text) ---------------------------------------


def query_int(low: int, high: int, envelope: bool = True) -> Rule:
    """An integer query parameter within ``low``..``high`` (checked by the view, or, not
    ``envelope``, by the service once it has authorized the caller)."""
    return Rule(lambda raw, f: v.query_number(raw, f, low=low, high=high),
                {"type": "integer", "minimum": low, "maximum": high}, envelope=envelope)


QueryCursor = Annotated[int, query_int(0, v.MAX_ID)]
# A page's limit is one of its other fields: checked by the service, after the conversation.
HistoryLimit = Annotated[int, query_int(1, v.HISTORY_LIMIT_MAX, envelope=False)]
SyncLimit = Annotated[int, query_int(1, v.SYNC_LIMIT_MAX)]
QueryFlag = Annotated[bool, Rule(v.query_flag, {"type": "string", "enum": list(v.QUERY_FLAGS)},
                                 envelope=True)]


def search_text(max_len: int, envelope: bool = True) -> Rule:
    """A search text, at most ``max_len`` characters once trimmed (checked by the view, or,
    not ``envelope``, by the service once it has found what is searched)."""
    return Rule(lambda raw, f: v.search_text(raw, f, max_len), _trimmed(max_len),
                envelope=envelope)


UserQuery = Annotated[str, search_text(v.USER_QUERY_MAX)]
GroupQuery = Annotated[str, search_text(v.GROUP_QUERY_MAX)]
