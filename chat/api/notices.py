"""/api/notices: the caller's notices, and marking them read."""
from __future__ import annotations

from flask import request

from ..identity import api_login_required
from ..service.validation import BadRequest
from . import bp
from .request import body, me, services


@bp.get("/notices")
@api_login_required
def list_notices():
    """The caller's notices, newest first (``?unread=1``: only unread)."""
    flag = request.args.get("unread", "")
    if flag not in ("", "0", "1", "true", "false"):
        raise BadRequest("unread must be 1 or 0")
    return services().notices.listing(me(), flag in ("1", "true"))


@bp.post("/notices/read")
@api_login_required
def read_notices():
    """Mark notices read: all, or those up to ``up_to_id``."""
    return services().notices.mark_read(me(), body().get("up_to_id"))
