"""/api/notices: the caller's notices, and marking them read."""
from __future__ import annotations

from . import answers, bp
from .inputs import NoticeQuery, NoticesRead
from .operation import operation
from .request import me, services


@bp.get("/notices")
@operation({200: answers.NoticeList}, query=NoticeQuery)
def list_notices(query: NoticeQuery):
    """The caller's notices, newest first (``?unread=1``: only unread)."""
    return services().notices.listing(me(), bool(query.unread))


@bp.post("/notices/read")
@operation({200: answers.Marked}, body=NoticesRead)
def read_notices(body: NoticesRead):
    """Mark notices read: all, or those up to ``up_to_id``."""
    return services().notices.mark_read(me(), body.up_to_id)
