"""Reading messages: history, unread, read cursors, sync, conversations, typing.

A user's conversations are their ``read_cursors`` rows (one per private chat
and per group), so unread counts are index ranges above each cursor and cost
the same in a 2-person chat and a 5,000-member group.
"""
from __future__ import annotations

from typing import Any, Sequence

import orjson
from sqlalchemy import func, select, update

from ..bus import Event, group_channel, user_channel
from ..errors import BadRequest, NotFound
from ..extensions import db
from ..store import queries, replica
from ..store.committer_sql import db_time
from ..store.models import Group, Message, ReadCursor, User, group_conv_key, private_conv_key
from . import policy, validation
from .events import Events
from .i18n import N_
from .lookups import is_blocked, member_group, writable_peer
from .publishing import UpdatedMessage
from .shapes import dumps, message_frame, read_frame, typing_frame, update_frame

UNREAD_FETCH_MAX = 5000
# A sync or unread answer stops short of this many bytes of content (and says has_more),
# so that one frame never outgrows a connection's send queue or a reconnect storm's memory.
ANSWER_MAX_BYTES = 4 * 1024 * 1024


def resolve_conversation(user_id: int, target_id: Any, is_group: bool,
                         peer_checked_later: bool = False) -> tuple[str, int | None, int | None]:
    """The storage key for a peer or a group the user may read: (key, peer, group).

    ``peer_checked_later``: the caller calls ``check_peer`` itself when it finds no
    message of the conversation (history: a page of messages already shows the peer)."""
    if is_group:
        group = member_group(user_id, target_id)
        return group_conv_key(group.id), None, group.id
    peer_id = validation.entity_id(target_id, "user_id")
    if not peer_checked_later:
        check_peer(peer_id)
    return private_conv_key(user_id, peer_id), peer_id, None


def check_peer(peer_id: int) -> None:
    """404 unless there is a user with this id."""
    if not queries.user_exists(peer_id):
        raise NotFound(policy.NO_SUCH_USER)


def _update(row: Any) -> dict:
    """A stored update (``queries.sync_reads``) as the ``update`` frame."""
    message = UpdatedMessage(row.message_id, row.sender_id, row.recipient_id, row.group_id)
    return update_frame(row.id, row.kind, message, row.actor_id, row.created_at,
                        orjson.loads(row.payload))


def _within_answer_size(rows: list) -> list:
    """The first rows whose content fits in ANSWER_MAX_BYTES (at least one)."""
    total = 0
    for i, row in enumerate(rows):
        text = getattr(row, "content", None) or getattr(row, "payload", "")
        total += (len(text) if text.isascii() else len(text.encode())) + 300  # + other fields
        if total > ANSWER_MAX_BYTES and i > 0:
            return rows[:i]
    return rows


def is_archived(row: Any) -> bool:
    """Archived, and no newer message brought it back (a muted one stays archived)."""
    return row.archived_at_id is not None and (
        bool(row.muted) or (row.last_id or 0) <= row.archived_at_id)


def _set_cursor(user_id: int, key: str, value: int, peer_id: int | None,
                group_id: int | None) -> int:
    """Move a read cursor forward to ``value`` (never back); returns where it stands."""
    db.session.execute(queries.insert_ignore(ReadCursor.__table__).values(
        user_id=user_id, conv_key=key, peer_id=peer_id, group_id=group_id, last_read_id=0))
    db.session.execute(
        update(ReadCursor).where(ReadCursor.user_id == user_id, ReadCursor.conv_key == key,
                                 ReadCursor.last_read_id < value)
        .values(last_read_id=value))
    return db.session.scalar(select(ReadCursor.last_read_id).where(
        ReadCursor.user_id == user_id, ReadCursor.conv_key == key))


def _read_events(user_id: int, peer_id: int | None, group_id: int | None, value: int,
                 origin: str | None) -> list[Event]:
    """The ``read`` receipt, to the reader's other connections and to a private peer
    (unless the peer has blocked the reader: then nothing of the reader reaches them)."""
    frame = dumps(read_frame(user_id, peer_id, group_id, value))
    events = [Event(user_channel(user_id), frame, exclude_conn=origin)]
    if peer_id is not None and peer_id != user_id and not is_blocked(peer_id, user_id):
        events.append(Event(user_channel(peer_id), frame))
    return events


def _around(key: str, peer_id: int | None, group_id: int | None, around: int,
            size: int) -> dict:
    """A page of ``size`` messages holding ``around``: (size-1)//2 older ones before it,
    the rest newer, one side filling in where the other runs short (docs/protocol.md, Search)."""
    older, newer = queries.around_rows(key, around, size + 1)
    if not newer or newer[0].id != around:
        raise NotFound(N_("no such message in this conversation"))
    want_older = (size - 1) // 2
    want_newer = size - 1 - want_older
    after = newer[1:]
    take_older = min(len(older), want_older + max(0, want_newer - len(after)))
    take_newer = min(len(after), size - 1 - take_older)
    page = list(reversed(older[:take_older])) + [newer[0]] + after[:take_newer]
    return {"recipient_id": peer_id if peer_id is not None else group_id,
            "group": group_id is not None, "messages": [message_frame(r) for r in page],
            "has_more": len(older) > take_older, "has_newer": len(after) > take_newer}


class Reading:
    """Everything that reads messages or moves read cursors."""

    def __init__(self, events: Events) -> None:
        self.events = events

    @staticmethod
    def history(user_id: int, target_id: Any, is_group: bool, before_id: Any = None,
                before_time: Any = None, limit: Any = None, around_id: Any = None,
                limit_text: str | None = None) -> dict:
        """The ``limit`` messages of a conversation before the cursor, oldest first
        (or around ``around_id``: then ``has_newer`` says whether newer ones follow);
        on the replica when it holds everything the primary had (``store.replica``).
        ``limit_text``: the limit as a query string gives it (HTTP), instead of ``limit``."""
        return replica.read(lambda: Reading._history(user_id, target_id, is_group, before_id,
                                                     before_time, limit, around_id,
                                                     limit_text),
                            each_alone=True)

    @staticmethod
    def _history(user_id: int, target_id: Any, is_group: bool, before_id: Any,
                 before_time: Any, limit: Any, around_id: Any, limit_text: str | None) -> dict:
        # docs/protocol.md 3.4: the cursors are ids (400 first), then the conversation
        # (404/403), then the other fields (400).
        before = validation.cursor(before_id, "before_id")
        around = validation.cursor(around_id, "around_id")
        # A private page's messages show that the peer exists (users are never deleted):
        # the query for the peer is only needed when there are none, not on every page
        # (a page around a message is checked now: that message may be missing too).
        peer_later = around is None
        key, peer_id, group_id = resolve_conversation(user_id, target_id, is_group,
                                                      peer_checked_later=peer_later)
        most = validation.HISTORY_LIMIT_MAX
        try:
            size = (validation.limit(limit, 1, most, 10) if limit_text is None else
                    validation.query_number(limit_text, "limit", low=1, high=most))
            if before is not None and before_time is not None:
                raise BadRequest(N_("give before_id or a time cursor, not both"))
            if around is not None and (before is not None or before_time is not None):
                raise BadRequest(N_("give around_id or a cursor, not both"))
            moment = (None if before_time is None
                      else db_time(validation.time_cursor(before_time)))
        except BadRequest:
            if peer_id is not None and peer_later:
                check_peer(peer_id)  # a missing peer answers first (404)
            raise
        if around is not None:
            return _around(key, peer_id, group_id, around, size)
        result = {"recipient_id": peer_id if peer_id is not None else group_id,
                  "group": is_group, "messages": [], "has_more": False}
        # Nothing lies before position 0.
        rows = [] if before == 0 else queries.history_rows(key, before, moment, size + 1)
        if not rows and peer_id is not None:
            check_peer(peer_id)
        result["has_more"] = len(rows) > size
        result["messages"] = [message_frame(r) for r in reversed(rows[:size])]
        return result

    @staticmethod
    def hello_state(user_id: int, rows: list | None = None) -> tuple[int, int, list[int]]:
        """(unread messages from others, newest message id the user can see, the user's groups).

        One query (none when ``rows``, the user's ``hello_rows``, were read already): a
        user's groups are the group rows among their read cursors.
        """
        if rows is None:
            rows = queries.hello_rows(user_id)
        return (sum(r.unread for r in rows),  # of a muted conversation: its mentions
                max((max(r.last_id or 0, r.last_update_id or 0) for r in rows), default=0),
                [r.group_id for r in rows if r.group_id is not None])

    @staticmethod
    def groups_of(user_ids: Sequence[int]) -> dict[int, list[int]]:
        """Each of these users' groups (users in none are left out): one query."""
        found: dict[int, list[int]] = {}
        if user_ids:
            for row in queries.group_rows(list(user_ids)):
                found.setdefault(row.user_id, []).append(row.group_id)
        return found

    @staticmethod
    def conversations(user_id: int, unread_only: bool = False, archived: bool | None = False,
                      only_key: str | None = None) -> list[dict]:
        """The user's private chats and groups, pinned first, then newest first, with last
        message, unread counts and the user's settings; ``archived``: only the archived
        ones (True), only the others (False), or both (None)."""
        rows = [r for r in queries.conversation_rows(user_id)
                if (not unread_only or r.unread) and (only_key is None or r.conv_key == only_key)
                and (archived is None or is_archived(r) == archived)]
        last = {r.id: message_frame(r) for r in queries.message_rows_by_id(
            [r.last_id for r in rows if r.last_id])}
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
            if r.group_id is None and not r.last_id and only_key is None:
                continue  # a private chat with nothing in it yet
            item = {"kind": "group" if r.group_id is not None else "private",
                    "last_message": last.get(r.last_id), "unread": r.unread,
                    "mentions": r.mentions, "last_read_id": r.last_read_id,
                    "muted": bool(r.muted), "pinned": bool(r.pinned),
                    "archived": is_archived(r)}
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
        items.sort(key=lambda i: (i["pinned"], i["last_message"]["id"] if i["last_message"]
                                  else 0), reverse=True)
        return items

    def unread_summary(self, user_id: int) -> dict:
        """``{"total", "conversations"}`` of what is unread (archived or not); marks nothing
        read. ``total`` counts muted conversations' mentions only (docs/protocol.md, Attention)."""
        convs = self.conversations(user_id, unread_only=True, archived=None)
        return {"total": sum(c["mentions"] if c["muted"] else c["unread"] for c in convs),
                "conversations": convs}

    def mark_read(self, user_id: int, target_id: Any, is_group: bool, last_read_id: Any,
                  origin: str | None = None) -> dict:
        """Move the user's cursor (clamped to the newest message); push ``read`` receipts."""
        wanted = validation.cursor(last_read_id, "last_read_id")
        if wanted is None:
            raise BadRequest(N_("last_read_id is required"))
        key, peer_id, group_id = resolve_conversation(user_id, target_id, is_group)
        newest = db.session.scalar(select(func.max(Message.id))
                                   .where(Message.conv_key == key)) or 0
        value = _set_cursor(user_id, key, min(wanted, newest), peer_id, group_id)
        self.events.after_commit(*_read_events(user_id, peer_id, group_id, value, origin))
        db.session.commit()
        return read_frame(user_id, peer_id, group_id, value)

    def fetch_unread(self, user_id: int, origin: str | None = None) -> dict:
        """Every unread message, oldest first, and mark them read (as the seed does)."""
        rows = queries.unread_rows(user_id, UNREAD_FETCH_MAX + 1)
        kept = _within_answer_size(rows[:UNREAD_FETCH_MAX])
        has_more = len(rows) > len(kept)
        newest: dict[str, tuple[int, int | None, int | None]] = {}
        for r in kept:
            if r.group_id is not None:
                newest[group_conv_key(r.group_id)] = (r.id, None, r.group_id)
            else:  # unread means written by the other one
                newest[private_conv_key(user_id, r.sender_id)] = (r.id, r.sender_id, None)
        events: list[Event] = []
        for key, (last_id, peer_id, group_id) in newest.items():
            value = _set_cursor(user_id, key, last_id, peer_id, group_id)
            events.extend(_read_events(user_id, peer_id, group_id, value, origin))
        self.events.after_commit(*events)
        db.session.commit()
        return {"kind": "unread", "code": 200, "messages": [message_frame(r) for r in kept],
                "has_more": has_more}

    @staticmethod
    def sync(user_id: int, since_id: Any, limit: Any = None) -> dict:
        """Every message and update the user can see with ``id > since_id``, oldest first.

        ``limit`` and ``has_more`` count messages and updates together: the client's
        next cursor is the largest id of either list. On the replica when it holds
        everything the primary had (``store.replica``).
        """
        since = validation.cursor(since_id, "since_id")
        if since is None:
            raise BadRequest(N_("since_id is required"))
        size = validation.limit(limit, 1, 1000, 500)
        messages, updates = replica.read(lambda: queries.sync_reads(user_id, since, size + 1),
                                         rows_only=True)
        merged = sorted([(r.id, 0, r) for r in messages] + [(u.id, 1, u) for u in updates],
                        key=lambda entry: entry[0])
        kept = _within_answer_size([r for _, _, r in merged[:size]])
        kept_ids = {r.id for r in kept}
        return {"kind": "sync", "code": 200,
                "messages": [message_frame(r) for r in messages if r.id in kept_ids],
                "updates": [_update(u) for u in updates if u.id in kept_ids],
                "has_more": len(merged) > len(kept)}

    def typing(self, user_id: int, target_id: Any, is_group: bool) -> None:
        """Tell the other party (or the group's other members) that the user is typing."""
        if is_group:
            group = member_group(user_id, target_id)
            self.events.now(Event(group_channel(group.id),
                                  dumps(typing_frame(user_id, None, group.id)),
                                  exclude_user=user_id))
            return
        peer = writable_peer(user_id, target_id)
        if peer.id != user_id:
            self.events.now(Event(user_channel(peer.id),
                                  dumps(typing_frame(user_id, peer.id, None))))
