"""Reading a request: the caller, the JSON body and path ids (400 when malformed)."""
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


def path_id(value: str, field: str) -> int:
    """An id from the URL: digits only, 1..2^53-1."""
    if not value.isascii() or not value.isdigit() or len(value) > 16:
        raise validation.BadRequest(f"{field} must be a positive integer id")
    return validation.entity_id(int(value), field)
