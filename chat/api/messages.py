"""/api/conversations, /api/messages, /api/unread, /api/read, /api/sync."""
from __future__ import annotations

from flask import request

from ..identity import api_login_required
from ..service import validation
from . import bp
from .request import body, me, one_target, page_args, path_id, require, services


@bp.get("/conversations")
@api_login_required
def conversations():
    """Private chats and groups, newest first, with last message and unread count."""
    return {"conversations": services().reading.conversations(me())}


def _page(target: int, is_group: bool) -> dict:
    before, size = page_args()
    page = services().reading.history(me(), target, is_group, before_id=before, limit=size)
    return {"messages": page["messages"], "has_more": page["has_more"]}


@bp.get("/messages/<user_id>")
@api_login_required
def private_history(user_id: str):
    """A page of the private chat with a user."""
    return _page(path_id(user_id, "user_id"), False)


@bp.get("/groups/<group_id>/messages")
@api_login_required
def group_history(group_id: str):
    """A page of a group's chat (members only)."""
    return _page(path_id(group_id, "group_id"), True)


@bp.post("/messages")
@api_login_required
def send_message():
    """Send without a WebSocket: same rules (the same service call), same ack, delivered live."""
    svc = services()
    data = body()
    field, target = one_target(data)
    ack, created = svc.sending.send(me(), **{field: target}, fields=data)
    return ack, 201 if created else 200


@bp.patch("/messages/<message_id>")
@api_login_required
def edit_message(message_id: str):
    """Edit one's own message: ``{"content", "client_id"}``; the ack body."""
    return services().sending.change(me(), "edit", path_id(message_id, "message_id"),
                                     fields=body())[0]


@bp.delete("/messages/<message_id>")
@api_login_required
def recall_message(message_id: str):
    """Take a message back (idempotent); the ack body."""
    return services().sending.change(me(), "recall", path_id(message_id, "message_id"),
                                     fields={})[0]


@bp.put("/messages/<message_id>/reactions/<path:emoji>")
@api_login_required
def add_reaction(message_id: str, emoji: str):
    """React with one emoji (percent-encoded in the path); idempotent."""
    return services().sending.change(me(), "reaction", path_id(message_id, "message_id"),
                                     fields={"emoji": emoji, "on": True})[0]


@bp.delete("/messages/<message_id>/reactions/<path:emoji>")
@api_login_required
def remove_reaction(message_id: str, emoji: str):
    """Take one's reaction back; idempotent."""
    return services().sending.change(me(), "reaction", path_id(message_id, "message_id"),
                                     fields={"emoji": emoji, "on": False})[0]


@bp.get("/unread")
@api_login_required
def unread():
    """What is unread, by conversation; marks nothing read."""
    return services().reading.unread_summary(me())


@bp.post("/read")
@api_login_required
def mark_read():
    """Move a read cursor; pushes the same ``read`` frames as type 5."""
    data = body()
    field, target = one_target(data)
    require(data, "last_read_id")
    return services().reading.mark_read(me(), target, field == "group_id",
                                        data["last_read_id"])


@bp.get("/sync")
@api_login_required
def sync():
    """Every message the caller can see after ``since_id``."""
    since = validation.query_int(request.args, "since_id", low=0, high=validation.MAX_ID,
                                 default=None)
    if since is None:
        raise validation.BadRequest("since_id is required")
    size = validation.query_int(request.args, "limit", low=1, high=1000, default=500)
    return services().reading.sync(me(), since, size)
