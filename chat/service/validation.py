"""Checks of input values shared by the WebSocket frames and the HTTP API (docs/protocol.md 5)."""
from __future__ import annotations

from typing import Any

import json
import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

import orjson

from ..errors import BadRequest
from .i18n import N_

MAX_ID = 2**53 - 1
USERNAME_RE = re.compile(r"[A-Za-z0-9_.\-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
GROUP_NAME_MAX, GROUP_DESCRIPTION_MAX, ICON_MAX = 64, 500, 500
CLIENT_ID_MAX = 64


def _has_lone_surrogate(text: str) -> bool:
    """True when ``text`` cannot be encoded as UTF-8 (it holds a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: str | bytes, what: str = "frame") -> object:
    """A JSON document (a socket frame or a request body); 400 when it is not JSON.

    orjson refuses an escaped lone surrogate (``"\\ud800"``) as invalid JSON; such a
    document is still JSON, so it is read again with the standard library, and the
    field that holds it is refused by its own check, with the frame's ``client_id``
    as ``ref`` (docs/protocol.md 3.4).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise BadRequest(f"the {what} is not valid JSON") from None


def entity_id(value: Any, field: str) -> int:
    """A positive id no larger than 2^53-1; ``True`` is not an id, nor is ``1.0``."""
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise BadRequest(f"{field} must be a positive integer id")
    return value


def optional_id(value: Any, field: str) -> int | None:
    """An id that may be absent (``None``)."""
    return None if value is None else entity_id(value, field)


def id_list(value: Any, field: str, most: int) -> list[int]:
    """A list of at most ``most`` ids (absent: empty), in the order given."""
    if value is None:
        return []
    if type(value) is not list:
        raise BadRequest(f"{field} must be a list of ids")
    if len(value) > most:
        raise BadRequest(f"{field} holds at most {most} ids")
    return [entity_id(v, field) for v in value]


def cursor(value: Any, field: str, default: int | None = None) -> int | None:
    """A position such as ``since_id``: an integer from 0 to 2^53-1 (``None`` -> default)."""
    if value is None:
        return default
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise BadRequest(f"{field} must be an integer from 0 to 2^53-1")
    return value


def limit(value: Any, low: int, high: int, default: int, field: str = "limit") -> int:
    """A page size within ``low``..``high``."""
    if value is None:
        return default
    if type(value) is not int or not low <= value <= high:
        raise BadRequest(f"{field} must be an integer from {low} to {high}")
    return value


def flag(value: Any, field: str) -> bool:
    """An optional boolean: absent or ``null`` means false."""
    if value is None:
        return False
    if type(value) is not bool:
        raise BadRequest(f"{field} must be true or false")
    return value


VISIBILITIES = ("public", "private")


def visibility(value: Any, field: str = "visibility") -> str:
    """A group's visibility: ``public`` (the default) or ``private``."""
    if value is None:
        return "public"
    if value not in VISIBILITIES:
        raise BadRequest(f"{field} must be public or private")
    return value


def content(value: Any, max_len: int, may_be_empty: bool = False) -> str:
    """Message text: 1..max_len code points, not only white space, valid Unicode.

    ``may_be_empty``: a message with attachments may have no text at all (``""``).
    """
    if may_be_empty and (value is None or value == ""):
        return ""
    if type(value) is not str:
        raise BadRequest(N_("content must be a string"))
    if not value or value.isspace():
        raise BadRequest(N_("content must not be empty or only white space"))
    if len(value) > max_len:
        raise BadRequest(f"content is longer than {max_len} characters")
    if _has_lone_surrogate(value):
        raise BadRequest(N_("content is not valid Unicode"))
    return value


def is_client_id(value: Any) -> bool:
    """Whether ``value`` is a well-formed idempotency key (what ``client_id`` accepts)."""
    return (type(value) is str and 1 <= len(value) <= CLIENT_ID_MAX
            and not _has_lone_surrogate(value))


def client_id(value: Any) -> str | None:
    """The client's idempotency key: absent, or 1-64 characters."""
    if value is None:
        return None
    if type(value) is not str or not 1 <= len(value) <= CLIENT_ID_MAX:
        raise BadRequest(f"client_id must be a string of 1 to {CLIENT_ID_MAX} characters")
    if _has_lone_surrogate(value):
        raise BadRequest(N_("client_id is not valid Unicode"))
    return value


def username(value: Any) -> str:
    """3-32 characters of A-Za-z0-9_.-"""
    if type(value) is not str or not USERNAME_RE.fullmatch(value):
        raise BadRequest(N_("username must be 3 to 32 characters of letters, digits, _ . -"))
    return value


def password(value: Any) -> str:
    """8-128 characters."""
    if type(value) is not str or not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise BadRequest(f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if _has_lone_surrogate(value):
        raise BadRequest(N_("password is not valid Unicode"))
    return value


def text_field(value: Any, field: str, max_len: int, *, required: bool) -> str:
    """A short free text such as a group name or description."""
    if value is None and not required:
        return ""
    if type(value) is not str:
        raise BadRequest(f"{field} must be a string")
    if required and (not value or value.isspace()):
        raise BadRequest(f"{field} must not be empty")
    if len(value) > max_len:
        raise BadRequest(f"{field} is longer than {max_len} characters")
    if _has_lone_surrogate(value) or "\x00" in value:
        raise BadRequest(f"{field} is not valid text")
    return value


def icon_url(value: Any) -> str:
    """An icon is an http(s) URL, or empty."""
    if value is None or value == "":
        return ""
    text = text_field(value, "icon", ICON_MAX, required=True)
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. "http://[": a bracketed host that is not an IPv6 address
        raise BadRequest(N_("icon must be an http or https URL")) from None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        raise BadRequest(N_("icon must be an http or https URL"))
    return text


# The finished forms of the built messages above that a web form can bring back (the
# register and group forms). A ChatError carries its finished text, not a template and
# its values, so these are what a page translates; marked here for the catalogue.
FORM_MESSAGES = (
    N_("password must be 8 to 128 characters"),
    N_("name must not be empty"), N_("name is longer than 64 characters"),
    N_("name is not valid text"),
    N_("description is longer than 500 characters"), N_("description is not valid text"),
    N_("icon must not be empty"), N_("icon is longer than 500 characters"),
    N_("icon is not valid text"),
)


def time_cursor(value: Any) -> datetime:
    """The seed's history cursor: 'YYYY-MM-DD HH:MM:SS' (UTC) or ISO 8601, as naive UTC."""
    if type(value) is not str or len(value) > 40:
        raise BadRequest(N_("content must be a time 'YYYY-MM-DD HH:MM:SS' or ISO 8601"))
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            # OverflowError: an offset that moves year 1 or 9999 past the calendar's ends.
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise BadRequest(N_("content must be a time 'YYYY-MM-DD HH:MM:SS' or ISO 8601")) from None
    return moment


def query_int(args: Any, name: str, *, low: int, high: int, default: int | None) -> int | None:
    """An integer query parameter (digits only), within bounds."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    return query_number(raw, name, low=low, high=high)


# -- Added for the API's declared field types (chat.api.fields) -------------------------

TOKEN_NAME_MAX = 64
USER_QUERY_MAX, GROUP_QUERY_MAX = 32, 64
HISTORY_LIMIT_MAX, SYNC_LIMIT_MAX = 100, 1000
QUERY_FLAGS = {"": False, "0": False, "false": False, "1": True, "true": True}


def query_number(raw: str, name: str, *, low: int, high: int) -> int:
    """A query parameter's digits as an integer within bounds."""
    if type(raw) is not str or len(raw) > 20 or not raw.isascii() or not raw.isdigit():
        raise BadRequest(f"{name} must be an integer from {low} to {high}")
    number = int(raw)
    if not low <= number <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}")
    return number


def query_flag(raw: Any, name: str) -> bool:
    """A yes/no query parameter: ``1`` or ``true``; ``0``, ``false``, empty or absent is no."""
    if raw is None:
        return False
    if type(raw) is not str or raw not in QUERY_FLAGS:
        raise BadRequest(f"{name} must be 1 or 0")
    return QUERY_FLAGS[raw]


def search_text(value: Any, name: str, max_len: int) -> str | None:
    """A search text: at most ``max_len`` characters once trimmed; returned as given."""
    if value is None:
        return None
    if type(value) is not str:
        raise BadRequest(f"{name} must be a string")
    if len(value.strip()) > max_len:
        raise BadRequest(f"{name} is longer than {max_len} characters")
    return value


def string(value: Any, name: str) -> str:
    """Any string (a login's username and password are then compared with the stored ones)."""
    if type(value) is not str:
        raise BadRequest(f"{name} must be a string")
    return value


def token_name(value: Any) -> str:
    """A token's optional label: up to 64 characters; absent is empty."""
    if value is None:
        return ""
    if type(value) is not str or len(value) > TOKEN_NAME_MAX:
        raise BadRequest(f"name must be a string of at most {TOKEN_NAME_MAX} characters")
    if _has_lone_surrogate(value):
        raise BadRequest(N_("name is not valid Unicode"))
    return value
