"""In-process test helpers: an app on a SQLite file of the module's own, and seeded rows.

Nothing here starts a server process. The app's runtime is built (bus, registry,
counters, services) but never started, so no greenlet runs unless a test makes
one run. gevent is used without monkey-patching: its own sockets, queues and
events cooperate on the hub of the test's thread, which is all the registry,
the transport and the committer need; blocking calls (SQLite, PyMySQL) simply
block, which is fine in a test. The Redis bus's listener needs more: see
``tests/bus/conftest.py``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest
from flask import Flask
from sqlalchemy import delete
from werkzeug.security import generate_password_hash

from app import create_app
from chat.bus import Event
from chat.extensions import db
from chat.store import reads
from chat import service as service_package
from chat.runtime import ChatRuntime
from chat.service.passwords import PasswordHasher
from chat.store.models import (Block, Follow, Group, Membership, ReadCursor, User,
                               group_conv_key, utcnow)
from tests.support import PASSWORD, unique_name

# Seeded users share one cheap hash: the stored string names its own method, so a login
# checks it in microseconds instead of the tenth of a second of the default scrypt.
PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1")


def make_app(database_url: str, **config) -> Flask:
    """An app on this database with the in-process bus and counters (runtime not started)."""
    settings = {"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": None,
                "CHAT_LOG_LEVEL": "WARNING", **config}
    return create_app("testing", **settings)


@contextmanager
def running(app: Flask) -> Iterator[Flask]:
    """An app context for the test body; the session and the engine are closed after it."""
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()
            reads.dispose(app)


# -- fixtures, re-exported by the conftest.py of each package that uses them -------------------
#
# Building an app costs a tenth of a second (Werkzeug compiles every route), so a module
# shares one app and one database (and one password hasher); each test gets a new runtime
# (bus, counters, registry, services, committer) and keeps to users it created itself.


@pytest.fixture(scope="module")
def module_app(sqlite_module_url):
    """The module's app on its own SQLite file (disposed of at the end)."""
    with running(make_app(sqlite_module_url)) as app:
        yield app


@pytest.fixture(scope="module")
def hasher():
    """One password hasher for the module's runtimes: making one costs a scrypt hash."""
    shared = PasswordHasher(1)
    yield shared
    shared.pool.kill()


@pytest.fixture
def app(module_app, hasher, monkeypatch):
    """The module's app with a runtime of this test's own; the body runs in its context."""
    monkeypatch.setattr(service_package, "PasswordHasher", lambda threads: hasher)
    module_app.extensions["chat"] = ChatRuntime(module_app)
    with module_app.app_context():
        yield module_app
        db.session.remove()


@pytest.fixture
def runtime(app) -> ChatRuntime:
    """This test's runtime (LocalBus, MemoryCounters, registry, services), never started."""
    return app.extensions["chat"]


@pytest.fixture
def services(runtime):
    """This test's services; their committer greenlet, if one started, is stopped after."""
    yield runtime.services
    runtime.services.committer.stop()


# -- seeded rows (inside an app context) -------------------------------------------


def add_user(stem: str = "u") -> int:
    """A user with the suite's password; returns the id."""
    name = unique_name(stem)
    user = User(username=name, username_key=name.lower(), password_hash=PASSWORD_HASH,
                created_at=utcnow())
    db.session.add(user)
    db.session.commit()
    return user.id


def username(user_id: int) -> str:
    """The stored name of a user."""
    return db.session.get(User, user_id).username


def follow(follower: int, followee: int) -> None:
    """``follower`` follows ``followee``."""
    db.session.add(Follow(follower_id=follower, followee_id=followee, created_at=utcnow()))
    db.session.commit()


def unfollow(follower: int, followee: int) -> None:
    """``follower`` stops following ``followee``."""
    db.session.execute(delete(Follow).where(Follow.follower_id == follower,
                                            Follow.followee_id == followee))
    db.session.commit()


def follow_each_other(a: int, b: int) -> None:
    """A mutual follow: the stranger rule no longer applies to the pair."""
    follow(a, b)
    follow(b, a)


def block(blocker: int, blocked: int) -> None:
    """``blocker`` refuses private messages from ``blocked``."""
    db.session.add(Block(blocker_id=blocker, blocked_id=blocked, created_at=utcnow()))
    db.session.commit()


def add_group(owner: int, *members: int, name: str = "") -> int:
    """A group with its owner and members (memberships and read cursors); returns the id."""
    group = Group(name=name or unique_name("g"), description="", icon="", owner_id=owner,
                  created_at=utcnow())
    db.session.add(group)
    db.session.flush()
    for user_id in (owner, *members):
        db.session.add(Membership(group_id=group.id, user_id=user_id,
                                  role="owner" if user_id == owner else "member",
                                  joined_at=utcnow()))
        db.session.add(ReadCursor(user_id=user_id, conv_key=group_conv_key(group.id),
                                  group_id=group.id, last_read_id=0))
    db.session.commit()
    return group.id


class Recorder:
    """A bus sink that keeps every event it is given, in order (and counts no one online).

    Attach it to a ``LocalBus`` to see what a service published, and when.
    """

    def __init__(self, online: dict[int, int] | None = None) -> None:
        self.events: list[Event] = []
        self.online = online or {}

    def dispatch(self, event: Event, batch=None) -> None:
        """Keep the event."""
        self.events.append(event)

    def channels(self) -> list[str]:
        """No channels of its own."""
        return []

    def count(self, user_id: int, exclude_conn: str | None = None) -> int:
        """Connections a test said the user has."""
        return self.online.get(user_id, 0)

    def on(self, channel: str) -> list[Event]:
        """The events published on one channel."""
        return [e for e in self.events if e.channel == channel]
