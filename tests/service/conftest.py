"""Fixtures of the service tests: the in-process app (``tests.inprocess``), fresh services
for each test, what they publish, a way to store messages, and committers to watch."""
from __future__ import annotations

import pytest

from tests.inprocess import Recorder
from tests.service.harness import Harness
from tests.inprocess import app, hasher, module_app, runtime, services  # noqa: F401 (fixtures)


@pytest.fixture
def send(services):  # noqa: F811
    """Store a message through the one send call (the real committer): returns its ack."""
    def _send(sender: int, *, to: int | None = None, group: int | None = None,
              content: str = "hi", client_id: str | None = None) -> dict:
        ack, _ = services.sending.send(sender, recipient_id=to, group_id=group,
                                       fields={"content": content, "client_id": client_id})
        return ack
    return _send


@pytest.fixture
def published(runtime) -> Recorder:  # noqa: F811
    """Everything this test's services publish on the bus, in order."""
    recorder = Recorder()
    runtime.bus.attach(recorder)
    return recorder


@pytest.fixture
def harness(app):  # noqa: F811
    """Make committers on the test's app (``tests.service.harness``); stopped after the test."""
    made: list[Harness] = []

    def _make(**kw) -> Harness:
        made.append(Harness(app, **kw))
        return made[-1]
    yield _make
    for h in made:
        h.close()
