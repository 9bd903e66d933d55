"""What the service layer needs from the running app: config, counters, and events on commit.

Events are never published before the transaction that caused them commits
(Zulip's ``send_event_on_commit``): ``after_commit`` queues them on the session
and a SQLAlchemy hook publishes them once the commit succeeded, or drops them on
rollback.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import orjson
from flask import current_app
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from ..bus import Event
from ..extensions import db

if TYPE_CHECKING:
    from ..limits import Counters
    from ..runtime import ChatRuntime

_PENDING = "chat_events"


def chat() -> "ChatRuntime":
    """The app's chat runtime (bus, registry, counters, committer), set up by the factory."""
    return current_app.extensions["chat"]


def config():
    """The app's config."""
    return current_app.config


def counters() -> "Counters":
    """The counter store (Redis or in-process)."""
    return chat().counters


_last_iso: list = [None, None]  # a batch shares one timestamp: format it once


def iso(moment: datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 with milliseconds and Z."""
    if moment is None:
        return None
    if moment == _last_iso[0]:
        return _last_iso[1]
    text = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z")
    _last_iso[0], _last_iso[1] = moment, text
    return text


def dumps(frame: dict) -> bytes:
    """Serialise a frame once (orjson: fast, and never a raw newline)."""
    return orjson.dumps(frame)


def after_commit(*events: Event) -> None:
    """Publish these events once the current transaction commits."""
    db.session.info.setdefault(_PENDING, []).extend(events)


def publish_now(*events: Event) -> None:
    """Publish events that depend on no transaction (typing)."""
    chat().bus.publish(list(events))


def after_commit_close(user_id: int, token_id: int) -> None:
    """Close the sockets opened with this credential once its revocation commits."""
    after_commit(Event(f"u:{user_id}", close_auth=token_id))


def to_user(user_id: int, frame: dict, *, exclude_conn: str | None = None,
            member: tuple[int, bool] | None = None) -> Event:
    """An event carrying ``frame`` to every connection of one user."""
    return Event(f"u:{user_id}", dumps(frame), exclude_conn=exclude_conn, member=member)


@sa_event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    events = session.info.pop(_PENDING, None)
    if events:
        chat().bus.publish(events)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction) -> None:
    session.info.pop(_PENDING, None)
