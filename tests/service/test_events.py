"""Events after commit (``chat.service.events``): published when the transaction commits,
dropped when it rolls back, never before."""
from __future__ import annotations

import orjson

from chat.bus import Event
from chat.extensions import db
from chat.store.models import User
from tests.inprocess import add_user


def test_events_wait_for_the_commit(services, published):
    events = services.events
    events.after_commit(events.to_user(1, {"kind": "notice", "n": 1}))
    add_user()  # unrelated work in the same session commits: now they go out
    assert [e.channel for e in published.events] == ["user:1"]


def test_nothing_is_published_before_the_commit(services, published):
    events = services.events
    events.after_commit(Event("user:1", b"{}"), Event("user:2", b"{}"))
    db.session.flush()
    assert published.events == []
    db.session.commit()
    assert [e.channel for e in published.events] == ["user:1", "user:2"]


def test_a_rollback_drops_the_events_for_good(services, published):
    events = services.events
    db.session.add(User(username="rolled", username_key="rolled", password_hash="x"))
    db.session.flush()  # the work the events are about
    events.after_commit(Event("user:1", b"{}"))
    db.session.rollback()
    assert published.events == []
    add_user()  # a later commit does not bring them back
    assert published.events == []


def test_a_session_thrown_away_takes_its_events_with_it(services, published):
    db.session.add(User(username="lost", username_key="lost", password_hash="x"))
    db.session.flush()
    services.events.after_commit(Event("user:1", b"{}"))
    db.session.remove()  # what the socket handler does after each frame, also after an error
    add_user()
    assert published.events == []


def test_each_commit_publishes_only_its_own_events(services, published):
    events = services.events
    events.after_commit(Event("user:1", b"1"))
    db.session.commit()
    events.after_commit(Event("user:2", b"2"))
    db.session.commit()
    db.session.commit()
    assert [e.frame for e in published.events] == [b"1", b"2"]


def test_now_publishes_at_once(services, published):
    services.events.now(Event("group:3", b"typing", exclude_user=7))
    assert [(e.channel, e.exclude_user) for e in published.events] == [("group:3", 7)]


def test_the_event_helpers(services, published):
    events = services.events
    event = events.to_user(5, {"kind": "notice", "text": "é"}, exclude_conn="c1",
                           member=(3, True))
    assert event.channel == "user:5" and orjson.loads(event.frame)["text"] == "é"
    assert (event.exclude_conn, event.member) == ("c1", (3, True))
    events.close_credential_after_commit(5, 42)
    events.membership_after_commit(5, 3, False)
    db.session.commit()
    assert [(e.channel, e.close_auth, e.member) for e in published.events] == [
        ("user:5", 42, None), ("user:5", None, (3, False))]
