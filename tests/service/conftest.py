"""Fixtures of the service tests: an app on a SQLite file, and fresh services for each test.

Building an app costs a tenth of a second (Werkzeug compiles every route), so a
module shares one app and one database; each test gets a new runtime (bus,
counters, registry, services, committer) and keeps to users it created itself.
"""
from __future__ import annotations

import pytest

from chat.extensions import db
from chat.runtime import ChatRuntime
from tests.inprocess import Recorder, make_app, running


@pytest.fixture(scope="module")
def module_app(sqlite_module_url):
    """The module's app (its database is disposed of at the end)."""
    with running(make_app(sqlite_module_url)) as app:
        yield app


@pytest.fixture
def app(module_app):
    """The module's app with a runtime of this test's own; the body runs in its context."""
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
    committer = runtime.services.committer
    if committer.greenlet is not None:
        committer.greenlet.kill()
    committer._drop_connection()


@pytest.fixture
def send(services):
    """Store a message through the one send call (the real committer): returns its ack."""
    def _send(sender: int, *, to: int | None = None, group: int | None = None,
              content: str = "hi", client_id: str | None = None) -> dict:
        ack, _ = services.sending.send(sender, recipient_id=to, group_id=group,
                                       content=content, client_id=client_id)
        return ack
    return _send


@pytest.fixture
def published(runtime) -> Recorder:
    """Everything this test's services publish on the bus, in order."""
    recorder = Recorder()
    runtime.bus.attach(recorder)
    return recorder
