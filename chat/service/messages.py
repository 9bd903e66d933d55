"""Reading messages: history, unread, read cursors, sync, conversations, typing.

A user's conversations are their ``read_cursors`` rows (one per private chat
and per group), so unread counts are index ranges above each cursor and cost
the same in a 2-person chat and a 5,000-member group.
"""
from __future__ import annotations


from sqlalchemy import func, select, text, update

from .. import validation
from ..bus import Event
from ..errors import BadRequest, Forbidden
from ..extensions import db
from ..models import Group, Message, ReadCursor, User, UTCDateTime, group_key, private_key
from . import runtime
from .sqlutil import insert_ignore, read_rows
from .store import db_time
from .groups import get_group, membership
from .social import get_user, is_blocked

UNREAD_FETCH_MAX = 5000
# A sync or unread answer stops short of this many bytes of content (and says has_more),
# so that one frame never outgrows a connection's send queue or a reconnect storm's memory.
ANSWER_MAX_BYTES = 4 * 1024 * 1024

_MESSAGE_COLUMNS = (Message.id, Message.sender_id, Message.recipient_id, Message.group_id,
                    Message.content, Message.client_id, Message.created_at,
                    User.username.label("sender_name"))


def message_frame(row) -> dict:
    """A stored message as the ``message`` frame (and as history and sync items)."""
    target = f"g{row.group_id}" if row.group_id is not None else str(row.recipient_id)
    return {"kind": "message", "code": 200, "id": row.id,
            "from": f"{row.sender_id}->{target}", "sender_id": row.sender_id,
            "sender_name": row.sender_name, "recipient_id": row.recipient_id,
            "group_id": row.group_id, "content": row.content,
            "created_at": runtime.iso(row.created_at), "client_id": row.client_id}


def _select_messages():
    return select(*_MESSAGE_COLUMNS).join(User, User.id == Message.sender_id)


def _messages_in(page_sql: str, params: dict, descending: bool = False):
    """The full rows of a page of ids (``page_sql``: a LIMITed SELECT of ids), in order.

    Selecting the ids alone first keeps MariaDB on the ``(conv_key, id)`` index (with
    the join to users in the same SELECT it read every match, then sorted), and plain
    SQL costs a third of the ORM on these hot reads.
    """
    sql = ("SELECT m.id, m.sender_id, m.recipient_id, m.group_id, m.content, m.client_id, "
           "m.created_at, u.username AS sender_name FROM messages m "
           "JOIN users u ON u.id = m.sender_id "
           f"JOIN ({page_sql}) page ON page.id = m.id ORDER BY m.id "
           f"{'DESC' if descending else 'ASC'}")
    return db.session.execute(text(sql).columns(created_at=UTCDateTime), params).all()


def resolve_conversation(user_id: int, target_id, is_group: bool) -> tuple[str, int | None,
                                                                          int | None]:
    """The conversation key for a peer or a group the user may read: (key, peer, group)."""
    if is_group:
        group = get_group(target_id)
        if membership(group.id, user_id) is None:
            raise Forbidden("you are not a member of this group")
        return group_key(group.id), None, group.id
    peer = get_user(target_id)
    return private_key(user_id, peer.id), peer.id, None


def history(user_id: int, target_id, is_group: bool, before_id=None, before_time=None,
            limit=None) -> dict:
    """The ``limit`` messages of a conversation before the cursor, oldest first."""
    # The frame's own fields first: a mistyped field is 400 whoever the peer is.
    before = validation.cursor(before_id, "before_id")
    size = validation.limit(limit, 1, 100, 10)
    if before is not None and before_time is not None:
        raise BadRequest("give before_id or a time cursor, not both")
    moment = None if before_time is None else db_time(validation.time_cursor(before_time))
    key, peer_id, group_id = resolve_conversation(user_id, target_id, is_group)
    result = {"recipient_id": peer_id if peer_id is not None else group_id,
              "group": is_group, "messages": [], "has_more": False}
    if before == 0:
        return result  # nothing lies before position 0
    page = "SELECT id FROM messages WHERE conv_key = :key"
    params: dict = {"key": key, "n": size + 1}
    if before is not None:
        page += " AND id < :before"
        params["before"] = before
    if moment is not None:
        page += " AND created_at < :moment"
        params["moment"] = moment
    rows = _messages_in(page + " ORDER BY id DESC LIMIT :n", params, descending=True)
    result["has_more"] = len(rows) > size
    result["messages"] = [message_frame(r) for r in reversed(rows[:size])]
    return result


# Every connect and every conversation list runs this: plain SQL costs a third of the ORM.
_CONVERSATION_ROWS = text(
    "SELECT rc.conv_key, rc.peer_id, rc.group_id, rc.last_read_id, "
    "(SELECT MAX(m.id) FROM messages m WHERE m.conv_key = rc.conv_key) AS last_id, "
    "(SELECT COUNT(*) FROM messages m WHERE m.conv_key = rc.conv_key "
    " AND m.id > rc.last_read_id AND m.sender_id != :me) AS unread "
    "FROM read_cursors rc WHERE rc.user_id = :me")


def _conversation_rows(user_id: int):
    """Each of the user's conversations with its last message id and unread count."""
    return db.session.execute(_CONVERSATION_ROWS, {"me": user_id}).all()


def hello_state(user_id: int) -> tuple[int, int, list[int]]:
    """(unread messages from others, newest message id the user can see, the user's groups).

    One query: a user's groups are the group rows among their read cursors.
    """
    rows = read_rows(_CONVERSATION_ROWS, {"me": user_id})
    return (sum(r.unread for r in rows), max((r.last_id or 0 for r in rows), default=0),
            [r.group_id for r in rows if r.group_id is not None])


def conversations(user_id: int, unread_only: bool = False) -> list[dict]:
    """The user's private chats and groups, newest first, with last message and unread."""
    rows = [r for r in _conversation_rows(user_id) if not unread_only or r.unread]
    last_ids = [r.last_id for r in rows if r.last_id]
    last = {m.id: message_frame(m) for m in db.session.execute(
        _select_messages().where(Message.id.in_(last_ids)))} if last_ids else {}
    peer_ids = [r.peer_id for r in rows if r.peer_id is not None]
    group_ids = [r.group_id for r in rows if r.group_id is not None]
    names = dict(db.session.execute(select(User.id, User.username)
                                    .where(User.id.in_(peer_ids))).all()) if peer_ids else {}
    groups = {g.id: g for g in db.session.scalars(
        select(Group).where(Group.id.in_(group_ids)))} if group_ids else {}
    peer_read = dict(db.session.execute(
        select(ReadCursor.conv_key, ReadCursor.last_read_id).where(
            ReadCursor.conv_key.in_([r.conv_key for r in rows if r.peer_id is not None]),
            ReadCursor.user_id != user_id)).all()) if peer_ids else {}
    items = []
    for r in rows:
        if r.group_id is None and not r.last_id:
            continue  # a private chat with nothing in it yet
        item = {"kind": "group" if r.group_id is not None else "private",
                "last_message": last.get(r.last_id), "unread": r.unread,
                "last_read_id": r.last_read_id}
        if r.group_id is not None:
            group = groups.get(r.group_id)
            if group is None:
                continue
            item.update(group_id=r.group_id, name=group.name, icon=group.icon)
        else:
            item.update(user_id=r.peer_id, name=names.get(r.peer_id, ""),
                        peer_last_read_id=(r.last_read_id if r.peer_id == user_id
                                           else peer_read.get(r.conv_key, 0)))
        items.append(item)
    items.sort(key=lambda i: (i["last_message"]["id"] if i["last_message"] else 0),
               reverse=True)
    return items


def unread_summary(user_id: int) -> dict:
    """``{"total", "conversations"}`` of what is unread; marks nothing read."""
    convs = conversations(user_id, unread_only=True)
    return {"total": sum(c["unread"] for c in convs), "conversations": convs}


def _set_cursor(user_id: int, key: str, value: int, peer_id: int | None,
                group_id: int | None) -> int:
    """Move a read cursor forward to ``value`` (never back); returns where it stands."""
    db.session.execute(insert_ignore(ReadCursor.__table__, db.engine.dialect.name).values(
        user_id=user_id, conv_key=key, peer_id=peer_id, group_id=group_id, last_read_id=0))
    db.session.execute(
        update(ReadCursor).where(ReadCursor.user_id == user_id, ReadCursor.conv_key == key,
                                 ReadCursor.last_read_id < value)
        .values(last_read_id=value))
    return db.session.scalar(select(ReadCursor.last_read_id).where(
        ReadCursor.user_id == user_id, ReadCursor.conv_key == key))


def _read_events(user_id: int, peer_id: int | None, group_id: int | None, value: int,
                 origin: str | None) -> list[Event]:
    frame = runtime.dumps({"kind": "read", "code": 200, "user_id": user_id,
                           "recipient_id": peer_id, "group_id": group_id,
                           "last_read_id": value})
    events = [Event(f"u:{user_id}", frame, exclude_conn=origin)]
    if peer_id is not None and peer_id != user_id:
        events.append(Event(f"u:{peer_id}", frame))
    return events


def mark_read(user_id: int, target_id, is_group: bool, last_read_id,
              origin: str | None = None) -> dict:
    """Move the user's cursor (clamped to the newest message); push ``read`` receipts."""
    wanted = validation.cursor(last_read_id, "last_read_id")
    if wanted is None:
        raise BadRequest("last_read_id is required")
    key, peer_id, group_id = resolve_conversation(user_id, target_id, is_group)
    newest = db.session.scalar(select(func.max(Message.id))
                               .where(Message.conv_key == key)) or 0
    value = _set_cursor(user_id, key, min(wanted, newest), peer_id, group_id)
    runtime.after_commit(*_read_events(user_id, peer_id, group_id, value, origin))
    db.session.commit()
    return {"kind": "read", "code": 200, "user_id": user_id, "recipient_id": peer_id,
            "group_id": group_id, "last_read_id": value}


def fetch_unread(user_id: int, origin: str | None = None) -> dict:
    """Every unread message, oldest first, and mark them read (as the seed does)."""
    rows = _messages_in(
        "SELECT m.id FROM messages m JOIN read_cursors rc ON rc.conv_key = m.conv_key "
        "AND rc.user_id = :me WHERE m.id > rc.last_read_id AND m.sender_id != :me "
        "ORDER BY m.id LIMIT :n", {"me": user_id, "n": UNREAD_FETCH_MAX + 1})
    kept = _within_answer_size(rows[:UNREAD_FETCH_MAX])
    has_more = len(rows) > len(kept)
    rows = kept
    newest: dict[str, tuple[int, int | None, int | None]] = {}
    for r in rows:
        if r.group_id is not None:
            newest[group_key(r.group_id)] = (r.id, None, r.group_id)
        else:  # unread means written by the other one
            newest[private_key(user_id, r.sender_id)] = (r.id, r.sender_id, None)
    events: list[Event] = []
    for key, (last_id, peer_id, group_id) in newest.items():
        value = _set_cursor(user_id, key, last_id, peer_id, group_id)
        events.extend(_read_events(user_id, peer_id, group_id, value, origin))
    runtime.after_commit(*events)
    db.session.commit()
    return {"kind": "unread", "code": 200, "messages": [message_frame(r) for r in rows],
            "has_more": has_more}


def sync(user_id: int, since_id, limit=None) -> dict:
    """Every message the user can see with ``id > since_id``, oldest first."""
    since = validation.cursor(since_id, "since_id")
    if since is None:
        raise BadRequest("since_id is required")
    size = validation.limit(limit, 1, 1000, 500)
    rows = _messages_in(
        "SELECT m.id FROM messages m JOIN read_cursors rc ON rc.conv_key = m.conv_key "
        "AND rc.user_id = :me WHERE m.id > :since ORDER BY m.id LIMIT :n",
        {"me": user_id, "since": since, "n": size + 1})
    kept = _within_answer_size(rows[:size])
    return {"kind": "sync", "code": 200, "messages": [message_frame(r) for r in kept],
            "has_more": len(rows) > len(kept)}


def _within_answer_size(rows: list) -> list:
    """The first rows whose content fits in ANSWER_MAX_BYTES (at least one)."""
    total = 0
    for i, row in enumerate(rows):
        text = row.content
        total += (len(text) if text.isascii() else len(text.encode())) + 300  # + other fields
        if total > ANSWER_MAX_BYTES and i > 0:
            return rows[:i]
    return rows


def typing(user_id: int, target_id, is_group: bool) -> None:
    """Tell the other party (or the group's other members) that the user is typing."""
    if is_group:
        group = get_group(target_id)
        if membership(group.id, user_id) is None:
            raise Forbidden("you are not a member of this group")
        frame = runtime.dumps({"kind": "typing", "code": 200, "user_id": user_id,
                               "recipient_id": None, "group_id": group.id})
        runtime.publish_now(Event(f"g:{group.id}", frame, exclude_user=user_id))
        return
    peer = get_user(target_id)
    if peer.id == user_id:
        return
    if is_blocked(peer.id, user_id):
        raise Forbidden("this user has blocked you")
    frame = runtime.dumps({"kind": "typing", "code": 200, "user_id": user_id,
                           "recipient_id": peer.id, "group_id": None})
    runtime.publish_now(Event(f"u:{peer.id}", frame))
