"""Events go out only after the transaction that caused them commits.

Zulip's ``send_event_on_commit``: ``Events.after_commit`` queues events on the
current database session, and a SQLAlchemy hook publishes them on the bus once
the commit succeeded, or drops them on rollback. Events that depend on no
transaction (typing) go out at once with ``Events.now``.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from ..bus import Bus, Event, user_channel
from ..extensions import db
from .shapes import dumps

_PENDING = "chat_events"


class Events:
    """Publishes the service's events on one bus, after commit or at once."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def after_commit(self, *events: Event) -> None:
        """Publish these events once the current transaction commits."""
        pending = db.session.info.setdefault(_PENDING, {})
        pending.setdefault(id(self), (self, []))[1].extend(events)

    def now(self, *events: Event) -> None:
        """Publish events that depend on no transaction."""
        self.bus.publish(list(events))

    def to_user(self, user_id: int, frame: dict, *, exclude_conn: str | None = None,
                member: tuple[int, bool] | None = None) -> Event:
        """An event carrying ``frame`` to every connection of one user."""
        return Event(user_channel(user_id), dumps(frame), exclude_conn=exclude_conn,
                     member=member)

    def close_credential_after_commit(self, user_id: int, token_id: int) -> None:
        """Close the sockets opened with this credential once its revocation commits."""
        self.after_commit(Event(user_channel(user_id), close_auth=token_id))

    def membership_after_commit(self, user_id: int, group_id: int, joined: bool) -> None:
        """Tell the user's processes to route (or stop routing) a group's messages."""
        self.after_commit(Event(user_channel(user_id), member=(group_id, joined)))


@sa_event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        for events, queued in pending.values():
            events.bus.publish(queued)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_PENDING, None)
