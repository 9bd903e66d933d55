"""Reading a request: its JSON body, query integers and path ids (400 when malformed)."""
from __future__ import annotations

from flask import request
from flask_login import current_user

from ..runtime import services  # noqa: F401  (the views' way to the service)
from ..service import validation

def me() -> int:
    """The caller's user id."""
    return current_user.id


def body() -> dict:
    """The request's JSON object; an empty body is ``{}``; anything else is 400."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    data = validation.parse_json(raw, "body")
    if not isinstance(data, dict):
        raise validation.BadRequest("the body must be a JSON object")
    return data


def require(data: dict, *fields: str) -> None:
    """400 when a required field is missing or null."""
    for name in fields:
        if data.get(name) is None:
            raise validation.BadRequest(f"{name} is required")


def one_target(data: dict) -> tuple[str, object]:
    """Exactly one of ``recipient_id`` and ``group_id``: (its name, its value)."""
    has_user, has_group = data.get("recipient_id") is not None, data.get("group_id") is not None
    if has_user == has_group:
        raise validation.BadRequest("give exactly one of recipient_id and group_id")
    return ("group_id", data["group_id"]) if has_group else ("recipient_id", data["recipient_id"])


def page_args() -> tuple[int | None, int]:
    """``before_id`` and ``limit`` from the query string."""
    before = validation.query_int(request.args, "before_id", low=0, high=validation.MAX_ID,
                                  default=None)
    size = validation.query_int(request.args, "limit", low=1, high=100, default=10)
    return before, size


def path_id(value: str, field: str) -> int:
    """An id from the URL: digits only, 1..2^53-1."""
    if not value.isascii() or not value.isdigit() or len(value) > 16:
        raise validation.BadRequest(f"{field} must be a positive integer id")
    return validation.entity_id(int(value), field)
