"""/api/conversations, /api/messages, /api/unread, /api/read, /api/sync."""
from __future__ import annotations

from . import answers, bp
from .inputs import ConversationQuery, MessageEdit, NewMessage, PageQuery, ReadRequest, SyncQuery
from .operation import operation
from .request import me, services


@bp.get("/conversations")
@operation({200: answers.ConversationList}, query=ConversationQuery)
def conversations(query: ConversationQuery):
    """Private chats and groups, pinned first, then newest first, with last message and
    unread count; ``?archived=1``: only the archived ones."""
    return {"conversations": services().reading.conversations(
        me(), archived=bool(query.archived))}


def _page(target: int, is_group: bool, query: PageQuery) -> dict:
    page = services().reading.history(me(), target, is_group, before_id=query.before_id,
                                      limit_text=query.limit, around_id=query.around_id)
    return {key: page[key] for key in ("messages", "has_more", "has_newer") if key in page}


@bp.get("/messages/<user_id>")
@operation({200: answers.Page}, query=PageQuery)
def private_history(user_id: int, query: PageQuery):
    """A page of the private chat with a user."""
    return _page(user_id, False, query)


@bp.get("/groups/<group_id>/messages")
@operation({200: answers.Page}, query=PageQuery)
def group_history(group_id: int, query: PageQuery):
    """A page of a group's chat (members only)."""
    return _page(group_id, True, query)


@bp.post("/messages")
@operation({201: answers.Ack, 200: answers.Ack}, body=NewMessage)
def send_message(body: NewMessage):
    """Send without a WebSocket: same rules (the same service call), same ack, delivered live."""
    ack, created = services().sending.send(me(), recipient_id=body.recipient_id,
                                           group_id=body.group_id, fields=body.fields())
    return ack, 201 if created else 200


@bp.patch("/messages/<message_id>")
@operation({200: answers.ChangeAck}, body=MessageEdit)
def edit_message(message_id: int, body: MessageEdit):
    """Edit one's own message (within the edit window); the ack body."""
    return services().sending.change(me(), "edit", message_id, fields=body.model_dump())[0]


@bp.delete("/messages/<message_id>")
@operation({200: answers.ChangeAck})
def recall_message(message_id: int):
    """Take a message back (idempotent: again is a success that changes nothing)."""
    return services().sending.change(me(), "recall", message_id, fields={})[0]


@bp.put("/messages/<message_id>/reactions/<path:emoji>")
@operation({200: answers.ChangeAck}, texts=("emoji",))
def add_reaction(message_id: int, emoji: str):
    """React with one emoji (percent-encoded in the path); idempotent."""
    return services().sending.change(me(), "reaction", message_id,
                                     fields={"emoji": emoji, "on": True})[0]


@bp.delete("/messages/<message_id>/reactions/<path:emoji>")
@operation({200: answers.ChangeAck}, texts=("emoji",))
def remove_reaction(message_id: int, emoji: str):
    """Take one's reaction back; idempotent."""
    return services().sending.change(me(), "reaction", message_id,
                                     fields={"emoji": emoji, "on": False})[0]


@bp.get("/unread")
@operation({200: answers.Unread})
def unread():
    """What is unread, by conversation; marks nothing read."""
    return services().reading.unread_summary(me())


@bp.post("/read")
@operation({200: answers.Read}, body=ReadRequest)
def mark_read(body: ReadRequest):
    """Move a read cursor; pushes the same ``read`` frames as type 5."""
    is_group = body.group_id is not None
    return services().reading.mark_read(me(), body.group_id if is_group else body.recipient_id,
                                        is_group, body.last_read_id)


@bp.get("/sync")
@operation({200: answers.Sync}, query=SyncQuery)
def sync(query: SyncQuery):
    """Every message the caller can see after ``since_id``."""
    return services().reading.sync(me(), query.since_id, query.limit)
